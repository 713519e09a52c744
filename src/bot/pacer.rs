//! Spreads a frame's video packets over time the way WebRTC senders do.
//!
//! Browsers do not send an encoded frame's packets back to back: libwebrtc's pacer releases
//! them at a multiple of the target bitrate (2.5 by default). A publisher without one sends
//! each frame as a single burst, which a receiver then has to forward all at once.

use std::time::{Duration, Instant};

/// How far ahead of its due time a packet may go out (the timer's resolution): packets due
/// within this go together.
pub const SLACK: Duration = Duration::from_millis(1);

/// A send schedule at a fixed rate, with time passed in.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_second: f64,
    /// When the next packet is due; `None` before the first one.
    next: Option<Instant>,
}

impl Pacer {
    /// Paces at `factor` times `bitrate_kbps`.
    pub fn new(bitrate_kbps: u32, factor: f64) -> Self {
        Pacer { bytes_per_second: f64::from(bitrate_kbps) * 1000.0 / 8.0 * factor.max(0.1), next: None }
    }

    /// When a packet of `len` bytes, ready at `now`, is due; the schedule moves on by its
    /// length at the pacing rate. An idle pacer sends at once (it keeps no credit from idle
    /// time, so a frame after a pause is spread like any other).
    pub fn due(&mut self, len: usize, now: Instant) -> Instant {
        let at = self.next.filter(|&n| n > now).unwrap_or(now);
        self.next = Some(at + Duration::from_secs_f64(len as f64 / self.bytes_per_second));
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_spread_at_the_pacing_rate() {
        // 800 kbit/s × 2.5 = 250,000 bytes/s: a 1,000-byte packet every 4 ms.
        let mut p = Pacer::new(800, 2.5);
        let t0 = Instant::now();
        let due: Vec<Duration> = (0..4).map(|_| p.due(1000, t0) - t0).collect();
        assert_eq!(due, [0, 4, 8, 12].map(Duration::from_millis));
        // After an idle gap the next frame starts at once.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(p.due(1000, t1), t1);
        assert_eq!(p.due(1000, t1) - t1, Duration::from_millis(4));
    }
}
