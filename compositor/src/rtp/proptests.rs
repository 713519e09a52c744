//! Property tests of the RTP header checks and RTCP sender reports: packets come from the
//! network through the SFU, so any bytes get a clear refusal or a header that is really there.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

fn config(cases: u32) -> ProptestConfig {
    // No regression files: a failure prints its minimal input, which belongs in a unit test.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// An RTP packet: header fields, CSRCs, an extension of `ext` words, payload and padding.
#[derive(Debug, Clone)]
struct Built {
    header: RtpHeader,
    csrcs: usize,
    ext: Option<usize>,
    payload: Vec<u8>,
    padding: u8,
}

impl Built {
    fn bytes(&self) -> Vec<u8> {
        let h = &self.header;
        let mut b0 = 0x80 | self.csrcs as u8;
        if self.ext.is_some() {
            b0 |= 0x10;
        }
        if self.padding > 0 {
            b0 |= 0x20;
        }
        let mut p = vec![b0, h.payload_type | if h.marker { 0x80 } else { 0 }];
        p.extend_from_slice(&h.sequence.to_be_bytes());
        p.extend_from_slice(&h.timestamp.to_be_bytes());
        p.extend_from_slice(&h.ssrc.to_be_bytes());
        p.extend(std::iter::repeat_n(0x11, 4 * self.csrcs));
        if let Some(words) = self.ext {
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&(words as u16).to_be_bytes());
            p.extend(std::iter::repeat_n(0x22, 4 * words));
        }
        p.extend_from_slice(&self.payload);
        if self.padding > 0 {
            p.extend(std::iter::repeat_n(0, usize::from(self.padding) - 1));
            p.push(self.padding);
        }
        p
    }
}

fn built() -> impl Strategy<Value = Built> {
    (
        (0u8..128, any::<u16>(), any::<u32>(), any::<u32>(), any::<bool>()),
        0usize..=15,
        prop::option::of(0usize..20),
        prop::collection::vec(any::<u8>(), 1..100),
        prop_oneof![Just(0u8), 1u8..=255],
    )
        .prop_map(|((payload_type, sequence, timestamp, ssrc, marker), csrcs, ext, payload, padding)| Built {
            header: RtpHeader { payload_type, sequence, timestamp, ssrc, marker },
            csrcs,
            ext,
            payload,
            padding,
        })
}

/// A refusal is an `InvalidRtp` with a reason; an acceptance reads the header as it is.
fn check(pkt: &[u8]) -> Result<Option<RtpHeader>, TestCaseError> {
    match parse_rtp_header(pkt) {
        Ok(h) => {
            prop_assert!(pkt.len() > 12 && pkt[0] >> 6 == 2);
            prop_assert_eq!(h.payload_type, pkt[1] & 0x7f);
            prop_assert_eq!(h.ssrc, u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]));
            Ok(Some(h))
        }
        Err(CompositorError::InvalidRtp(reason)) => {
            prop_assert!(!reason.is_empty());
            Ok(None)
        }
        Err(other) => Err(TestCaseError::fail(format!("not an RTP error: {other}"))),
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_bytes_get_a_reason_or_a_real_header(pkt in prop::collection::vec(any::<u8>(), 0..200), v2 in any::<bool>()) {
        let mut pkt = pkt;
        if v2 && !pkt.is_empty() {
            // Past the version check, so the length checks run on garbage.
            pkt[0] = 0x80 | (pkt[0] & 0x3f);
        }
        check(&pkt)?;
        if let Some(sr) = SenderReport::parse(&pkt) {
            prop_assert_eq!(SenderReport::parse(&sr.to_bytes()), Some(sr));
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Well-formed packets parse to their header; with padding that eats the whole payload,
    /// they are refused.
    #[test]
    fn built_packets_parse_to_their_header(b in built()) {
        let bytes = b.bytes();
        let header_len = 12 + 4 * b.csrcs + b.ext.map_or(0, |w| 4 + 4 * w);
        match check(&bytes)? {
            Some(h) => prop_assert_eq!(h, b.header),
            None => prop_assert!(header_len + usize::from(b.padding) >= bytes.len(), "{b:?} refused"),
        }
    }

    /// Cut anywhere, or with a count or length field overwritten: refused or still a header
    /// that is there.
    #[test]
    fn damaged_packets_are_refused_or_read(b in built(), cut in any::<Index>(), at in any::<Index>(), value in any::<u8>()) {
        let mut bytes = b.bytes();
        let i = at.index(bytes.len());
        bytes[i] = value;
        check(&bytes)?;
        let n = cut.index(bytes.len());
        check(&bytes[..n])?;
    }

    #[test]
    fn sender_reports_round_trip(ssrc in any::<u32>(), ntp_time in any::<u64>(), rtp_time in any::<u32>(), packet_count in any::<u32>(), octet_count in any::<u32>()) {
        let sr = SenderReport { ssrc, ntp_time, rtp_time, packet_count, octet_count };
        prop_assert_eq!(SenderReport::parse(&sr.to_bytes()), Some(sr));
        // Through nanoseconds, within one: a nanosecond is 4.3 units of the 2^-32 s fraction.
        let back = nanos_to_ntp(ntp_to_nanos(ntp_time));
        prop_assert!(ntp_time.abs_diff(back) <= 5, "{ntp_time} -> {back}");
    }
}
