//! A subscriber's bandwidth: the cap its client set and the REMB estimates its receiving
//! browser sends, combined into the figure its simulcast layers are chosen from.
//!
//! A receiver's REMB is an estimate bounded by what it receives (Chromium's receive-side
//! estimator never goes above about 1.5 times its incoming rate), so it says "congested"
//! (an estimate below what the SFU sends it) or "this fits", never how much more would fit.
//! It is delay based, and a receiver whose CPU is busy sees delay too: a loaded machine's
//! Chromium lowers its REMB on a link with room to spare. So a REMB limits a subscriber only
//! when it is below what the SFU sends ([`CONGESTED`]) *and* the subscriber's receiver
//! reports show packets lost ([`LOSSY`], within [`LOSS_WINDOW`]): a link that is really too
//! slow drops what does not fit, a slow receiver only delays it. A REMB that fits lifts no limit but raises it, until a probe: after
//! [`PROBE_AFTER`] without congestion the limit is lifted altogether (the top layer is tried
//! again), and a probe that meets congestion within [`PROBE_AFTER`] doubles the wait, up to
//! [`MAX_PROBE_AFTER`]. Without any REMB nothing is limited.
//!
//! REMB estimates come every few hundred milliseconds and dip on a single delay spike, and a
//! layer switch costs a keyframe, so a lower value counts only once it has lasted: the limit
//! in force is the highest of the last [`BandwidthEstimator::hold`] (counting the value in
//! force when that window opened, "no limit" before the first REMB). A rise counts at once;
//! the layer selector's upgrade headroom and keyframe wait pace upgrades.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a lower estimate must last before it counts.
pub const DEFAULT_HOLD: Duration = Duration::from_millis(1_500);

/// A REMB below this fraction of the rate the SFU sends means congestion (Chromium's
/// estimate after an over-use is 0.85 of what it receives).
pub const CONGESTED: f64 = 0.9;

/// A receiver report's fraction lost (of 256) from which a subscriber counts as losing
/// packets: 2%.
pub const LOSSY: u8 = 5;

/// How long a lossy receiver report counts: Chromium reports each stream every 1 to 5 s
/// (audio at the longer end), so a shorter window would blink between reports.
pub const LOSS_WINDOW: Duration = Duration::from_secs(10);

/// First wait after congestion before the limit is lifted for a probe.
pub const PROBE_AFTER: Duration = Duration::from_secs(20);

/// Longest wait between probes.
pub const MAX_PROBE_AFTER: Duration = Duration::from_secs(120);

/// Window over which the sent rate is measured.
const SENT_WINDOW: Duration = Duration::from_millis(1_000);

/// "No limit" among the samples.
const NONE: u64 = u64::MAX;

/// The REMB side of a subscriber's bandwidth.
#[derive(Debug, Clone)]
pub struct BandwidthEstimator {
    hold: Duration,
    /// Limits (bit/s, [`NONE`]: none) with their arrival, oldest first; the first one may be
    /// older than the hold window (it is the value in force when the window opened).
    samples: VecDeque<(Instant, u64)>,
    /// Arrival of the first REMB.
    first: Option<Instant>,
    /// Bytes sent to the subscriber so far, sampled at each REMB.
    sent: VecDeque<(Instant, u64)>,
    /// Last congested REMB.
    congested_at: Option<Instant>,
    /// When the current probe began (the limit was lifted).
    probing_since: Option<Instant>,
    /// Wait from the last congestion to the next probe.
    probe_after: Duration,
    /// Last receiver report with [`LOSSY`] loss or more.
    lossy_at: Option<Instant>,
}

impl Default for BandwidthEstimator {
    fn default() -> Self {
        Self::new(DEFAULT_HOLD)
    }
}

impl BandwidthEstimator {
    /// An estimator that holds higher values for `hold` before a lower one counts.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            samples: VecDeque::new(),
            first: None,
            sent: VecDeque::new(),
            congested_at: None,
            probing_since: None,
            probe_after: PROBE_AFTER,
            lossy_at: None,
        }
    }

    /// The hold time.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The rate (bit/s) sent over the last second or so, if measured.
    fn sent_bps(&self, now: Instant) -> Option<u64> {
        let &(t1, b1) = self.sent.back()?;
        let &(t0, b0) = self.sent.iter().rev().find(|&&(t, _)| now.saturating_duration_since(t) >= SENT_WINDOW)?;
        let el = t1.saturating_duration_since(t0);
        (el >= SENT_WINDOW / 2).then(|| b1.saturating_sub(b0) * 8 * 1_000 / el.as_millis().max(1) as u64)
    }

    /// A receiver report arrived: the largest fraction lost (of 256) among its blocks for
    /// this subscriber's video.
    pub fn on_loss(&mut self, fraction_lost: u8, now: Instant) {
        if fraction_lost >= LOSSY {
            self.lossy_at = Some(self.lossy_at.map_or(now, |t| t.max(now)));
        }
    }

    /// Whether a lossy receiver report came within [`LOSS_WINDOW`].
    fn losing(&self, now: Instant) -> bool {
        self.lossy_at.is_some_and(|t| now.saturating_duration_since(t) <= LOSS_WINDOW)
    }

    /// A REMB estimate arrived (its bitrate field, bit/s); `sent_bytes` counts every byte sent
    /// to this subscriber so far.
    pub fn on_remb(&mut self, bps: u64, sent_bytes: u64, now: Instant) {
        // Out-of-order times are treated as now.
        let now = self.samples.back().map_or(now, |&(t, _)| t.max(now));
        self.first.get_or_insert(now);
        self.sent.push_back((now, sent_bytes));
        while self.sent.len() >= 2 && now.saturating_duration_since(self.sent[1].0) >= SENT_WINDOW {
            self.sent.pop_front();
        }
        let congested =
            self.losing(now) && self.sent_bps(now).is_some_and(|sent| (bps as f64) < sent as f64 * CONGESTED);
        let limit = if congested {
            if let Some(p) = self.probing_since.take() {
                // The probe failed: wait longer for the next one.
                if now.saturating_duration_since(p) < PROBE_AFTER {
                    self.probe_after = (self.probe_after * 2).min(MAX_PROBE_AFTER);
                }
            }
            self.congested_at = Some(now);
            bps
        } else {
            match (self.congested_at, self.probing_since) {
                (_, Some(p)) => {
                    if now.saturating_duration_since(p) >= PROBE_AFTER {
                        // The probe held: back to the first wait.
                        self.probe_after = PROBE_AFTER;
                    }
                    NONE
                }
                (Some(c), None) if now.saturating_duration_since(c) >= self.probe_after => {
                    self.probing_since = Some(now);
                    NONE
                }
                // No limit in force (never congested, or a dip that did not last): none.
                _ if self.estimate(now).is_none() => NONE,
                // Limited: the limit follows the estimate.
                _ => bps,
            }
        };
        self.samples.push_back((now, limit));
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        let Some(start) = now.checked_sub(self.hold) else { return };
        // Keep one sample at or before the window start: the value in force when it opened.
        while self.samples.len() >= 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
    }

    /// The limit in force at `now` (bit/s); `None`: no limit (no REMB yet, no congestion,
    /// or a probe).
    pub fn estimate(&self, now: Instant) -> Option<u64> {
        let first = self.first?;
        if now.saturating_duration_since(first) < self.hold {
            // "No limit" was in force a moment ago.
            return None;
        }
        let start = now.checked_sub(self.hold);
        let mut best: Option<u64> = None;
        for (i, &(t, bps)) in self.samples.iter().enumerate() {
            let in_force_at_start = self.samples.get(i + 1).is_none_or(|&(next, _)| start.is_none_or(|s| next > s));
            if start.is_none_or(|s| t >= s) || in_force_at_start {
                best = Some(best.map_or(bps, |b| b.max(bps)));
            }
        }
        best.filter(|&b| b != NONE)
    }

    /// The bandwidth to choose layers from: the smaller of the client's cap (0: none) and the
    /// limit in force; 0 when neither is known.
    pub fn effective(&self, cap_bps: u64, now: Instant) -> u64 {
        combine(cap_bps, self.estimate(now))
    }
}

/// min(cap, estimate), where a cap of 0 and an absent estimate mean "no limit"; 0: no limit.
pub fn combine(cap_bps: u64, estimate_bps: Option<u64>) -> u64 {
    match (cap_bps, estimate_bps) {
        (0, None) => 0,
        (0, Some(e)) => e.max(1),
        (c, None) => c,
        (c, Some(e)) => c.min(e.max(1)),
    }
}

/// Kept for a subscriber's audio before its video tracks share the rest.
pub const AUDIO_RESERVE_BPS: u64 = 64_000;

/// What each of `videos` video tracks a subscriber receives may use of its `bps` (0: no
/// limit): equal shares of what the audio leaves, never 0 (which would lift the limit).
pub fn video_share(bps: u64, videos: usize) -> u64 {
    if bps == 0 || videos == 0 {
        return bps;
    }
    (bps.saturating_sub(AUDIO_RESERVE_BPS) / videos as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_tracks_share_what_the_audio_leaves() {
        assert_eq!(video_share(0, 3), 0, "no limit stays no limit");
        assert_eq!(video_share(1_064_000, 1), 1_000_000);
        assert_eq!(video_share(1_064_000, 2), 500_000);
        // A limit below the audio's leaves each video a token bit per second: the lowest
        // layer. (Until 2026-12-07 two videos under 64 kbit/s got 0 each: no limit at all.)
        assert_eq!(video_share(64_000, 2), 1);
        assert_eq!(video_share(10_000, 1), 1);
        assert_eq!(video_share(500_000, 0), 500_000);
    }

    /// A subscriber sent to at `sent_bps`, reporting `remb` every 200 ms from `from` to `to`
    /// (ms since `t0`, `to` excluded).
    struct Sim {
        e: BandwidthEstimator,
        t0: Instant,
        bytes: u64,
        /// A path that delays instead of dropping (a busy receiver): receiver reports show no
        /// loss. Otherwise they show 25% loss whenever the estimate is below what is sent.
        lossless: bool,
    }

    impl Sim {
        fn new() -> Self {
            Sim { e: BandwidthEstimator::default(), t0: Instant::now(), bytes: 0, lossless: false }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn run(&mut self, from: u64, to: u64, sent_bps: u64, remb: u64) {
            let mut t = from;
            while t < to {
                self.bytes += sent_bps / 8 / 5;
                let lost = if !self.lossless && remb < sent_bps { 64 } else { 0 };
                self.e.on_loss(lost, self.at(t));
                self.e.on_remb(remb, self.bytes, self.at(t));
                t += 200;
            }
        }

        /// Runs until the limit is lifted; returns when (ms since `t0`).
        fn until_lifted(&mut self, from: u64, to: u64, sent_bps: u64, remb: u64) -> u64 {
            let mut t = from;
            while t < to {
                self.run(t, t + 1, sent_bps, remb);
                if self.estimate(t).is_none() {
                    return t;
                }
                t += 200;
            }
            panic!("still limited at {to} ms: {:?}", self.estimate(to));
        }

        fn estimate(&self, ms: u64) -> Option<u64> {
            self.e.estimate(self.at(ms))
        }
    }

    #[test]
    fn nothing_until_the_first_remb() {
        let e = BandwidthEstimator::default();
        let t0 = Instant::now();
        assert_eq!(e.estimate(t0), None);
        assert_eq!(e.effective(0, t0), 0, "no cap, no estimate: no limit");
        assert_eq!(e.effective(300_000, t0), 300_000, "the cap alone");
    }

    #[test]
    fn an_estimate_that_fits_what_is_sent_limits_nothing() {
        let mut s = Sim::new();
        // Chromium's estimate starts at what it receives and climbs to 1.5 times that.
        s.run(0, 10_000, 1_500_000, 1_450_000);
        assert_eq!(s.estimate(9_800), None);
        s.run(10_000, 20_000, 1_500_000, 2_200_000);
        assert_eq!(s.estimate(19_800), None);
        assert_eq!(s.e.effective(800_000, s.at(19_800)), 800_000, "the cap still counts");
    }

    #[test]
    fn a_single_congested_value_does_not_count() {
        let mut s = Sim::new();
        s.run(0, 5_000, 1_500_000, 2_000_000);
        s.run(5_000, 5_200, 1_500_000, 300_000);
        assert_eq!(s.estimate(5_000), None, "held");
        s.run(5_200, 10_000, 1_500_000, 2_000_000);
        for t in (5_000..10_000).step_by(200) {
            assert_eq!(s.estimate(t), None, "at {t} ms");
        }
    }

    #[test]
    fn lasting_congestion_limits_after_the_hold_then_probes_with_back_off() {
        let mut s = Sim::new();
        s.run(0, 5_000, 1_500_000, 2_000_000);
        // A slow link: the estimate falls to 0.85 of what arrives (~480 kbit/s).
        s.run(5_000, 6_400, 1_500_000, 400_000);
        assert_eq!(s.estimate(6_200), None, "not yet: the hold");
        s.run(6_400, 6_600, 1_500_000, 400_000);
        assert_eq!(s.estimate(6_400), None);
        s.run(6_600, 7_000, 1_500_000, 400_000);
        assert_eq!(s.estimate(6_800), Some(400_000), "1.5 s of congestion");
        assert_eq!(s.e.effective(300_000, s.at(6_800)), 300_000, "a lower cap wins");
        assert_eq!(s.e.effective(0, s.at(6_800)), 400_000);
        // A lower layer (200 kbit/s) fits; the estimate climbs and the limit follows it.
        s.run(7_000, 12_000, 200_000, 300_000);
        assert_eq!(s.estimate(11_800), Some(300_000));
        // 20 s after the last congestion the limit is lifted (a probe), at once. The last
        // congested REMB came while the sent rate still measured the top layer (~7.6 s).
        let probe = s.until_lifted(12_000, 40_000, 200_000, 300_000);
        assert!((27_000..=28_000).contains(&probe), "first probe at {probe} ms");
        // The probe meets congestion: limited again after the hold, and the next probe
        // waits twice as long.
        let t = probe + 200;
        s.run(t, t + 2_000, 1_500_000, 400_000);
        assert_eq!(s.estimate(t + 1_800), Some(400_000));
        assert_eq!(s.e.probe_after, PROBE_AFTER * 2);
        let t = t + 2_000;
        let probe2 = s.until_lifted(t, t + 80_000, 200_000, 300_000);
        assert!((t + 39_000..=t + 41_000).contains(&probe2), "second probe at {probe2} ms (congestion until {t})");
        // This one holds: the top layer fits now, and the wait is back to the first.
        s.run(probe2 + 200, probe2 + 45_000, 1_500_000, 2_000_000);
        assert_eq!(s.estimate(probe2 + 44_800), None);
        assert_eq!(s.e.probe_after, PROBE_AFTER);
    }

    #[test]
    fn a_low_estimate_without_loss_limits_nothing() {
        // A busy receiver: its REMB sinks far below what it gets for a long time, but nothing
        // is lost on the way.
        let mut s = Sim::new();
        s.lossless = true;
        s.run(0, 5_000, 1_500_000, 2_000_000);
        s.run(5_000, 30_000, 1_500_000, 300_000);
        for t in (5_000..30_000).step_by(200) {
            assert_eq!(s.estimate(t), None, "at {t} ms");
        }
        // Loss on its own (a lossy link whose estimate fits) limits nothing either.
        s.lossless = false;
        s.e.on_loss(100, s.at(30_000));
        s.run(30_000, 40_000, 1_500_000, 2_000_000);
        assert_eq!(s.estimate(39_800), None);
        // Both together do, after the hold.
        s.run(40_000, 42_000, 1_500_000, 400_000);
        assert_eq!(s.estimate(41_800), Some(400_000));
    }

    #[test]
    fn loss_counts_for_a_while() {
        let mut e = BandwidthEstimator::default();
        let t0 = Instant::now();
        e.on_loss(LOSSY - 1, t0);
        assert!(!e.losing(t0), "below the threshold");
        e.on_loss(LOSSY, t0);
        assert!(e.losing(t0 + LOSS_WINDOW));
        assert!(!e.losing(t0 + LOSS_WINDOW + Duration::from_millis(1)));
        e.on_loss(0, t0 + Duration::from_secs(1));
        assert!(e.losing(t0 + Duration::from_secs(2)), "a clean report does not erase a recent lossy one");
    }

    #[test]
    fn samples_do_not_pile_up() {
        let mut s = Sim::new();
        for i in 0..10_000u64 {
            s.run(i * 100, i * 100 + 1, 1_000_000, 2_000_000);
        }
        assert!(s.e.samples.len() <= 20, "{}", s.e.samples.len());
        assert!(s.e.sent.len() <= 20, "{}", s.e.sent.len());
    }
}
