//! What the SFU resends when a receiver asks (NACK): not packets from before the latest
//! keyframe of their stream (the receiver decodes from that keyframe on, so they cannot help
//! it), and no more than a share of the receiver's bandwidth estimate
//! ([`crate::core::resend_budget`]). An interceptor just below `rtc`'s NACK responder (which
//! answers NACKs from its send buffer): the resends that should not go are dropped there.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rtc::interceptor::{Attribute, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;

use crate::core::keyframe::VideoCodec;
use crate::core::{ResendBudget, is_keyframe};
use crate::stats::{Counter, TransportCounters};
use crate::tap::{PacketTap, Tapped};

/// RTP header bytes counted with each resend's payload (fixed header, RTX's original
/// sequence number, a few header extensions).
const HEADER_BYTES: usize = 24;

/// A video stream this connection sends.
struct SentVideo {
    codec: VideoCodec,
    /// Sequence number and timestamp of the first packet of the latest keyframe sent.
    keyframe: Option<(u16, u32)>,
}

/// Sits just below the NACK responder: sees the media and the responder's resends leave, and
/// every REMB arrive.
pub(crate) struct ResendLimiter {
    budget: ResendBudget,
    video: HashMap<u32, SentVideo>,
    /// RTX SSRC → media SSRC.
    rtx: HashMap<u32, u32>,
    counters: Option<Arc<TransportCounters>>,
}

impl ResendLimiter {
    pub(crate) fn new(counters: Option<Arc<TransportCounters>>) -> Tapped<Self> {
        Tapped::new(ResendLimiter { budget: ResendBudget::new(), video: HashMap::new(), rtx: HashMap::new(), counters })
    }

    fn count(&self, c: Counter) {
        if let Some(counters) = &self.counters {
            counters.add(c, 1);
        }
    }

    /// Whether a resend of packet `seq` of `ssrc` comes from before that stream's latest keyframe.
    fn before_keyframe(&self, ssrc: u32, seq: u16) -> bool {
        self.video.get(&ssrc).and_then(|v| v.keyframe).is_some_and(|(k, _)| (seq.wrapping_sub(k) as i16) < 0)
    }
}

impl PacketTap for ResendLimiter {
    fn inbound(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(remb) = p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>()
                    && remb.bitrate.is_finite()
                    && remb.bitrate > 0.0
                {
                    self.budget.on_estimate(remb.bitrate.min(u64::MAX as f32) as u64, msg.now);
                }
            }
        }
        out.push_back(msg);
    }

    fn outbound(&mut self, msg: &TaggedPacket) -> bool {
        let Packet::Rtp(p) = &msg.message.packet else { return true };
        let h = &p.header;
        if !msg.message.has(&Attribute::Retransmission) {
            if let Some(v) = self.video.get_mut(&h.ssrc) {
                // A keyframe may span several packets that each look like one (H.264's
                // parameter sets and IDR): its first packet is the one with a new timestamp.
                if is_keyframe(v.codec, &p.payload) && v.keyframe.is_none_or(|(_, ts)| ts != h.timestamp) {
                    v.keyframe = Some((h.sequence_number, h.timestamp));
                }
            }
            return true;
        }
        // An RTX resend carries the original sequence number first (RFC 4588).
        let (ssrc, seq) = match self.rtx.get(&h.ssrc) {
            Some(&media) if p.payload.len() >= 2 => (media, u16::from_be_bytes([p.payload[0], p.payload[1]])),
            _ => (h.ssrc, h.sequence_number),
        };
        if self.before_keyframe(ssrc, seq) {
            self.count(Counter::ResendsBeforeKeyframe);
            return false;
        }
        if !self.budget.allow(p.payload.len() + HEADER_BYTES, msg.now) {
            self.count(Counter::ResendsOverBudget);
            return false;
        }
        true
    }

    fn bind_local(&mut self, info: &StreamInfo) {
        if let Some(codec) = VideoCodec::from_mime(&info.mime_type) {
            self.video.insert(info.ssrc, SentVideo { codec, keyframe: None });
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx.insert(rtx, info.ssrc);
        }
    }

    fn unbind_local(&mut self, info: &StreamInfo) {
        self.video.remove(&info.ssrc);
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx.remove(&rtx);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A VP8 packet: `key` starts a keyframe (S bit, partition 0, P bit clear).
    fn vp8(ssrc: u32, seq: u16, ts: u32, key: bool) -> rtc::rtp::Packet {
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.payload = bytes::Bytes::from(if key {
            vec![0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a, 0, 0, 0, 0]
        } else {
            vec![0x00, 0x01, 2, 3]
        });
        p
    }

    /// The RTX resend of `seq` (original sequence number first).
    fn rtx(seq: u16, payload: usize) -> rtc::rtp::Packet {
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = 2;
        let mut b = seq.to_be_bytes().to_vec();
        b.resize(2 + payload, 0);
        p.payload = bytes::Bytes::from(b);
        p
    }

    fn send(l: &mut ResendLimiter, p: rtc::rtp::Packet, resend: bool, now: Instant) -> bool {
        let mut message = rtc::interceptor::AttributedPacket::from(Packet::Rtp(p));
        if resend {
            message = message.with(Attribute::Retransmission);
        }
        l.outbound(&TaggedPacket { now, transport: Default::default(), message })
    }

    fn limiter() -> (ResendLimiter, Arc<TransportCounters>) {
        let c = Arc::new(TransportCounters::default());
        let mut l = ResendLimiter {
            budget: ResendBudget::new(),
            video: HashMap::new(),
            rtx: HashMap::new(),
            counters: Some(c.clone()),
        };
        l.bind_local(&StreamInfo { ssrc: 1, ssrc_rtx: Some(2), mime_type: "video/VP8".into(), ..Default::default() });
        (l, c)
    }

    #[test]
    fn packets_from_before_the_latest_keyframe_are_not_resent() {
        let (mut l, c) = limiter();
        let t = Instant::now();
        // Sequence numbers wrap around between the frames.
        for (seq, ts, key) in
            [(65_530, 0, true), (65_531, 0, false), (65_534, 3_000, false), (2, 6_000, true), (3, 6_000, false)]
        {
            assert!(send(&mut l, vp8(1, seq, ts, key), false, t), "media always goes on");
        }
        assert!(!send(&mut l, rtx(65_531, 1_000), true, t), "before the keyframe");
        assert!(!send(&mut l, rtx(65_534, 1_000), true, t));
        assert!(send(&mut l, rtx(2, 1_000), true, t), "the keyframe itself");
        assert!(send(&mut l, rtx(3, 1_000), true, t));
        assert_eq!(c.get(Counter::ResendsBeforeKeyframe), 2);
        // A plain resend (no RTX) of the media SSRC, too.
        assert!(!send(&mut l, vp8(1, 65_534, 3_000, false), true, t));
    }

    #[test]
    fn a_keyframe_is_where_its_first_packet_is() {
        let (mut l, _) = limiter();
        let t = Instant::now();
        // Two packets of one keyframe that both look like its start: the first counts.
        send(&mut l, vp8(1, 10, 900, true), false, t);
        send(&mut l, vp8(1, 11, 900, true), false, t);
        assert!(send(&mut l, rtx(10, 500), true, t));
    }

    #[test]
    fn resends_beyond_the_budget_are_not_sent() {
        let (mut l, c) = limiter();
        let t = Instant::now();
        // Before any estimate: everything asked for goes.
        assert!((0..50).all(|_| send(&mut l, rtx(7, 1_176), true, t)));
        let remb = ReceiverEstimatedMaximumBitrate { bitrate: 400_000.0, ..Default::default() };
        let msg =
            TaggedPacket { now: t, transport: Default::default(), message: Packet::Rtcp(vec![Box::new(remb)]).into() };
        l.inbound(msg, &mut VecDeque::new());
        // 100 kbit/s, 250 ms deep: two 1 200-byte resends at once, then one every 96 ms.
        let sent = (0..10).filter(|_| send(&mut l, rtx(7, 1_176), true, t)).count();
        assert_eq!(sent, 2);
        assert!(send(&mut l, rtx(7, 1_176), true, t + Duration::from_millis(100)));
        assert_eq!(c.get(Counter::ResendsOverBudget), 8);
    }
}
