//! What a relay link did, for `/metrics`: counters the link's driver updates and any thread
//! reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// One figure: a monotonic count, or a gauge where its doc says so.
#[derive(Default)]
pub struct Count(AtomicU64);

impl Count {
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The figure now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A relay link's counters (one direction pair with one other node).
#[derive(Default)]
pub struct LinkCounters {
    pub packets_sent: Count,
    pub bytes_sent: Count,
    pub packets_received: Count,
    pub bytes_received: Count,
    /// Missing packets asked for (each ask of each packet).
    pub nacks_sent: Count,
    pub nacks_received: Count,
    /// Repairs sent (RTX).
    pub retransmitted: Count,
    /// Missing packets that arrived as a repair.
    pub repaired: Count,
    /// Missing packets given up on.
    pub lost: Count,
    /// Packets received twice or too late.
    pub duplicates: Count,
    /// Datagrams that did not decrypt or parse.
    pub rejected: Count,
    pub keyframe_requests_sent: Count,
    pub keyframe_requests_received: Count,
    /// The round trip, in microseconds (a gauge).
    pub rtt_us: Count,
    /// The far side's worst loss fraction in its last report (of 256; a gauge).
    pub far_fraction_lost: Count,
}

impl LinkCounters {
    pub(crate) fn sent(&self, payload: usize) {
        self.packets_sent.inc();
        self.bytes_sent.add(payload as u64);
    }

    pub(crate) fn received(&self, payload: usize) {
        self.packets_received.inc();
        self.bytes_received.add(payload as u64);
    }
}
