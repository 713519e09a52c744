//! A simulcast layer's bitrate, measured from the packets the forwarder sees, and whether the
//! layer still sends.
//!
//! A publisher stops a layer without notice (Chromium drops its top layer when its CPU or its
//! bandwidth estimate is short). Until the layer counts as silent, subscribers on it get
//! nothing: they only move to a lower layer once it does, and then wait for its keyframe. So
//! the silence that marks a layer inactive follows the layer's own frame rate: three frame
//! intervals, at least [`MIN_SILENCE`] (jitter at 30 fps must not flap layers) and at most
//! [`MAX_SILENCE`] (a static screen at 1 fps still counts as sending).

use std::time::{Duration, Instant};

/// The shortest silence that makes a layer inactive.
const MIN_SILENCE: Duration = Duration::from_millis(400);
/// The longest (also the rule until the layer's frame interval is known).
const MAX_SILENCE: Duration = Duration::from_secs(2);
/// Frame intervals measured before they set the silence limit.
const MIN_FRAMES: u32 = 8;
/// The bitrate's window.
const WINDOW: Duration = Duration::from_millis(500);

/// Per-layer bitrate over half-second windows, and the layer's frame interval.
#[derive(Debug, Clone, Default)]
pub(super) struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    last_bps: u64,
    last_packet: Option<Instant>,
    /// The RTP timestamp of the latest frame and when its first packet came.
    frame: Option<(u32, Instant)>,
    /// Average time between frames' first packets (exponentially weighted), and how many
    /// intervals it has seen.
    frame_interval: Duration,
    frames: u32,
}

impl RateMeter {
    /// Counts a packet of `bytes` with RTP timestamp `rtp_time` at `now`; true when a window
    /// closed (the rate changed).
    pub(super) fn add(&mut self, bytes: usize, rtp_time: u32, now: Instant) -> bool {
        self.last_packet = Some(now);
        self.note_frame(rtp_time, now);
        let start = *self.window_start.get_or_insert(now);
        self.bytes += bytes as u64;
        let el = now.saturating_duration_since(start);
        if el >= WINDOW {
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

    /// A new RTP timestamp is a new frame: the time since the last one's first packet is a
    /// frame interval (a gap of the layer's own silence counts too, as it should: a layer
    /// that pauses often is given more time).
    fn note_frame(&mut self, rtp_time: u32, now: Instant) {
        match self.frame {
            Some((ts, _)) if ts == rtp_time => {}
            Some((_, at)) => {
                let interval = now.saturating_duration_since(at).min(MAX_SILENCE);
                self.frame_interval = if self.frames == 0 {
                    interval
                } else {
                    // 1/8 of the new interval: a steady rate after a few frames, not moved
                    // by one late frame.
                    (self.frame_interval * 7 + interval) / 8
                };
                self.frames = self.frames.saturating_add(1);
                self.frame = Some((rtp_time, now));
            }
            None => self.frame = Some((rtp_time, now)),
        }
    }

    /// How long the layer may be silent and still count as sending.
    fn silence_limit(&self) -> Duration {
        if self.frames < MIN_FRAMES {
            return MAX_SILENCE;
        }
        (self.frame_interval * 3).clamp(MIN_SILENCE, MAX_SILENCE)
    }

    /// The layer's bitrate at `now` (bit/s); 0 when it has been silent too long.
    pub(super) fn bps(&self, now: Instant) -> u64 {
        match self.last_packet {
            Some(t) if now.saturating_duration_since(t) < self.silence_limit() => self.last_bps,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `frames` frames of three packets (1 ms apart) at `fps` from `start`, RTP timestamps
    /// at 90 kHz from `ts`; the last packet's time.
    fn feed(m: &mut RateMeter, start: Instant, ts: u32, fps: u32, frames: u32) -> Instant {
        let step = Duration::from_secs(1) / fps;
        let mut last = start;
        for f in 0..frames {
            for p in 0..3u64 {
                last = start + step * f + Duration::from_millis(p);
                m.add(1000, ts + f * 90_000 / fps, last);
            }
        }
        last
    }

    #[test]
    fn a_30fps_layer_is_silent_after_400ms() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        let end = feed(&mut m, t0, 0, 30, 60);
        assert!(m.bps(end + Duration::from_millis(350)) > 0, "still sending after 350 ms");
        assert_eq!(m.bps(end + Duration::from_millis(450)), 0, "silent after 450 ms");
    }

    #[test]
    fn a_slow_layer_is_given_three_of_its_frames() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        // A static screen at 2 frames a second.
        let end = feed(&mut m, t0, 0, 2, 20);
        assert!(m.bps(end + Duration::from_millis(1400)) > 0, "one frame late is no silence");
        assert_eq!(m.bps(end + Duration::from_millis(1600)), 0);
        // At 1 frame a second and slower: the old two seconds.
        let mut m = RateMeter::default();
        let end = feed(&mut m, t0, 0, 1, 12);
        assert!(m.bps(end + Duration::from_millis(1900)) > 0);
        assert_eq!(m.bps(end + Duration::from_millis(2100)), 0);
    }

    #[test]
    fn until_its_rate_is_known_a_layer_has_two_seconds() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        let end = feed(&mut m, t0, 0, 30, 4);
        assert!(m.bps(end + Duration::from_millis(1500)) > 0);
        assert_eq!(m.bps(end + Duration::from_millis(2100)), 0);
    }

    #[test]
    fn one_late_frame_does_not_make_a_fast_layer_slow() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        let mid = feed(&mut m, t0, 0, 30, 60);
        // A 300 ms hiccup (no silence: under 400 ms), then 30 fps again for a second.
        let end = feed(&mut m, mid + Duration::from_millis(300), 200_000, 30, 30);
        assert_eq!(m.bps(end + Duration::from_millis(600)), 0, "the limit stayed near 400 ms");
    }
}
