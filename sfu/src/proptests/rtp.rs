//! RTP from publishers: `rtc`'s packet parser (what SRTP decrypts goes through it), then what
//! the SFU reads from a parsed packet: keyframe starts per codec, the VP8 frame size, RFC 6464
//! audio levels, and the sequence/timestamp rewriting of forwarded packets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rtc::rtp::header::{Extension, Header};
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};

use super::config;
use super::mutate::{mutate, mutations};
use crate::core::keyframe::{VideoCodec, is_keyframe, vp8_keyframe_size};
use crate::core::{StreamRewriter, parse_audio_level};

const ONE_BYTE: u16 = 0xBEDE;
const TWO_BYTE: u16 = 0x1000;

/// Header extensions as browsers send them (RFC 8285 one- or two-byte), or none.
fn extensions() -> impl Strategy<Value = Option<(u16, Vec<Extension>)>> {
    // Distinct ids, as negotiated.
    let one = prop::collection::btree_map(1u8..=14, prop::collection::vec(any::<u8>(), 1..=16), 1..5);
    let two = prop::collection::btree_map(1u8..=255, prop::collection::vec(any::<u8>(), 0..=40), 1..4);
    let ext =
        |v: BTreeMap<u8, Vec<u8>>| v.into_iter().map(|(id, p)| Extension { id, payload: Bytes::from(p) }).collect();
    prop_oneof![
        Just(None),
        one.prop_map(move |v| Some((ONE_BYTE, ext(v)))),
        two.prop_map(move |v| Some((TWO_BYTE, ext(v)))),
    ]
}

/// A well-formed RTP packet with CSRCs, extensions, padding and a payload of any size.
fn packet() -> impl Strategy<Value = Packet> {
    (
        (any::<bool>(), any::<bool>(), 0u8..128, any::<u16>(), any::<u32>(), any::<u32>()),
        prop::collection::vec(any::<u32>(), 0..=15),
        extensions(),
        prop::collection::vec(any::<u8>(), 1..200),
    )
        .prop_map(|((padding, marker, payload_type, sequence_number, timestamp, ssrc), csrc, ext, payload)| {
            let (extension_profile, extensions) = ext.clone().unwrap_or_default();
            Packet {
                header: Header {
                    version: 2,
                    padding,
                    extension: ext.is_some(),
                    marker,
                    payload_type,
                    sequence_number,
                    timestamp,
                    ssrc,
                    csrc,
                    extension_profile,
                    extensions,
                    extensions_padding: 0,
                },
                payload: Bytes::from(payload),
            }
        })
}

fn parse(datagram: &[u8]) -> Result<Option<Packet>, TestCaseError> {
    match Packet::unmarshal(&mut Bytes::copy_from_slice(datagram)) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            prop_assert!(!e.to_string().trim().is_empty(), "an RTP error without a message: {e:?}");
            Ok(None)
        }
    }
}

/// Everything the SFU reads from a packet it forwards; none of it may panic.
fn read_like_the_forwarder(p: &Packet) {
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264, VideoCodec::Av1] {
        let _ = is_keyframe(codec, &p.payload);
    }
    if let Some((w, h)) = vp8_keyframe_size(&p.payload) {
        assert!(w < 0x4000 && h < 0x4000);
    }
    for id in p.header.get_extension_ids() {
        if let Some(ext) = p.header.get_extension(id) {
            let _ = parse_audio_level(&ext);
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_datagrams_parse_or_fail_with_a_message(datagram in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Some(p) = parse(&datagram)? {
            read_like_the_forwarder(&p);
        }
    }

    /// Payloads of any shape, read as every codec the forwarder knows.
    #[test]
    fn payload_readers_take_any_bytes(payload in prop::collection::vec(any::<u8>(), 0..64)) {
        for codec in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264, VideoCodec::Av1] {
            let _ = is_keyframe(codec, &payload);
        }
        if let Some((w, h)) = vp8_keyframe_size(&payload) {
            prop_assert!(is_keyframe(VideoCodec::Vp8, &payload));
            prop_assert!(w < 0x4000 && h < 0x4000);
        }
        let level = parse_audio_level(&payload);
        prop_assert_eq!(level.is_some(), !payload.is_empty());
        prop_assert!(level.is_none_or(|(l, _)| l <= 127));
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// A well-formed packet parses back to itself (extensions, CSRCs, payload without padding).
    #[test]
    fn valid_packets_round_trip(p in packet()) {
        let bytes = p.marshal();
        prop_assert!(bytes.is_ok(), "{p:?}: {bytes:?}");
        let bytes = bytes.unwrap_or_default();
        let back = parse(&bytes)?;
        prop_assert!(back.is_some(), "{p:?} does not parse");
        let back = back.unwrap_or_default();
        prop_assert_eq!(&back.payload, &p.payload);
        prop_assert_eq!(&back.header.csrc, &p.header.csrc);
        prop_assert_eq!(back.header.extensions.len(), p.header.extensions.len());
        for e in &p.header.extensions {
            prop_assert_eq!(back.header.get_extension(e.id), Some(e.payload.clone()));
        }
        prop_assert_eq!(
            (back.header.sequence_number, back.header.timestamp, back.header.ssrc, back.header.marker, back.header.payload_type),
            (p.header.sequence_number, p.header.timestamp, p.header.ssrc, p.header.marker, p.header.payload_type)
        );
    }

    /// A damaged packet is refused or parsed; what parses is read without a panic and marshals
    /// again (the forwarder re-sends it) to bytes that parse.
    #[test]
    fn damaged_packets_fail_cleanly_or_forward(p in packet(), damage in mutations()) {
        let datagram = mutate(p.marshal().map(|b| b.to_vec()).unwrap_or_default(), &damage);
        let Some(parsed) = parse(&datagram)? else { return Ok(()) };
        read_like_the_forwarder(&parsed);
        if let Ok(again) = parsed.marshal() {
            prop_assert!(parse(&again)?.is_some(), "{parsed:?} marshals to bytes that do not parse");
        }
    }

    /// Whatever sequence numbers and timestamps a publisher sends, rewriting never panics and a
    /// source switch continues right after the last packet sent.
    #[test]
    fn rewriting_takes_any_numbering(
        packets in prop::collection::vec((1u32..=3, any::<u16>(), any::<u32>(), 0u64..100), 1..40),
        clock_rate in prop_oneof![Just(0u32), Just(48_000), Just(90_000), any::<u32>()],
    ) {
        let mut r = StreamRewriter::new(clock_rate);
        let mut now = Instant::now();
        let mut last: Option<u16> = None;
        for (ssrc, seq, ts, ms) in packets {
            now += Duration::from_millis(ms);
            if let Some(out) = r.rewrite(ssrc, seq, ts, now) {
                if out.rebased && let Some(last) = last {
                    prop_assert_eq!(out.seq, last.wrapping_add(1));
                }
                if last.is_none_or(|l| l != out.seq && out.seq.wrapping_sub(l) < 0x8000) {
                    last = Some(out.seq);
                }
            }
        }
    }
}
