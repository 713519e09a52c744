//! What travels on a relay link besides RTP: standard RTCP (NACK, PLI, sender and receiver
//! reports), and two kinds of RTCP APP packets (RFC 3550 §6.7) of our own: the link's
//! round-trip probe (`TSRL`) and the relay's control messages (`TSRA`), whose content the
//! layer above defines. RTP and RTCP share the link and are told apart as RFC 5761 does.

use rtc::rtcp;
use rtc::shared::marshal::Unmarshal;

/// RTCP packet type of APP packets.
const PT_APP: u8 = 204;
/// The link's own probe: subtype 0 ping, 1 pong; data: the pinger's clock in microseconds.
pub(crate) const NAME_PROBE: [u8; 4] = *b"TSRL";
/// The relay's control messages (opaque here).
pub(crate) const NAME_CONTROL: [u8; 4] = *b"TSRA";
pub(crate) const PROBE_PING: u8 = 0;
pub(crate) const PROBE_PONG: u8 = 1;

/// Whether a datagram is RTCP (RFC 5761 §4: packet types 192-223 in the second byte).
pub(crate) fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// One packet of a compound RTCP datagram.
pub(crate) enum RtcpPart {
    /// An APP packet: subtype, name, data.
    App { subtype: u8, name: [u8; 4], data: Vec<u8> },
    /// Anything else, as the RTCP parser reads it (unknown kinds arrive as raw packets).
    Standard(Box<dyn rtcp::Packet>),
}

/// Splits a plaintext compound RTCP datagram into its packets. A packet whose length field
/// runs past the end ends the walk: what came before it is kept.
pub(crate) fn split_rtcp(mut rest: &[u8]) -> Vec<RtcpPart> {
    let mut parts = Vec::new();
    while rest.len() >= 4 {
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        if len > rest.len() || rest[0] >> 6 != 2 {
            break;
        }
        let (packet, tail) = rest.split_at(len);
        rest = tail;
        if packet[1] == PT_APP {
            if packet.len() >= 12 {
                let mut name = [0u8; 4];
                name.copy_from_slice(&packet[8..12]);
                parts.push(RtcpPart::App { subtype: packet[0] & 0x1f, name, data: packet[12..].to_vec() });
            }
            continue;
        }
        let mut buf = packet;
        if let Ok(mut ps) = rtcp::packet::unmarshal(&mut buf) {
            parts.extend(ps.drain(..).map(RtcpPart::Standard));
        }
    }
    parts
}

/// An APP packet from `ssrc`: `data` is padded with zeros to a multiple of 4 bytes (the
/// reader of a message must tolerate trailing zeros; ours are length-prefixed).
pub(crate) fn app_packet(ssrc: u32, subtype: u8, name: [u8; 4], data: &[u8]) -> Vec<u8> {
    let padded = data.len().div_ceil(4) * 4;
    let words = (12 + padded) / 4 - 1;
    let mut p = Vec::with_capacity(12 + padded);
    p.push(0x80 | (subtype & 0x1f));
    p.push(PT_APP);
    p.extend_from_slice(&(words as u16).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&name);
    p.extend_from_slice(data);
    p.resize(12 + padded, 0);
    p
}

/// `data` with its length in front (u32), so that padding can be told from content.
pub(crate) fn length_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The content of [`length_prefixed`] data, if whole.
pub(crate) fn unprefixed(data: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    data.get(4..4 + len)
}

/// An RTP header and payload read back (for RTX unwrapping and delivery).
pub(crate) fn parse_rtp(mut plain: &[u8]) -> Option<rtc::rtp::Packet> {
    rtc::rtp::Packet::unmarshal(&mut plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::shared::marshal::Marshal;

    #[test]
    fn app_and_standard_packets_share_a_compound_and_come_apart() {
        let pli = PictureLossIndication { sender_ssrc: 1, media_ssrc: 42 };
        let mut compound = pli.marshal().unwrap().to_vec();
        compound.extend(app_packet(7, 3, NAME_CONTROL, &length_prefixed(b"hello")));
        assert!(is_rtcp(&compound));
        let parts = split_rtcp(&compound);
        assert_eq!(parts.len(), 2);
        match &parts[0] {
            RtcpPart::Standard(p) => {
                assert_eq!(p.as_any().downcast_ref::<PictureLossIndication>().unwrap().media_ssrc, 42)
            }
            RtcpPart::App { .. } => panic!("the PLI first"),
        }
        match &parts[1] {
            RtcpPart::App { subtype, name, data } => {
                assert_eq!((*subtype, *name), (3, NAME_CONTROL));
                assert_eq!(unprefixed(data), Some(&b"hello"[..]));
            }
            RtcpPart::Standard(_) => panic!("the APP packet second"),
        }
    }

    #[test]
    fn a_damaged_compound_keeps_what_came_before_the_damage() {
        let mut compound = app_packet(7, PROBE_PING, NAME_PROBE, &[1, 2, 3, 4, 5, 6, 7, 8]);
        compound.extend([0x80, 204, 0xff, 0xff, 0, 0]);
        assert_eq!(split_rtcp(&compound).len(), 1);
        for cut in 0..compound.len() {
            let _ = split_rtcp(&compound[..cut]);
        }
        assert_eq!(unprefixed(&[0, 0, 0, 9, 1]), None);
        assert!(!is_rtcp(&[0x80, 96, 0, 1]));
    }
}
