//! A simulcast layer's bitrate, measured from the packets the forwarder sees.

use std::time::{Duration, Instant};

/// Per-layer bitrate measurement over half-second windows.
#[derive(Debug, Clone, Default)]
pub(super) struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    last_bps: u64,
    last_packet: Option<Instant>,
}

impl RateMeter {
    /// Counts a packet of `bytes` at `now`; true when a window closed (the rate changed).
    pub(super) fn add(&mut self, bytes: usize, now: Instant) -> bool {
        self.last_packet = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.bytes += bytes as u64;
        let el = now.saturating_duration_since(start);
        if el >= Duration::from_millis(500) {
            let bps = self.bytes * 8 * 1000 / el.as_millis().max(1) as u64;
            // First window: take it; then smooth.
            self.last_bps = if self.last_bps == 0 { bps } else { (self.last_bps + bps) / 2 };
            self.bytes = 0;
            self.window_start = Some(now);
            return true;
        }
        if self.last_bps == 0 {
            // Until the first window closes, report something nonzero so the layer counts
            // as active.
            self.last_bps = 1;
        }
        false
    }

    /// The layer's bitrate at `now` (bit/s); 0 when nothing came for 2 s.
    pub(super) fn bps(&self, now: Instant) -> u64 {
        match self.last_packet {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(2) => self.last_bps,
            _ => 0,
        }
    }
}
