//! The LL-HLS media playlist (RFC 8216bis, version 9): a sliding window of complete segments,
//! the parts of the recent ones and of the segment being written, and a preload hint naming
//! the next part, so players ask for it before it exists and get it the moment it does.
//!
//! It records what the segmenter's events say, never the bytes (the server keeps those), and
//! answers the server's blocking playlist reload (`_HLS_msn`, `_HLS_part`) with [`Playlist::has`].

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::segmenter::HlsEvent;
use super::time::{rfc3339_millis, seconds_3};

/// The init segment's name, the playlist's `EXT-X-MAP`.
pub const INIT_NAME: &str = "init.mp4";

/// The name of segment `msn`: `seg{msn}.m4s`.
pub fn segment_name(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// The name of part `index` of segment `msn`: `seg{msn}.{index}.m4s`.
pub fn part_name(msn: u64, index: u32) -> String {
    format!("seg{msn}.{index}.m4s")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistConfig {
    /// `PART-TARGET`: the segmenter's part target.
    pub part_target: Duration,
    /// The declared `EXT-X-TARGETDURATION` (rounded up to whole seconds): it may never change,
    /// so it must cover the longest segment the segmenter can make, not the usual one.
    pub target_duration: Duration,
    /// How many complete segments are listed.
    pub window: usize,
}

#[derive(Debug, Clone)]
struct PartEntry {
    duration: Duration,
    independent: bool,
}

#[derive(Debug, Clone)]
struct SegmentEntry {
    msn: u64,
    duration: Duration,
    /// When its first frame was, on the wall clock (`EXT-X-PROGRAM-DATE-TIME`).
    date: Option<SystemTime>,
    parts: Vec<PartEntry>,
}

/// The segment being written: the parts it has so far.
#[derive(Debug, Clone)]
struct OpenSegment {
    msn: u64,
    parts: Vec<PartEntry>,
}

#[derive(Debug, Clone)]
pub struct Playlist {
    config: PlaylistConfig,
    segments: VecDeque<SegmentEntry>,
    open: Option<OpenSegment>,
    /// The msn the next complete segment will have.
    next_msn: u64,
    last: Option<(u64, u32)>,
    finished: bool,
}

impl Playlist {
    pub fn new(config: PlaylistConfig) -> Self {
        Playlist { config, segments: VecDeque::new(), open: None, next_msn: 0, last: None, finished: false }
    }

    /// Records a part or a segment's end. `wall_clock_start` is when media time zero was on
    /// the wall clock; with it, each segment gets its `EXT-X-PROGRAM-DATE-TIME`. Events out of
    /// order (a part index skipped, a segment already ended) are logged and ignored.
    pub fn apply(&mut self, event: &HlsEvent, wall_clock_start: Option<SystemTime>) {
        if self.finished {
            return;
        }
        match *event {
            HlsEvent::Part { msn, index, duration, independent, .. } => {
                if msn < self.next_msn {
                    tracing::warn!(msn, index, "HLS playlist: a part of an ended segment, ignored");
                    return;
                }
                let open = match &mut self.open {
                    Some(open) if open.msn == msn => open,
                    _ => self.open.insert(OpenSegment { msn, parts: Vec::new() }),
                };
                if index as usize != open.parts.len() {
                    tracing::warn!(msn, index, expected = open.parts.len(), "HLS playlist: part out of order, ignored");
                    return;
                }
                open.parts.push(PartEntry { duration, independent });
                self.last = Some((msn, index));
            }
            HlsEvent::SegmentEnd { msn, duration, first_dts } => {
                if msn < self.next_msn {
                    tracing::warn!(msn, "HLS playlist: a segment ended twice, ignored");
                    return;
                }
                if duration.as_secs_f64().round() > self.target_duration_secs() as f64 {
                    tracing::warn!(msn, ?duration, "HLS playlist: segment longer than the declared target duration");
                }
                let parts = match self.open.take() {
                    Some(open) if open.msn == msn => open.parts,
                    _ => Vec::new(),
                };
                let date = wall_clock_start.map(|start| start + first_dts);
                self.segments.push_back(SegmentEntry { msn, duration, date, parts });
                self.next_msn = msn + 1;
                while self.segments.len() > self.config.window.max(1) {
                    self.segments.pop_front();
                }
            }
        }
    }

    /// The stream has ended: `EXT-X-ENDLIST`, no more preload hint, no more changes.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether a blocking reload for segment `msn` (and part `part` of it) can be answered:
    /// the segment is complete, or it is being written and has that part. A complete segment
    /// has every part index, even beyond its last (the player asked for a part that turned out
    /// to be in the next segment). A segment that has left the window counts as present: the
    /// player is behind, and the current playlist is its answer.
    pub fn has(&self, msn: u64, part: Option<u32>) -> bool {
        if msn < self.next_msn {
            return true;
        }
        match part {
            None => false,
            Some(part) => self.open.as_ref().is_some_and(|open| open.msn == msn && open.parts.len() > part as usize),
        }
    }

    /// The newest part's segment and index.
    pub fn last(&self) -> Option<(u64, u32)> {
        self.last
    }

    /// The `EXT-X-MEDIA-SEQUENCE`: the oldest segment listed (or the one being written, when
    /// none is complete yet). Segments before it are no longer referenced.
    pub fn media_sequence(&self) -> u64 {
        self.segments.front().map_or(self.next_msn, |s| s.msn)
    }

    /// The media files [`Playlist::render`] references now, oldest first: segments and parts
    /// (not the init segment, nor the preload hint's part, which does not exist yet). A
    /// server keeps these, and a little more for players still working from an older playlist.
    pub fn segment_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let with_parts = self.segments_with_parts();
        for (i, s) in self.segments.iter().enumerate() {
            if i >= with_parts {
                names.extend((0..s.parts.len() as u32).map(|p| part_name(s.msn, p)));
            }
            names.push(segment_name(s.msn));
        }
        if let Some(open) = &self.open {
            names.extend((0..open.parts.len() as u32).map(|p| part_name(open.msn, p)));
        }
        names
    }

    /// The LL-HLS playlist.
    pub fn render(&self) -> String {
        self.render_with(true)
    }

    /// The same playlist for players without LL-HLS, or a copy in a bucket where nothing
    /// answers blocking reloads: segments only, no parts, preload hint or server control.
    pub fn render_without_parts(&self) -> String {
        self.render_with(false)
    }

    fn render_with(&self, low_latency: bool) -> String {
        let mut m = String::with_capacity(256 + 160 * self.segments.len());
        m.push_str("#EXTM3U\n");
        // Version 9 is LL-HLS's; without its tags, 7 is what fMP4 segments need.
        let _ = writeln!(m, "#EXT-X-VERSION:{}", if low_latency { 9 } else { 7 });
        let _ = writeln!(m, "#EXT-X-TARGETDURATION:{}", self.target_duration_secs());
        if low_latency {
            let hold_back = seconds_3(self.config.part_target * 3);
            let _ = writeln!(m, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back}");
            let _ = writeln!(m, "#EXT-X-PART-INF:PART-TARGET={}", seconds_3(self.config.part_target));
        }
        let _ = writeln!(m, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence());
        let _ = writeln!(m, "#EXT-X-MAP:URI=\"{INIT_NAME}\"");
        let with_parts = if low_latency { self.segments_with_parts() } else { usize::MAX };
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(date) = s.date {
                let _ = writeln!(m, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_millis(date));
            }
            if i >= with_parts {
                write_parts(&mut m, s.msn, &s.parts);
            }
            let _ = writeln!(m, "#EXTINF:{},", seconds_3(s.duration));
            let _ = writeln!(m, "{}", segment_name(s.msn));
        }
        if low_latency {
            if let Some(open) = &self.open {
                write_parts(&mut m, open.msn, &open.parts);
            }
            if !self.finished {
                let (msn, index) = match &self.open {
                    Some(open) => (open.msn, open.parts.len() as u32),
                    None => (self.next_msn, 0),
                };
                let _ = writeln!(m, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", part_name(msn, index));
            }
        }
        if self.finished {
            m.push_str("#EXT-X-ENDLIST\n");
        }
        m
    }

    fn target_duration_secs(&self) -> u64 {
        let t = self.config.target_duration;
        (t.as_secs() + u64::from(t.subsec_nanos() > 0)).max(1)
    }

    /// The index of the first listed segment whose parts are listed too: those ending within
    /// three target durations of the playlist's end (RFC 8216bis: older parts are dropped).
    fn segments_with_parts(&self) -> usize {
        let horizon = Duration::from_secs(3 * self.target_duration_secs());
        let mut after: Duration = self.open.iter().flat_map(|o| &o.parts).map(|p| p.duration).sum();
        let mut first = self.segments.len();
        for (i, s) in self.segments.iter().enumerate().rev() {
            if after >= horizon {
                break;
            }
            first = i;
            after += s.duration;
        }
        first
    }
}

fn write_parts(m: &mut String, msn: u64, parts: &[PartEntry]) {
    for (index, p) in parts.iter().enumerate() {
        let independent = if p.independent { ",INDEPENDENT=YES" } else { "" };
        let _ = writeln!(
            m,
            "#EXT-X-PART:DURATION={},URI=\"{}\"{independent}",
            seconds_3(p.duration),
            part_name(msn, index as u32)
        );
    }
}
