//! ICE-TCP (RFC 4571) framing, as `transport/tcp.rs` reads each stream: whatever way a peer
//! cuts its frames into reads, the same packets come out; garbage never panics, and what
//! stays buffered is at most one unfinished frame.

use proptest::prelude::*;

use crate::transport::framing::{FrameReader, frame};

use super::config;

/// `stream` fed to a decoder in reads cut at `cuts`, draining frames after each read.
fn decode(stream: &[u8], cuts: &[prop::sample::Index]) -> (Vec<Vec<u8>>, usize) {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    at.push(stream.len());
    at.sort_unstable();
    let mut reader = FrameReader::default();
    let mut out = Vec::new();
    let mut from = 0;
    for to in at {
        reader.push(&stream[from..to], |f| out.push(f.to_vec()));
        from = to;
    }
    (out, reader.buffered())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn frames_survive_any_cutting(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..600), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream: Vec<u8> = packets.iter().flat_map(|p| frame(p).unwrap_or_default()).collect();
        let (out, left) = decode(&stream, &cuts);
        prop_assert_eq!(out, packets);
        prop_assert_eq!(left, 0);
    }

    #[test]
    fn garbage_leaves_at_most_one_unfinished_frame(
        stream in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let (out, left) = decode(&stream, &cuts);
        // Empty frames are skipped, so what came out is at most what went in.
        let taken: usize = out.iter().map(|p| p.len() + 2).sum();
        prop_assert!(taken + left <= stream.len());
        prop_assert!(out.iter().all(|p| !p.is_empty()));
        prop_assert!(left < 2 + usize::from(u16::MAX));
    }
}
