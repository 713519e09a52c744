//! The sending side's memory of what it sent on a link, for repairs: the last
//! [`HISTORY_LEN`] packets of each stream by sequence number, and the RTX stream (RFC 4588)
//! each repair goes out on. A stream's RTX SSRC is its own with the lowest bit set: link
//! SSRCs of media are even (see [`media_ssrc`]), so the two never collide.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp;

/// Packets remembered per stream: about 2 s of 720p video at 2.5 Mbit/s.
pub(crate) const HISTORY_LEN: usize = 1024;

/// The RTX SSRC of a media stream's link SSRC.
pub fn rtx_ssrc(media: u32) -> u32 {
    media | 1
}

/// A link SSRC for media made from any number: even, so that its RTX SSRC is `| 1`.
pub fn media_ssrc(any: u32) -> u32 {
    any & !1
}

/// Whether a link SSRC is an RTX stream's.
pub(crate) fn is_rtx(ssrc: u32) -> bool {
    ssrc & 1 == 1
}

struct Sent {
    packet: rtp::Packet,
    resent_at: Option<Instant>,
}

/// One stream's last packets and its RTX sequence.
struct StreamHistory {
    slots: Vec<Option<Sent>>,
    rtx_seq: u16,
}

/// Every stream's history on one link.
#[derive(Default)]
pub(crate) struct SendHistory {
    streams: HashMap<u32, StreamHistory>,
}

impl SendHistory {
    /// Remembers a packet just sent.
    pub(crate) fn sent(&mut self, packet: &rtp::Packet) {
        let s = self.streams.entry(packet.header.ssrc).or_insert_with(|| StreamHistory {
            slots: (0..HISTORY_LEN).map(|_| None).collect(),
            rtx_seq: crate::sync::random_u32() as u16,
        });
        let i = usize::from(packet.header.sequence_number) % HISTORY_LEN;
        s.slots[i] = Some(Sent { packet: packet.clone(), resent_at: None });
    }

    /// Forgets a stream (it is no longer sent).
    pub(crate) fn forget(&mut self, ssrc: u32) {
        self.streams.remove(&ssrc);
    }

    /// The RTX packet repairing `seq` of stream `ssrc`, unless it is no longer remembered or
    /// was resent less than `holdoff` ago (a second NACK for it crossed the first repair).
    pub(crate) fn repair(&mut self, ssrc: u32, seq: u16, now: Instant, holdoff: Duration) -> Option<rtp::Packet> {
        let s = self.streams.get_mut(&ssrc)?;
        let slot = s.slots[usize::from(seq) % HISTORY_LEN].as_mut()?;
        if slot.packet.header.sequence_number != seq {
            return None;
        }
        if slot.resent_at.is_some_and(|t| now.saturating_duration_since(t) < holdoff) {
            return None;
        }
        slot.resent_at = Some(now);
        let original = &slot.packet;
        let mut payload = BytesMut::with_capacity(2 + original.payload.len());
        payload.put_u16(seq);
        payload.extend_from_slice(&original.payload);
        let mut header = original.header.clone();
        header.ssrc = rtx_ssrc(ssrc);
        header.sequence_number = s.rtx_seq;
        header.padding = false;
        s.rtx_seq = s.rtx_seq.wrapping_add(1);
        Some(rtp::Packet { header, payload: payload.freeze() })
    }
}

/// The packet an RTX packet repairs: the original sequence number from the first two bytes of
/// its payload, on the media SSRC.
pub(crate) fn unwrap_rtx(rtx: rtp::Packet) -> Option<rtp::Packet> {
    if rtx.payload.len() < 2 {
        return None;
    }
    let seq = u16::from_be_bytes([rtx.payload[0], rtx.payload[1]]);
    let mut header = rtx.header;
    header.ssrc = media_ssrc(header.ssrc);
    header.sequence_number = seq;
    Some(rtp::Packet { header, payload: Bytes::copy_from_slice(&rtx.payload[2..]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = 9000;
        p.payload = Bytes::from(vec![seq as u8; 20]);
        p
    }

    #[test]
    fn a_repair_carries_the_original_and_unwraps_to_it() {
        let mut h = SendHistory::default();
        let t = Instant::now();
        for seq in 65530..=65535u16 {
            h.sent(&packet(40, seq));
        }
        h.sent(&packet(40, 0));
        let rtx = h.repair(40, 65534, t, Duration::from_millis(10)).expect("remembered");
        assert_eq!(rtx.header.ssrc, 41);
        assert!(is_rtx(rtx.header.ssrc));
        let back = unwrap_rtx(rtx.clone()).unwrap();
        assert_eq!(back.header.ssrc, 40);
        assert_eq!(back.header.sequence_number, 65534);
        assert_eq!(back.payload, packet(40, 65534).payload);
        // Held off for a moment, then again; RTX numbers count up.
        assert!(h.repair(40, 65534, t + Duration::from_millis(5), Duration::from_millis(10)).is_none());
        let again = h.repair(40, 65534, t + Duration::from_millis(11), Duration::from_millis(10)).unwrap();
        assert_eq!(again.header.sequence_number, rtx.header.sequence_number.wrapping_add(1));
        // Not sent, overwritten, or another stream: nothing.
        assert!(h.repair(40, 100, t, Duration::ZERO).is_none());
        h.sent(&packet(40, 65534u16.wrapping_add(HISTORY_LEN as u16)));
        assert!(h.repair(40, 65534, t + Duration::from_secs(1), Duration::ZERO).is_none());
        assert!(h.repair(42, 0, t, Duration::ZERO).is_none());
        h.forget(40);
        assert!(h.repair(40, 0, t, Duration::ZERO).is_none());
        let mut short = packet(41, 1);
        short.payload = Bytes::from_static(&[1]);
        assert!(unwrap_rtx(short).is_none(), "an RTX payload holds at least the sequence number");
    }
}
