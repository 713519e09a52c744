//! Video frames and freezes from the packet flow, as plain state machines fed with each
//! packet's header fields and its arrival time (no clock of their own). A freeze is the WebRTC
//! statistics' (`freezeCount`, `totalFreezesDuration`): a gap between two frames of at least
//! max(3 × the average frame interval, the average + 150 ms), the average taken over the last
//! 30 intervals.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Finds complete video frames in the packet flow. A frame is one RTP timestamp; it is
/// complete at its packet with the marker bit, or, if that packet is lost, when the first
/// packet of a later frame arrives. Packets of a frame older than the newest are ignored.
#[derive(Debug, Clone, Default)]
pub struct FrameClock {
    /// The newest frame's timestamp, and whether it was complete already.
    current: Option<(u32, bool)>,
}

impl FrameClock {
    /// Returns how many frames this packet completes (0, 1, or 2: the previous frame whose
    /// marker never came and this one, a frame of one packet).
    pub fn on_packet(&mut self, timestamp: u32, marker: bool) -> u32 {
        let earlier_completed = match self.current {
            // The newest frame: its marker completes it, once.
            Some((ts, done)) if ts == timestamp && (done || !marker) => return 0,
            Some((ts, _)) if ts == timestamp => 0,
            // Wrapping comparison: a timestamp up to 2^31 ahead is newer.
            Some((ts, _)) if (timestamp.wrapping_sub(ts) as i32) < 0 => return 0,
            // A newer frame: the one before, if its marker never came, is complete now.
            Some((_, done)) => u32::from(!done),
            None => 0,
        };
        self.current = Some((timestamp, marker));
        earlier_completed + u32::from(marker)
    }
}

/// Intervals the average frame interval is taken over (WebRTC statistics: the last 30).
const AVERAGE_OVER: usize = 30;
/// Intervals needed before a gap can be judged (as libwebrtc's `kMinFrameSamplesToDetectFreeze`).
const MIN_INTERVALS: usize = 5;
/// A freeze is at least this much longer than the average frame interval.
const MIN_FREEZE_INCREASE: Duration = Duration::from_millis(150);

/// Video freezes from the times frames completed.
#[derive(Debug, Clone, Default)]
pub struct FreezeDetector {
    last_frame_at: Option<Instant>,
    intervals: VecDeque<Duration>,
    /// The sum of `intervals`.
    interval_sum: Duration,
    freezes: u64,
    frozen: Duration,
}

impl FreezeDetector {
    /// A frame was complete at `now` (several completed at once count as one: a renderer
    /// would show only the newest).
    pub fn on_frame(&mut self, now: Instant) {
        let Some(last) = self.last_frame_at.replace(now) else { return };
        let interval = now.saturating_duration_since(last);
        if let Some(threshold) = self.threshold()
            && interval >= threshold
        {
            self.freezes += 1;
            self.frozen += interval;
        }
        if self.intervals.len() == AVERAGE_OVER
            && let Some(oldest) = self.intervals.pop_front()
        {
            self.interval_sum -= oldest;
        }
        self.intervals.push_back(interval);
        self.interval_sum += interval;
    }

    /// The gap that makes a freeze, from the intervals before the one being judged (so that a
    /// long gap does not raise its own bar); `None` until there are enough of them.
    fn threshold(&self) -> Option<Duration> {
        if self.intervals.len() < MIN_INTERVALS {
            return None;
        }
        let average = self.interval_sum / self.intervals.len() as u32;
        Some((average * 3).max(average + MIN_FREEZE_INCREASE))
    }

    /// Freezes and their total duration, between frames that came.
    pub fn freezes(&self) -> (u64, Duration) {
        (self.freezes, self.frozen)
    }

    /// Freezes and their total duration up to `now`, counting a freeze still going on (no frame
    /// for longer than the threshold: the stream stopped) up to `now`.
    pub fn freezes_at(&self, now: Instant) -> (u64, Duration) {
        let ongoing = match (self.last_frame_at, self.threshold()) {
            (Some(last), Some(threshold)) => Some(now.saturating_duration_since(last)).filter(|gap| *gap >= threshold),
            _ => None,
        };
        match ongoing {
            Some(gap) => (self.freezes + 1, self.frozen + gap),
            None => (self.freezes, self.frozen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_frame_ends_at_its_marker() {
        let mut clock = FrameClock::default();
        assert_eq!(clock.on_packet(1000, false), 0);
        assert_eq!(clock.on_packet(1000, true), 1);
        // A late packet of the same or an older frame, and a repeated marker, change nothing.
        assert_eq!(clock.on_packet(1000, false), 0);
        assert_eq!(clock.on_packet(1000, true), 0);
        assert_eq!(clock.on_packet(0, true), 0);
        // A one-packet frame.
        assert_eq!(clock.on_packet(4000, true), 1);
    }

    #[test]
    fn a_frame_whose_marker_is_lost_ends_at_the_next_frame() {
        let mut clock = FrameClock::default();
        assert_eq!(clock.on_packet(3000, false), 0);
        assert_eq!(clock.on_packet(6000, false), 1);
        assert_eq!(clock.on_packet(9000, true), 2);
    }

    #[test]
    fn frame_timestamps_wrap() {
        let mut clock = FrameClock::default();
        assert_eq!(clock.on_packet(u32::MAX - 1000, true), 1);
        assert_eq!(clock.on_packet(2000, true), 1);
        assert_eq!(clock.on_packet(u32::MAX - 1000, true), 0, "older, across the wrap");
    }

    /// Frames at `t0 + each offset` (ms).
    fn frames_at(t0: Instant, offsets: impl IntoIterator<Item = u64>) -> FreezeDetector {
        let mut d = FreezeDetector::default();
        for at in offsets {
            d.on_frame(t0 + ms(at));
        }
        d
    }

    #[test]
    fn steady_frames_do_not_freeze() {
        let t0 = Instant::now();
        let d = frames_at(t0, (0..300).map(|i| i * 33));
        assert_eq!(d.freezes_at(t0 + ms(299 * 33 + 40)), (0, Duration::ZERO));
    }

    #[test]
    fn a_gap_beyond_the_average_plus_150_ms_is_a_freeze() {
        let t0 = Instant::now();
        // 30 fps: the bar is max(3 × 33, 33 + 150) = 183 ms.
        let steady: Vec<u64> = (0..10).map(|i| i * 33).collect();
        let last = 9 * 33;
        let with_gap = |gap: u64| {
            let d = frames_at(t0, steady.iter().copied().chain([last + gap, last + gap + 33]));
            d.freezes_at(t0 + ms(last + gap + 40))
        };
        assert_eq!(with_gap(180), (0, Duration::ZERO));
        assert_eq!(with_gap(190), (1, ms(190)));
        // Freezes add up.
        let mut offsets = steady.clone();
        offsets.extend([last + 250, last + 283, last + 316, last + 316 + 400]);
        assert_eq!(frames_at(t0, offsets).freezes_at(t0 + ms(last + 716)), (2, ms(650)));
    }

    #[test]
    fn at_a_low_frame_rate_the_bar_is_three_intervals() {
        let t0 = Instant::now();
        // 5 fps: the bar is max(3 × 200, 200 + 150) = 600 ms.
        let steady: Vec<u64> = (0..8).map(|i| i * 200).collect();
        let with_gap = |gap: u64| {
            let d = frames_at(t0, steady.iter().copied().chain([1400 + gap]));
            d.freezes_at(t0 + ms(1400 + gap))
        };
        assert_eq!(with_gap(550), (0, Duration::ZERO));
        assert_eq!(with_gap(650), (1, ms(650)));
    }

    #[test]
    fn no_freeze_is_judged_before_five_intervals() {
        let t0 = Instant::now();
        let d = frames_at(t0, [0, 33, 66, 2000, 2033]);
        assert_eq!(d.freezes_at(t0 + ms(2050)), (0, Duration::ZERO));
        // Nor before the first frame.
        assert_eq!(FreezeDetector::default().freezes_at(t0 + ms(5000)), (0, Duration::ZERO));
    }

    #[test]
    fn a_stream_that_stopped_is_an_ongoing_freeze() {
        let t0 = Instant::now();
        let d = frames_at(t0, (0..30).map(|i| i * 33));
        let last = 29 * 33;
        assert_eq!(d.freezes_at(t0 + ms(last + 100)), (0, Duration::ZERO));
        assert_eq!(d.freezes_at(t0 + ms(last + 1000)), (1, ms(1000)));
    }
}
