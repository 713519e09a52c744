//! Lip sync: aligns a participant's audio and video by their RTCP sender reports.
//!
//! Each jitter buffer maps RTP time to local running time from RTP timestamps (skew-corrected),
//! so arrival jitter does not move the picture. A sender report ties the sender's RTP clock to its
//! wall clock; comparing `local - ntp` across one participant's tracks tells how much later one
//! track plays than another for media captured at the same instant. The earlier tracks are delayed
//! (a positive `ts-offset`) so all of a participant's tracks line up with the latest one. Offsets
//! are only ever positive: a negative one would make buffers late for the mixers.
//!
//! A plain state machine: no clock, no GStreamer, so tests are exact.

use crate::track::TrackId;
use std::collections::BTreeMap;

/// What a jitter buffer reports when it processes a sender report (`handle-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncObservation {
    /// Extended RTP time the jitter buffer's timeline starts from.
    pub base_rtptime: u64,
    /// Local running time (ns) of `base_rtptime`.
    pub base_time: u64,
    pub clock_rate: u32,
    /// The sender report's RTP time, extended the same way as `base_rtptime`.
    pub sr_ext_rtptime: u64,
    /// The sender report's NTP time in ns since 1900.
    pub ntp_ns: u128,
}

impl SyncObservation {
    /// Local running time minus sender wall clock, in ns: how late media plays relative to capture.
    fn playout_delay_ns(&self) -> Option<i128> {
        if self.clock_rate == 0 {
            return None;
        }
        let rtp_delta = self.sr_ext_rtptime as i128 - self.base_rtptime as i128;
        let local = self.base_time as i128 + rtp_delta * 1_000_000_000 / self.clock_rate as i128;
        Some(local - self.ntp_ns as i128)
    }
}

#[derive(Debug)]
struct SyncedTrack {
    participant: String,
    delay_ns: Option<i128>,
    applied_offset_ns: i64,
}

#[derive(Debug)]
pub struct LipSync {
    tracks: BTreeMap<TrackId, SyncedTrack>,
    /// Changes smaller than this are not applied: each change is a small timestamp jump.
    min_change_ns: i64,
    /// Offsets are capped: beyond this the reports are more likely wrong than the media.
    max_offset_ns: i64,
}

impl Default for LipSync {
    fn default() -> Self {
        LipSync { tracks: BTreeMap::new(), min_change_ns: 5_000_000, max_offset_ns: 1_000_000_000 }
    }
}

impl LipSync {
    pub fn add_track(&mut self, id: TrackId, participant: &str) {
        self.tracks
            .insert(id, SyncedTrack { participant: participant.to_string(), delay_ns: None, applied_offset_ns: 0 });
    }

    /// Removes a track; the participant's remaining tracks may need new offsets.
    pub fn remove_track(&mut self, id: TrackId) -> Vec<(TrackId, i64)> {
        match self.tracks.remove(&id) {
            Some(t) => self.recompute(&t.participant),
            None => Vec::new(),
        }
    }

    /// Records a sender report's mapping and returns the `ts-offset`s (ns) that changed.
    pub fn observe(&mut self, id: TrackId, obs: SyncObservation) -> Vec<(TrackId, i64)> {
        let Some(delay) = obs.playout_delay_ns() else { return Vec::new() };
        let Some(track) = self.tracks.get_mut(&id) else { return Vec::new() };
        track.delay_ns = Some(delay);
        let participant = track.participant.clone();
        self.recompute(&participant)
    }

    pub fn offset_ns(&self, id: TrackId) -> Option<i64> {
        self.tracks.get(&id).map(|t| t.applied_offset_ns)
    }

    fn recompute(&mut self, participant: &str) -> Vec<(TrackId, i64)> {
        let latest = self.tracks.values().filter(|t| t.participant == participant).filter_map(|t| t.delay_ns).max();
        let Some(latest) = latest else { return Vec::new() };
        let mut changed = Vec::new();
        for (id, t) in self.tracks.iter_mut().filter(|(_, t)| t.participant == participant) {
            let Some(delay) = t.delay_ns else { continue };
            let wanted = (latest - delay).clamp(0, self.max_offset_ns as i128) as i64;
            if (wanted - t.applied_offset_ns).abs() >= self.min_change_ns {
                t.applied_offset_ns = wanted;
                changed.push((*id, wanted));
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A track whose media captured at `ntp` (ns) plays at local time `ntp - epoch + delay`.
    fn obs(clock_rate: u32, capture_ms: u64, delay_ms: u64) -> SyncObservation {
        let epoch: u128 = 3_900_000_000 * 1_000_000_000;
        SyncObservation {
            base_rtptime: 1000,
            base_time: delay_ms * MS,
            clock_rate,
            sr_ext_rtptime: 1000 + capture_ms * clock_rate as u64 / 1000,
            ntp_ns: epoch + (capture_ms * MS) as u128,
        }
    }

    #[test]
    fn audio_arriving_late_delays_the_video() {
        let (a, v) = (TrackId(1), TrackId(2));
        let mut s = LipSync::default();
        s.add_track(a, "alice");
        s.add_track(v, "alice");
        assert!(s.observe(v, obs(90_000, 5000, 100)).is_empty()); // alone: nothing to align
        let changes = s.observe(a, obs(48_000, 5000, 400));
        assert_eq!(changes, vec![(v, 300 * MS as i64)]);
        assert_eq!(s.offset_ns(a), Some(0));
    }

    #[test]
    fn other_participants_are_independent() {
        let mut s = LipSync::default();
        s.add_track(TrackId(1), "alice");
        s.add_track(TrackId(2), "bob");
        s.observe(TrackId(1), obs(48_000, 1000, 900));
        assert!(s.observe(TrackId(2), obs(90_000, 1000, 100)).is_empty());
        assert_eq!(s.offset_ns(TrackId(2)), Some(0));
    }

    #[test]
    fn small_changes_are_ignored_and_offsets_capped() {
        let (a, v) = (TrackId(1), TrackId(2));
        let mut s = LipSync::default();
        s.add_track(a, "p");
        s.add_track(v, "p");
        s.observe(a, obs(48_000, 0, 100));
        s.observe(v, obs(90_000, 0, 98));
        assert_eq!(s.offset_ns(v), Some(0), "2 ms is below the change threshold");
        s.observe(v, obs(90_000, 0, 0));
        assert_eq!(s.offset_ns(v), Some(100 * MS as i64));
        s.observe(a, obs(48_000, 0, 5000));
        assert_eq!(s.offset_ns(v), Some(1000 * MS as i64), "capped at 1 s");
    }

    #[test]
    fn removing_the_late_track_releases_the_delay() {
        let (a, v) = (TrackId(1), TrackId(2));
        let mut s = LipSync::default();
        s.add_track(a, "p");
        s.add_track(v, "p");
        s.observe(a, obs(48_000, 0, 300));
        s.observe(v, obs(90_000, 0, 0));
        assert_eq!(s.remove_track(a), vec![(v, 0)]);
    }
}
