//! RTCP from peers, as `rtc` parses it: arbitrary datagrams, valid compounds of the packets
//! browsers send, and those compounds damaged. The SFU forwards feedback and re-marshals what
//! it built from parsed packets, so a parsed compound must also marshal again.

use bytes::Bytes;
use proptest::prelude::*;
use rtc::rtcp::Packet;
use rtc::rtcp::goodbye::Goodbye;
use rtc::rtcp::packet::{marshal, unmarshal};
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

use super::config;
use super::mutate::{mutate, mutations};

/// SSRCs from a small pool (so that reports, REMBs and the tracks a connection sends name the
/// same streams), or any.
pub(crate) fn ssrc() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 1u32..=6, 1 => any::<u32>()]
}

fn block() -> impl Strategy<Value = ReceptionReport> {
    (ssrc(), any::<u8>(), 0u32..(1 << 24), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(ssrc, fraction_lost, total_lost, last_sequence_number, jitter, last_sender_report, delay)| ReceptionReport {
            ssrc,
            fraction_lost,
            total_lost,
            last_sequence_number,
            jitter,
            last_sender_report,
            delay,
        },
    )
}

fn receiver_report() -> impl Strategy<Value = Box<dyn Packet>> {
    (ssrc(), prop::collection::vec(block(), 0..=31)).prop_map(|(ssrc, reports)| -> Box<dyn Packet> {
        Box::new(ReceiverReport { ssrc, reports, ..Default::default() })
    })
}

fn sender_report() -> impl Strategy<Value = Box<dyn Packet>> {
    (ssrc(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), prop::collection::vec(block(), 0..4)).prop_map(
        |(ssrc, ntp_time, rtp_time, packet_count, octet_count, reports)| -> Box<dyn Packet> {
            Box::new(SenderReport {
                ssrc,
                ntp_time,
                rtp_time,
                packet_count,
                octet_count,
                reports,
                ..Default::default()
            })
        },
    )
}

fn remb() -> impl Strategy<Value = Box<dyn Packet>> {
    (ssrc(), 0u64..20_000_000_000, prop::collection::vec(ssrc(), 1..8)).prop_map(
        |(sender_ssrc, bps, ssrcs)| -> Box<dyn Packet> {
            Box::new(ReceiverEstimatedMaximumBitrate { sender_ssrc, bitrate: bps as f32, ssrcs })
        },
    )
}

fn pli() -> impl Strategy<Value = Box<dyn Packet>> {
    (ssrc(), ssrc()).prop_map(|(sender_ssrc, media_ssrc)| -> Box<dyn Packet> {
        Box::new(PictureLossIndication { sender_ssrc, media_ssrc })
    })
}

fn fir() -> impl Strategy<Value = Box<dyn Packet>> {
    (ssrc(), prop::collection::vec((ssrc(), any::<u8>()), 1..4)).prop_map(|(sender_ssrc, entries)| -> Box<dyn Packet> {
        let fir = entries.into_iter().map(|(ssrc, sequence_number)| FirEntry { ssrc, sequence_number }).collect();
        Box::new(FullIntraRequest { sender_ssrc, media_ssrc: 0, fir })
    })
}

fn nack() -> impl Strategy<Value = Box<dyn Packet>> {
    (ssrc(), ssrc(), prop::collection::vec((any::<u16>(), any::<u16>()), 1..5)).prop_map(
        |(sender_ssrc, media_ssrc, pairs)| -> Box<dyn Packet> {
            let nacks =
                pairs.into_iter().map(|(packet_id, lost_packets)| NackPair { packet_id, lost_packets }).collect();
            Box::new(TransportLayerNack { sender_ssrc, media_ssrc, nacks })
        },
    )
}

fn sdes() -> impl Strategy<Value = Box<dyn Packet>> {
    let kind =
        prop::sample::select(vec![SdesType::SdesCname, SdesType::SdesName, SdesType::SdesTool, SdesType::SdesNote]);
    let item = (kind, prop::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(sdes_type, text)| SourceDescriptionItem { sdes_type, text: Bytes::from(text) });
    let chunk = (ssrc(), prop::collection::vec(item, 1..3))
        .prop_map(|(source, items)| SourceDescriptionChunk { source, items });
    prop::collection::vec(chunk, 1..3).prop_map(|chunks| -> Box<dyn Packet> { Box::new(SourceDescription { chunks }) })
}

fn bye() -> impl Strategy<Value = Box<dyn Packet>> {
    (prop::collection::vec(ssrc(), 1..4), "[ -~]{0,30}")
        .prop_map(|(sources, reason)| -> Box<dyn Packet> { Box::new(Goodbye { sources, reason: Bytes::from(reason) }) })
}

/// A compound of the packets browsers send: reports first, then feedback and the rest.
pub(crate) fn compound() -> impl Strategy<Value = Vec<Box<dyn Packet>>> {
    let first = prop_oneof![receiver_report(), sender_report()];
    let rest = prop_oneof![receiver_report(), sender_report(), remb(), pli(), fir(), nack(), sdes(), bye()];
    (first, prop::collection::vec(rest, 0..6)).prop_map(|(first, mut rest)| {
        rest.insert(0, first);
        rest
    })
}

/// The bytes of a compound.
pub(crate) fn bytes_of(packets: &[Box<dyn Packet>]) -> Vec<u8> {
    marshal(packets).expect("a generated compound marshals").to_vec()
}

/// Parses `datagram` as a compound (`None`: refused, with an error that says something).
pub(crate) fn parse(datagram: &[u8]) -> Result<Option<Vec<Box<dyn Packet>>>, TestCaseError> {
    match unmarshal(&mut Bytes::copy_from_slice(datagram)) {
        Ok(packets) => Ok(Some(packets)),
        Err(e) => {
            prop_assert!(!e.to_string().trim().is_empty(), "an RTCP error without a message: {e:?}");
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_datagrams_parse_or_fail_with_a_message(datagram in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Some(packets) = parse(&datagram)? {
            prop_assert!(!packets.is_empty());
        }
    }

    /// Damaged compounds are refused or parsed, and whatever parses marshals again (it may be
    /// forwarded) to bytes that parse to the same packets.
    #[test]
    fn damaged_compounds_fail_cleanly_or_marshal_again(packets in compound(), damage in mutations()) {
        let datagram = mutate(bytes_of(&packets), &damage);
        let Some(parsed) = parse(&datagram)? else { return Ok(()) };
        if let Ok(again) = marshal(&parsed) {
            let reparsed = unmarshal(&mut again.freeze());
            prop_assert!(reparsed.is_ok(), "marshalled {parsed:?} does not parse: {reparsed:?}");
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A valid compound survives the trip through bytes unchanged.
    #[test]
    fn valid_compounds_round_trip_byte_for_byte(packets in compound()) {
        let bytes = bytes_of(&packets);
        let parsed = unmarshal(&mut Bytes::from(bytes.clone()));
        prop_assert!(parsed.is_ok(), "{packets:?}: {parsed:?}");
        let parsed = parsed.unwrap_or_default();
        prop_assert_eq!(parsed.len(), packets.len());
        prop_assert_eq!(bytes_of(&parsed), bytes);
    }
}
