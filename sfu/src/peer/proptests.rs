//! Property tests of the compound splitting in [`RtcpToApp`]: whatever compound a peer sends,
//! each packet the application wants goes on alone and routable, and nothing else does.

use std::collections::HashSet;

use proptest::prelude::*;
use rtc::rtcp::packet::{marshal, unmarshal};

use super::*;
use crate::proptests::config;
use crate::proptests::mutate::{mutate, mutations};
use crate::proptests::rtcp::{bytes_of, compound, parse, ssrc};

fn splitter(sent: Vec<u32>) -> RtcpToApp {
    RtcpToApp { sent_ssrcs: sent.into_iter().collect() }
}

/// What `packets` should give: one receiver report per report block, and each REMB, PLI,
/// FIR and sender report, in order.
fn expected_count(packets: &[Box<dyn rtc::rtcp::Packet>]) -> usize {
    packets
        .iter()
        .map(|p| {
            let a = p.as_any();
            if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                rr.reports.len()
            } else if a.is::<ReceiverEstimatedMaximumBitrate>()
                || a.is::<PictureLossIndication>()
                || a.is::<FullIntraRequest>()
                || a.is::<SenderReport>()
            {
                1
            } else {
                0
            }
        })
        .sum()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn each_wanted_packet_goes_on_alone_and_routable(packets in compound(), sent in prop::collection::vec(ssrc(), 0..4)) {
        // Through bytes, as from the network.
        let parsed = parse(&bytes_of(&packets))?.unwrap_or_default();
        let split = splitter(sent.clone());
        let out = split.for_application(&parsed);
        prop_assert_eq!(out.len(), expected_count(&parsed));
        let sent: HashSet<u32> = sent.into_iter().collect();
        for p in &out {
            let a = p.as_any();
            if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                prop_assert_eq!(rr.reports.len(), 1, "one block per report, so it routes by its SSRC");
            }
            if let Some(remb) = a.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                // The media SSRCs we send come first; none is lost or invented.
                let first_other = remb.ssrcs.iter().position(|s| !sent.contains(s)).unwrap_or(remb.ssrcs.len());
                prop_assert!(remb.ssrcs[first_other..].iter().all(|s| !sent.contains(s)), "{:?}", remb.ssrcs);
            }
            // Each leaves as a compound of one packet.
            let bytes = marshal(std::slice::from_ref(p));
            prop_assert!(bytes.is_ok(), "{p:?}: {bytes:?}");
            let again = unmarshal(&mut bytes.unwrap_or_default().freeze());
            prop_assert!(again.as_ref().is_ok_and(|a| a.len() == 1), "{p:?}: {again:?}");
        }
        // The report blocks and REMB SSRCs, all there.
        let blocks = |ps: &[Box<dyn rtc::rtcp::Packet>]| -> Vec<u32> {
            let mut v: Vec<u32> = ps
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<ReceiverReport>())
                .flat_map(|rr| rr.reports.iter().map(|b| b.ssrc))
                .collect();
            v.extend(ps.iter().filter_map(|p| p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>()).flat_map(|r| r.ssrcs.clone()));
            v.sort_unstable();
            v
        };
        prop_assert_eq!(blocks(&out), blocks(&parsed));
    }

    /// Whatever a damaged compound parses to is split without a panic.
    #[test]
    fn damaged_compounds_split_without_panicking(packets in compound(), damage in mutations(), sent in prop::collection::vec(ssrc(), 0..4)) {
        let Some(parsed) = parse(&mutate(bytes_of(&packets), &damage))? else { return Ok(()) };
        for p in splitter(sent).for_application(&parsed) {
            let _ = marshal(std::slice::from_ref(&p));
        }
    }
}
