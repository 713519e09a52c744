//! RTP checks and the RTCP sender reports we hand to the jitter buffers.
//! Nothing here trusts its input: packets come from the network through the SFU.

use crate::error::{CompositorError, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The fields of an RTP header we check before a packet enters the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
}

/// Parses and checks an RTP packet's fixed header, CSRCs and extension lengths.
pub fn parse_rtp_header(pkt: &[u8]) -> Result<RtpHeader> {
    if pkt.len() < 12 {
        return Err(CompositorError::InvalidRtp("shorter than the 12-byte RTP header"));
    }
    if pkt[0] >> 6 != 2 {
        return Err(CompositorError::InvalidRtp("RTP version is not 2"));
    }
    let csrc_count = (pkt[0] & 0x0f) as usize;
    let mut header_len = 12 + 4 * csrc_count;
    if pkt.len() < header_len {
        return Err(CompositorError::InvalidRtp("CSRC list runs past the end"));
    }
    if pkt[0] & 0x10 != 0 {
        if pkt.len() < header_len + 4 {
            return Err(CompositorError::InvalidRtp("extension header runs past the end"));
        }
        let words = u16::from_be_bytes([pkt[header_len + 2], pkt[header_len + 3]]) as usize;
        header_len += 4 + 4 * words;
        if pkt.len() < header_len {
            return Err(CompositorError::InvalidRtp("extension runs past the end"));
        }
    }
    let mut payload_end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        let pad = pkt[pkt.len() - 1] as usize;
        if pad == 0 || header_len + pad > pkt.len() {
            return Err(CompositorError::InvalidRtp("bad padding length"));
        }
        payload_end -= pad;
    }
    if payload_end <= header_len {
        return Err(CompositorError::InvalidRtp("no payload"));
    }
    Ok(RtpHeader {
        payload_type: pkt[1] & 0x7f,
        marker: pkt[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
    })
}

/// An RTCP sender report (RFC 3550 §6.4.1): maps the sender's RTP clock to its wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low).
    pub ntp_time: u64,
    pub rtp_time: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

impl SenderReport {
    /// The 28-byte RTCP SR packet (no report blocks).
    pub fn to_bytes(&self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0] = 0x80; // V=2, P=0, RC=0
        b[1] = 200; // PT=SR
        b[2..4].copy_from_slice(&6u16.to_be_bytes()); // length in words minus one
        b[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        b[8..16].copy_from_slice(&self.ntp_time.to_be_bytes());
        b[16..20].copy_from_slice(&self.rtp_time.to_be_bytes());
        b[20..24].copy_from_slice(&self.packet_count.to_be_bytes());
        b[24..28].copy_from_slice(&self.octet_count.to_be_bytes());
        b
    }

    /// Parses the first packet of a compound RTCP packet if it is an SR.
    pub fn parse(b: &[u8]) -> Option<SenderReport> {
        if b.len() < 28 || b[0] >> 6 != 2 || b[1] != 200 {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(SenderReport {
            ssrc: u32_at(4),
            ntp_time: u64::from_be_bytes(b[8..16].try_into().ok()?),
            rtp_time: u32_at(16),
            packet_count: u32_at(20),
            octet_count: u32_at(24),
        })
    }

    /// NTP time in nanoseconds since 1900.
    pub fn ntp_nanos(&self) -> u128 {
        ntp_to_nanos(self.ntp_time)
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u128 = 2_208_988_800;

/// The wall clock now, in nanoseconds since the NTP epoch (1900).
pub fn ntp_now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos()
        + NTP_UNIX_OFFSET_S * 1_000_000_000
}

pub fn ntp_to_nanos(ntp: u64) -> u128 {
    let secs = (ntp >> 32) as u128;
    let frac = (ntp & 0xffff_ffff) as u128;
    secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32)
}

pub fn nanos_to_ntp(nanos: u128) -> u64 {
    let secs = (nanos / 1_000_000_000) as u64;
    let frac = (((nanos % 1_000_000_000) << 32) / 1_000_000_000) as u64;
    (secs << 32) | frac
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn parses_a_valid_header() {
        let h = parse_rtp_header(&packet(96, 7, 9000, 0x1234)).unwrap();
        assert_eq!((h.payload_type, h.sequence, h.timestamp, h.ssrc), (96, 7, 9000, 0x1234));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_rtp_header(&[]).is_err());
        assert!(parse_rtp_header(&[0u8; 12]).is_err()); // version 0
        let mut p = packet(96, 1, 1, 1);
        p[0] |= 0x0f; // 15 CSRCs that are not there
        assert!(parse_rtp_header(&p).is_err());
        let mut p = packet(96, 1, 1, 1);
        p[0] |= 0x10; // extension bit without an extension
        assert!(parse_rtp_header(&p).is_err());
        let mut p = packet(96, 1, 1, 1);
        p[0] |= 0x20;
        *p.last_mut().unwrap() = 200; // padding longer than the packet
        assert!(parse_rtp_header(&p).is_err());
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut x: u32 = 12345;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_rtp_header(&bytes);
            let _ = SenderReport::parse(&bytes);
        }
    }

    #[test]
    fn sender_report_round_trips() {
        let sr = SenderReport {
            ssrc: 42,
            ntp_time: nanos_to_ntp(3_900_000_000_123_456_789),
            rtp_time: 77,
            packet_count: 5,
            octet_count: 500,
        };
        assert_eq!(SenderReport::parse(&sr.to_bytes()), Some(sr));
        let back = ntp_to_nanos(sr.ntp_time);
        assert!((back as i128 - 3_900_000_000_123_456_789i128).abs() < 2);
    }
}
