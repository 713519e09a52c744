//! Lets the NACK generator see a publisher's repairs.
//!
//! `webrtc` 0.21 unwraps RTX (RFC 4588, `a=ssrc-group:FID`) only after the interceptor chain,
//! so its NACK generator never learns that a lost packet was repaired and asks for it again at
//! every interval until it ages out: at 5% loss a publisher resent each lost packet about 16
//! times (1,703 resends for 103 drops). Here, below the generator, an RTX packet carrying a
//! packet the generator asked for is turned back into that packet, so the repair counts as its
//! arrival for every interceptor above. Every other RTX packet (Chromium also sends old
//! packets over RTX to probe bandwidth) goes on untouched, as before.
//!
//! A simulcast publisher (RID layers) announces no RTX SSRCs: each repair stream names the
//! layer it repairs in the `repaired-rtp-stream-id` header extension (RFC 8852), which
//! `webrtc` 0.21 does not handle (it drops those packets). The layers' RIDs are learned from
//! the `rtp-stream-id` extension of their first packets, and a repair stream is matched to its
//! layer by (MID, RID); from then on its repairs are unwrapped the same way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rtc::interceptor::{Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use crate::stats::{Counter, TransportCounters};
use crate::tap::{PacketTap, Tapped};

/// Asked-for packets remembered at most (older asks are forgotten when it fills).
const MAX_ASKED: usize = 4096;

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const RRID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// The RTX unwrapper (an interceptor below the NACK generator).
pub(crate) struct RtxRepairs {
    /// RTX SSRC → (primary SSRC, primary payload type): announced (FID) or learned (RRID).
    repairs: HashMap<u32, (u32, u8)>,
    /// RTX SSRCs announced by FID (`webrtc` binds them as streams of their own).
    fid_rtx: HashSet<u32>,
    /// Bound primary streams → (payload type, whether their first packet was seen).
    primaries: HashMap<u32, (u8, bool)>,
    /// (MID, RID) of each simulcast layer → its SSRC.
    layers: HashMap<(Bytes, Bytes), u32>,
    /// Negotiated ids of the MID, RID and repaired-RID header extensions.
    ext: SimulcastExtensions,
    /// (primary SSRC, sequence number) the NACK generator asked for, oldest first.
    asked: VecDeque<(u32, u16)>,
    asked_set: HashSet<(u32, u16)>,
    counters: Option<Arc<TransportCounters>>,
}

#[derive(Default, Clone, Copy)]
struct SimulcastExtensions {
    mid: Option<u8>,
    rid: Option<u8>,
    rrid: Option<u8>,
}

impl SimulcastExtensions {
    fn learn(&mut self, info: &StreamInfo) {
        for e in &info.rtp_header_extensions {
            let Ok(id) = u8::try_from(e.id) else { continue };
            match e.uri.as_str() {
                MID_URI => self.mid = Some(id),
                RID_URI => self.rid = Some(id),
                RRID_URI => self.rrid = Some(id),
                _ => {}
            }
        }
    }

    fn value(id: Option<u8>, p: &rtc::rtp::Packet) -> Option<Bytes> {
        p.header.get_extension(id?).filter(|v| !v.is_empty())
    }
}

impl RtxRepairs {
    pub(crate) fn new(counters: Option<Arc<TransportCounters>>) -> Tapped<Self> {
        Tapped::new(Self::with_counters(counters))
    }

    fn with_counters(counters: Option<Arc<TransportCounters>>) -> Self {
        RtxRepairs {
            repairs: HashMap::new(),
            fid_rtx: HashSet::new(),
            primaries: HashMap::new(),
            layers: HashMap::new(),
            ext: SimulcastExtensions::default(),
            asked: VecDeque::new(),
            asked_set: HashSet::new(),
            counters,
        }
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

    /// Learns a layer's RID from its first packet (`webrtc` binds a RID layer on a packet that
    /// carries its RID), and which layer an unknown stream repairs. A bound stream's packets
    /// are parsed once: the per-packet cost is one map lookup.
    fn classify(&mut self, p: &rtc::rtp::Packet) {
        let ssrc = p.header.ssrc;
        match self.primaries.get_mut(&ssrc) {
            Some((_, true)) => {}
            Some((_, seen)) => {
                *seen = true;
                if let Some(rid) = SimulcastExtensions::value(self.ext.rid, p) {
                    let mid = SimulcastExtensions::value(self.ext.mid, p).unwrap_or_default();
                    self.layers.insert((mid, rid), ssrc);
                }
            }
            None if !self.repairs.contains_key(&ssrc) => {
                let Some(rrid) = SimulcastExtensions::value(self.ext.rrid, p) else { return };
                let mid = SimulcastExtensions::value(self.ext.mid, p);
                let layer = match mid {
                    Some(mid) => self.layers.get(&(mid, rrid)).copied(),
                    // Without a MID the RID alone must name one layer.
                    None => {
                        let mut found = self.layers.iter().filter(|((_, rid), _)| *rid == rrid).map(|(_, s)| *s);
                        match (found.next(), found.next()) {
                            (Some(s), None) => Some(s),
                            _ => None,
                        }
                    }
                };
                if let Some(primary) = layer
                    && let Some(&(pt, _)) = self.primaries.get(&primary)
                {
                    self.repairs.insert(ssrc, (primary, pt));
                }
            }
            None => {}
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
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.classify(p);
            if let Some(&(ssrc, pt)) = self.repairs.get(&p.header.ssrc)
                && let Some(seq) = original_seq(p)
                && self.asked_set.remove(&(ssrc, seq))
            {
                unwrap_rtx(p, ssrc, pt, seq);
                if let Some(c) = &self.counters {
                    c.add(Counter::RepairsReceived, 1);
                }
            }
        }
        out.push_back(msg);
    }

    /// Notes what the NACK generator (above) asks for.
    fn outbound(&mut self, msg: &TaggedPacket) -> bool {
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
        true
    }

    fn bind_remote(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.insert(rtx, (info.ssrc, info.payload_type));
            self.fid_rtx.insert(rtx);
        }
        // `webrtc` binds an announced RTX stream as a stream of its own: not a primary.
        if !self.fid_rtx.contains(&info.ssrc) {
            self.ext.learn(info);
            self.primaries.insert(info.ssrc, (info.payload_type, false));
        }
    }

    fn unbind_remote(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.remove(&rtx);
            self.fid_rtx.remove(&rtx);
        }
        if self.primaries.remove(&info.ssrc).is_some() {
            self.layers.retain(|_, s| *s != info.ssrc);
            self.repairs.retain(|_, (primary, _)| *primary != info.ssrc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asked_for_packets_are_unwrapped_and_each_once() {
        let mut r = RtxRepairs::with_counters(None);
        r.repairs.insert(2222, (1111, 96));
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

    fn info(ssrc: u32, pt: u8) -> StreamInfo {
        let ext = |uri: &str, id: u16| rtc::interceptor::RTPHeaderExtension { uri: uri.to_owned(), id };
        StreamInfo {
            ssrc,
            payload_type: pt,
            rtp_header_extensions: vec![ext(MID_URI, 1), ext(RID_URI, 2), ext(RRID_URI, 3)],
            ..Default::default()
        }
    }

    fn packet(ssrc: u32, seq: u16, exts: &[(u8, &str)], payload: &[u8]) -> rtc::rtp::Packet {
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.payload_type = 97;
        p.payload = Bytes::copy_from_slice(payload);
        for &(id, v) in exts {
            p.header.set_extension(id, Bytes::copy_from_slice(v.as_bytes())).unwrap();
        }
        p
    }

    fn run(r: &mut RtxRepairs, p: rtc::rtp::Packet) -> rtc::rtp::Packet {
        let msg = TaggedPacket {
            now: std::time::Instant::now(),
            transport: Default::default(),
            message: rtc::interceptor::Packet::Rtp(p).into(),
        };
        let mut out = VecDeque::new();
        r.inbound(msg, &mut out);
        match out.pop_front().map(|m| m.message.packet) {
            Some(Packet::Rtp(p)) => p,
            _ => panic!("the packet goes on"),
        }
    }

    #[test]
    fn a_simulcast_layers_repairs_are_matched_by_rid_and_unwrapped() {
        let counters = Arc::new(TransportCounters::default());
        let mut r = RtxRepairs::with_counters(Some(counters.clone()));
        // Two layers of one m-section, bound by `webrtc` on their first packets.
        r.bind_remote(&info(100, 96));
        r.bind_remote(&info(200, 96));
        run(&mut r, packet(100, 1, &[(1, "0"), (2, "q")], &[1]));
        run(&mut r, packet(200, 1, &[(1, "0"), (2, "f")], &[1]));
        // A padding probe on the repair stream of "f" (no payload) teaches the mapping, and
        // goes on untouched.
        let probe = run(&mut r, packet(900, 7, &[(1, "0"), (3, "f")], &[]));
        assert_eq!(probe.header.ssrc, 900);
        assert_eq!(r.repairs.get(&900), Some(&(200, 96)));
        // The generator asks for 200/0x0042; its repair comes back as that packet, once.
        r.ask(200, 0x42);
        let repaired = run(&mut r, packet(900, 8, &[(3, "f")], &[0x00, 0x42, 0xde, 0xad]));
        assert_eq!(
            (repaired.header.ssrc, repaired.header.payload_type, repaired.header.sequence_number),
            (200, 96, 0x42)
        );
        assert_eq!(&repaired.payload[..], &[0xde, 0xad]);
        let again = run(&mut r, packet(900, 9, &[(3, "f")], &[0x00, 0x42, 0xde, 0xad]));
        assert_eq!(again.header.ssrc, 900, "a second copy is not unwrapped");
        assert_eq!(counters.get(Counter::RepairsReceived), 1);
        // A repair stream for a RID nobody sends stays unknown; a layer that goes forgets its
        // repair stream.
        run(&mut r, packet(901, 1, &[(1, "0"), (3, "h")], &[]));
        assert!(!r.repairs.contains_key(&901));
        r.unbind_remote(&info(200, 96));
        assert!(!r.repairs.contains_key(&900));
        assert!(r.layers.values().all(|&s| s == 100));
    }
}
