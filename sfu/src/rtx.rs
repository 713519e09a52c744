//! Lets the NACK generator see a publisher's repairs.
//!
//! `webrtc` 0.21 unwraps RTX (RFC 4588, `a=ssrc-group:FID`) only after the interceptor chain,
//! so its NACK generator never learns that a lost packet was repaired and asks for it again at
//! every interval until it ages out: at 5% loss a publisher resent each lost packet about 16
//! times (1,703 resends for 103 drops). Here, below the generator, an RTX packet carrying a
//! packet the generator asked for is turned back into that packet, so the repair counts as its
//! arrival for every interceptor above. Every other RTX packet (Chromium also sends old
//! packets over RTX to probe bandwidth) goes on untouched, as before.

use std::collections::{HashMap, HashSet, VecDeque};

use rtc::interceptor::{Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use crate::tap::{PacketTap, Tapped};

/// Asked-for packets remembered at most (older asks are forgotten when it fills).
const MAX_ASKED: usize = 4096;

/// The RTX unwrapper (an interceptor below the NACK generator).
pub(crate) struct RtxRepairs {
    /// RTX SSRC → (primary SSRC, primary payload type).
    repairs: HashMap<u32, (u32, u8)>,
    /// (primary SSRC, sequence number) the NACK generator asked for, oldest first.
    asked: VecDeque<(u32, u16)>,
    asked_set: HashSet<(u32, u16)>,
}

impl RtxRepairs {
    pub(crate) fn new() -> Tapped<Self> {
        Tapped::new(RtxRepairs { repairs: HashMap::new(), asked: VecDeque::new(), asked_set: HashSet::new() })
    }

    fn ask(&mut self, ssrc: u32, seq: u16) {
        if self.asked_set.insert((ssrc, seq)) {
            self.asked.push_back((ssrc, seq));
            while self.asked.len() > MAX_ASKED {
                if let Some(old) = self.asked.pop_front() {
                    self.asked_set.remove(&old);
                }
            }
        }
    }
}

/// The sequence number an RTX packet carries (its payload's first two bytes).
fn original_seq(p: &rtc::rtp::Packet) -> Option<u16> {
    (p.payload.len() >= 2).then(|| u16::from_be_bytes([p.payload[0], p.payload[1]]))
}

/// Rewrites an RTX packet as the packet it repairs (as `webrtc` would after the chain).
fn unwrap_rtx(p: &mut rtc::rtp::Packet, primary_ssrc: u32, primary_pt: u8, seq: u16) {
    p.payload = p.payload.slice(2..);
    p.header.ssrc = primary_ssrc;
    p.header.payload_type = primary_pt;
    p.header.sequence_number = seq;
    // The RTX packet's padding is not the repaired packet's.
    p.header.padding = false;
}

impl PacketTap for RtxRepairs {
    fn inbound(&mut self, mut msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtp(p) = &mut msg.message.packet
            && let Some(&(ssrc, pt)) = self.repairs.get(&p.header.ssrc)
            && let Some(seq) = original_seq(p)
            && self.asked_set.remove(&(ssrc, seq))
        {
            unwrap_rtx(p, ssrc, pt, seq);
        }
        out.push_back(msg);
    }

    /// Notes what the NACK generator (above) asks for.
    fn outbound(&mut self, msg: &TaggedPacket) {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(nack) = p.as_any().downcast_ref::<TransportLayerNack>() {
                    for pair in &nack.nacks {
                        for seq in pair.packet_list() {
                            self.ask(nack.media_ssrc, seq);
                        }
                    }
                }
            }
        }
    }

    fn bind_remote(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.insert(rtx, (info.ssrc, info.payload_type));
        }
    }

    fn unbind_remote(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.remove(&rtx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asked_for_packets_are_unwrapped_and_each_once() {
        let mut r = RtxRepairs { repairs: HashMap::from([(2222, (1111, 96))]), asked: VecDeque::new(), asked_set: HashSet::new() };
        let rtx = |osn: u16| {
            let mut p = rtc::rtp::Packet::default();
            p.header.ssrc = 2222;
            p.header.payload_type = 97;
            p.header.padding = true;
            let mut payload = osn.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0xaa, 0xbb]);
            p.payload = bytes::Bytes::from(payload);
            p
        };
        r.ask(1111, 0x1234);
        let mut p = rtx(0x1234);
        let seq = original_seq(&p).unwrap();
        assert!(r.asked_set.remove(&(1111, seq)));
        unwrap_rtx(&mut p, 1111, 96, seq);
        assert_eq!((p.header.ssrc, p.header.payload_type, p.header.sequence_number), (1111, 96, 0x1234));
        assert_eq!(&p.payload[..], &[0xaa, 0xbb]);
        assert!(!p.header.padding);
        assert!(!r.asked_set.contains(&(1111, 0x1234)), "a second copy is not unwrapped");
        for s in 0..(MAX_ASKED as u16 + 10) {
            r.ask(1111, s);
        }
        assert_eq!(r.asked.len(), MAX_ASKED);
        assert_eq!(r.asked_set.len(), MAX_ASKED);
        assert!(!r.asked_set.contains(&(1111, 0)), "the oldest asks are forgotten");
    }
}
