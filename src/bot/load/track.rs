//! One received track's counters: its packets through [`SequenceCounter`], and for video its
//! frames through [`FrameClock`] and [`FreezeDetector`]. Fed with each packet's header fields
//! and arrival time; no media is decoded.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::freezes::{FrameClock, FreezeDetector};
use super::sequence::SequenceCounter;

/// Audio or video, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Video,
}

/// What a track's counters say at one moment (the report's per-track figures).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrackFigures {
    /// Distinct packets received (a repair or a reordered packet counts, a duplicate does not).
    pub packets: u64,
    /// Their RTP payload bytes (no headers, no padding).
    pub bytes: u64,
    /// Packets whose sequence numbers were skipped and never arrived.
    pub lost: u64,
    /// Duplicates, and packets too late (over 2,048 sequence numbers behind) or too far off to
    /// count.
    pub discarded: u64,
    /// Video frames completed (0 for audio).
    pub frames: u64,
    /// Video freezes, and their total duration (0 for audio).
    pub freezes: u64,
    pub freeze_ms: u64,
}

/// The counters of one received track.
#[derive(Debug, Clone)]
pub struct TrackCounters {
    kind: TrackKind,
    sequence: SequenceCounter,
    frame_clock: FrameClock,
    freezes: FreezeDetector,
    bytes: u64,
    frames: u64,
    first_packet_at: Option<Instant>,
    /// The track ended (its publisher left): no frame is due any more.
    ended: bool,
}

impl TrackCounters {
    pub fn new(kind: TrackKind) -> Self {
        TrackCounters {
            kind,
            sequence: SequenceCounter::default(),
            frame_clock: FrameClock::default(),
            freezes: FreezeDetector::default(),
            bytes: 0,
            frames: 0,
            first_packet_at: None,
            ended: false,
        }
    }

    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// One RTP packet, arrived at `now`.
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, marker: bool, payload_len: usize, now: Instant) {
        self.first_packet_at.get_or_insert(now);
        if !self.sequence.on_packet(seq).counts() {
            return;
        }
        self.bytes += payload_len as u64;
        // Padding-only packets (bandwidth probes) carry no frame.
        if self.kind == TrackKind::Video && payload_len > 0 {
            let completed = self.frame_clock.on_packet(timestamp, marker);
            if completed > 0 {
                self.frames += u64::from(completed);
                self.freezes.on_frame(now);
            }
        }
    }

    /// The track ended: a silence from now on is no freeze.
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn first_packet_at(&self) -> Option<Instant> {
        self.first_packet_at
    }

    /// The figures at `now`; a live video track without frames for longer than a freeze's bar
    /// has a freeze going on, counted up to `now`.
    pub fn figures(&self, now: Instant) -> TrackFigures {
        let (freezes, frozen) = match (self.kind, self.ended) {
            (TrackKind::Video, false) => self.freezes.freezes_at(now),
            (TrackKind::Video, true) => self.freezes.freezes(),
            (TrackKind::Audio, _) => (0, Duration::ZERO),
        };
        TrackFigures {
            packets: self.sequence.received(),
            bytes: self.bytes,
            lost: self.sequence.lost(),
            discarded: self.sequence.duplicates() + self.sequence.discarded(),
            frames: self.frames,
            freezes,
            freeze_ms: frozen.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// 30 fps video of 3 packets a frame from `t0`: (seq, timestamp, marker, arrival).
    fn video(t0: Instant, frames: u16) -> Vec<(u16, u32, bool, Instant)> {
        (0..frames)
            .flat_map(|f| (0..3u16).map(move |p| (f * 3 + p, u32::from(f) * 3000, p == 2, t0 + ms(u64::from(f) * 33))))
            .collect()
    }

    #[test]
    fn video_packets_frames_loss_and_a_freeze() {
        let t0 = Instant::now();
        let mut track = TrackCounters::new(TrackKind::Video);
        let mut packets = video(t0, 60);
        // Frame 40's packets are lost; frame 41 comes 300 ms late (a freeze); one packet of
        // frame 10 is lost and its repair arrives with frame 12, one packet is duplicated.
        packets.retain(|p| p.0 / 3 != 40 && p.0 != 31);
        for p in packets.iter_mut().filter(|p| p.0 / 3 >= 41) {
            p.3 += ms(300);
        }
        packets.insert(36, (31, 10 * 3000, false, t0 + ms(12 * 33)));
        packets.insert(50, packets[49]);
        for (seq, ts, marker, at) in packets {
            track.on_packet(seq, ts, marker, 1000, at);
        }
        let end = t0 + ms(59 * 33 + 300 + 10);
        let f = track.figures(end);
        assert_eq!((f.packets, f.bytes, f.lost, f.discarded), (177, 177_000, 3, 1), "{f:?}");
        assert_eq!((f.frames, f.freezes, f.freeze_ms), (59, 1, 366), "{f:?}");
        assert_eq!(track.first_packet_at(), Some(t0));
    }

    #[test]
    fn a_stopped_stream_freezes_until_its_track_ends() {
        let t0 = Instant::now();
        let mut track = TrackCounters::new(TrackKind::Video);
        for (seq, ts, marker, at) in video(t0, 30) {
            track.on_packet(seq, ts, marker, 1000, at);
        }
        let later = t0 + ms(29 * 33 + 2000);
        assert_eq!(track.figures(later).freezes, 1);
        track.end();
        assert_eq!(track.figures(later).freezes, 0, "an ended track is not frozen");
    }

    #[test]
    fn audio_has_no_frames() {
        let t0 = Instant::now();
        let mut track = TrackCounters::new(TrackKind::Audio);
        for i in 0..50u16 {
            track.on_packet(i, u32::from(i) * 960, i == 0, 80, t0 + ms(u64::from(i) * 20));
        }
        let f = track.figures(t0 + ms(5000));
        assert_eq!((f.packets, f.bytes, f.frames, f.freezes), (50, 4000, 0, 0));
    }
}
