//! How much a connection may resend: a share of the bandwidth its receiver estimates.
//!
//! A subscriber whose link is too slow loses packets and asks for every one of them again.
//! Resending all it asks for fills the link further. Measured (`sfu/tests/bandwidth.rs`): a
//! Chromium subscriber joining at 760 kbit/s behind a 400 kbit/s link still lost 40–80% of its
//! packets ten seconds after the SFU had moved it to a 180 kbit/s layer, because the resends
//! of what it had lost took the rest of the link, and its picture only came back 23 s after it
//! joined. So resends draw on a token bucket filled at [`SHARE`] of the receiver's latest
//! REMB estimate (never less than [`FLOOR_BPS`]); what does not fit is not sent, and the
//! receiver asks again or asks for a keyframe. Before the first estimate nothing is capped.

use std::time::{Duration, Instant};

/// Share of the receiver's estimate that resends may use.
pub const SHARE: f64 = 0.25;

/// The least resends may always use (bit/s), however low the estimate.
pub const FLOOR_BPS: u64 = 64_000;

/// How much unused budget is kept: this long at the budget's rate (a keyframe's worth of
/// losses is repaired at once, a long quiet spell does not bank a storm).
pub const DEPTH: Duration = Duration::from_millis(250);

/// Bytes the bucket always holds room for: one full packet.
const MIN_DEPTH_BYTES: f64 = 1_500.0;

/// A token bucket of resend bytes, filled from the receiver's estimate.
#[derive(Debug, Clone, Default)]
pub struct ResendBudget {
    /// Fill rate (bytes per second); `None` before the first estimate: no cap.
    rate: Option<f64>,
    tokens: f64,
    last: Option<Instant>,
}

impl ResendBudget {
    pub fn new() -> Self {
        Self::default()
    }

    /// The receiver's bandwidth estimate (bit/s) at `now`.
    pub fn on_estimate(&mut self, bps: u64, now: Instant) {
        self.refill(now);
        let first = self.rate.is_none();
        let rate = (bps as f64 * SHARE).max(FLOOR_BPS as f64) / 8.0;
        self.rate = Some(rate);
        self.tokens = if first { depth(rate) } else { self.tokens.min(depth(rate)) };
    }

    /// Whether a resend of `bytes` fits the budget at `now` (it is then spent).
    pub fn allow(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate.is_none() {
            return true;
        }
        self.refill(now);
        let bytes = bytes as f64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }

    /// The cap in force (bit/s), if any.
    pub fn cap_bps(&self) -> Option<u64> {
        self.rate.map(|r| (r * 8.0) as u64)
    }

    fn refill(&mut self, now: Instant) {
        // Out-of-order times count as the last one.
        let now = self.last.map_or(now, |l| l.max(now));
        if let (Some(rate), Some(last)) = (self.rate, self.last) {
            let el = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + rate * el).min(depth(rate));
        }
        self.last = Some(now);
    }
}

fn depth(rate: f64) -> f64 {
    (rate * DEPTH.as_secs_f64()).max(MIN_DEPTH_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Bytes of 1 200-byte resends allowed when one is tried every `every` for `over`.
    fn sent(b: &mut ResendBudget, t0: Instant, every: Duration, over: Duration) -> usize {
        let mut t = t0;
        let mut n = 0;
        while t < t0 + over {
            if b.allow(1_200, t) {
                n += 1_200;
            }
            t += every;
        }
        n
    }

    #[test]
    fn nothing_is_capped_before_the_first_estimate() {
        let mut b = ResendBudget::new();
        let t = Instant::now();
        assert!((0..1_000).all(|_| b.allow(1_200, t)));
        assert_eq!(b.cap_bps(), None);
    }

    #[test]
    fn resends_are_held_to_a_share_of_the_estimate() {
        let mut b = ResendBudget::new();
        let t = Instant::now();
        b.on_estimate(400_000, t);
        assert_eq!(b.cap_bps(), Some(100_000));
        // A storm: a resend asked for every millisecond for 10 s.
        let bytes = sent(&mut b, t, MS, Duration::from_secs(10));
        let cap = 100_000 / 8 * 10 + depth(12_500.0) as usize;
        assert!(bytes <= cap, "{bytes} > {cap}");
        assert!(bytes >= cap - 2_400, "{bytes} far below {cap}");
    }

    #[test]
    fn a_burst_of_losses_within_the_budget_is_resent_at_once() {
        let mut b = ResendBudget::new();
        let t = Instant::now();
        b.on_estimate(2_000_000, t);
        // 250 ms at 500 kbit/s: 15 625 bytes, thirteen 1 200-byte packets.
        assert!((0..13).all(|_| b.allow(1_200, t)));
        assert!(!b.allow(1_200, t));
        // And it fills again.
        assert!(b.allow(1_200, t + 20 * MS));
    }

    #[test]
    fn a_low_estimate_still_leaves_the_floor() {
        let mut b = ResendBudget::new();
        let t = Instant::now();
        b.on_estimate(50_000, t);
        assert_eq!(b.cap_bps(), Some(FLOOR_BPS));
        let bytes = sent(&mut b, t, MS, Duration::from_secs(4));
        assert!(bytes >= (FLOOR_BPS / 8 * 4) as usize - 1_200, "{bytes}");
    }

    #[test]
    fn a_lower_estimate_shrinks_what_was_banked_and_time_going_back_is_now() {
        let mut b = ResendBudget::new();
        let t = Instant::now();
        b.on_estimate(4_000_000, t);
        b.on_estimate(400_000, t + 10 * MS);
        // 250 ms at 100 kbit/s: 3 125 bytes, two packets.
        assert!(b.allow(1_200, t + 10 * MS));
        assert!(b.allow(1_200, t + 10 * MS));
        assert!(!b.allow(1_200, t));
        assert!(!b.allow(1_200, t + 10 * MS));
    }
}
