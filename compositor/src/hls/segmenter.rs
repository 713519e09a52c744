//! The LL-HLS segmenter: cuts the program's two sample streams into parts (one CMAF fragment
//! each) and groups parts into segments. A plain state machine with no clock: every time comes
//! with a sample, so tests replay any timing exactly.
//!
//! Video drives the boundaries, because segments must start on keyframes and only the video
//! has them. A part closes before the video sample that would make it longer than the part
//! target, and at every keyframe (so a part that starts with one is independent); a keyframe
//! also starts a new segment once the current one has lasted half the segment target, so a
//! keyframe forced mid-segment (a viewer's request) neither leaves a stub segment behind nor
//! lets the segment grow past 1.5 × the target with the encoder's regular cadence.
//!
//! Audio follows: each AAC frame goes into the part that covers its decode time. A part whose
//! video is complete waits for its audio (the audio encoder usually runs a little behind), but
//! not for ever: once video is [`AUDIO_WAIT`] past it, it goes without, and audio that turns up
//! later goes into the next part, so each track's timeline only ever moves forward.
//!
//! Within a part each sample's duration is set to reach the next sample's decode time, so the
//! fragments' timelines are exactly the encoders' timestamps whatever the buffers' durations
//! said; a part's duration is from its first video sample to the next part's first.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use super::cmaf::{self, AudioConfig, Sample, VIDEO_TIMESCALE, VideoConfig};
use super::error::{HlsError, Result};
use super::time::{duration_to_ticks, is_before, ticks_to_duration};

/// How far video may run past a part's end before the part goes out without all its audio.
pub const AUDIO_WAIT: Duration = Duration::from_secs(1);
/// How much longer than the part target a part may be: timestamps rounded to 90 kHz ticks
/// make 15 frames at 30 fps a tick or two over 500 ms.
const PART_SLACK: Duration = Duration::from_millis(1);
/// The most audio frames held waiting for their video (over 10 s at 48 kHz): beyond that the
/// video has stalled and the oldest frames would never be sent anyway.
const MAX_PENDING_AUDIO: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// The longest a part may be: the playlist's `PART-TARGET`.
    pub part_target: Duration,
    /// The segment length aimed at: the encoder's keyframe interval.
    pub segment_target: Duration,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig { part_target: Duration::from_millis(500), segment_target: Duration::from_secs(2) }
    }
}

/// What the segmenter produces, in order: each segment's parts, then its end.
#[derive(Clone, PartialEq, Eq)]
pub enum HlsEvent {
    /// A complete partial segment: one `fragment()`; a segment's bytes are its parts' bytes
    /// concatenated.
    Part { msn: u64, index: u32, duration: Duration, independent: bool, bytes: Vec<u8> },
    /// Segment `msn` is complete (all its parts were sent before).
    SegmentEnd {
        msn: u64,
        duration: Duration,
        /// Media time (video decode time) of the segment's start, for `EXT-X-PROGRAM-DATE-TIME`.
        first_dts: Duration,
    },
}

impl std::fmt::Debug for HlsEvent {
    /// A part's size, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HlsEvent::Part { msn, index, duration, independent, bytes } => f
                .debug_struct("Part")
                .field("msn", msn)
                .field("index", index)
                .field("duration", duration)
                .field("independent", independent)
                .field("bytes", &bytes.len())
                .finish(),
            HlsEvent::SegmentEnd { msn, duration, first_dts } => f
                .debug_struct("SegmentEnd")
                .field("msn", msn)
                .field("duration", duration)
                .field("first_dts", first_dts)
                .finish(),
        }
    }
}

/// The part being filled with video.
struct OpenPart {
    msn: u64,
    index: u32,
    start: u64,
    independent: bool,
    video: Vec<Sample>,
}

/// A part whose video is complete, waiting for its audio.
struct ClosedPart {
    msn: u64,
    index: u32,
    start: u64,
    end: u64,
    independent: bool,
    video: Vec<Sample>,
    /// Set on a segment's last part: the segment's start, in video ticks.
    ends_segment_started_at: Option<u64>,
}

pub struct Segmenter {
    init: Vec<u8>,
    codecs: String,
    audio_rate: u32,
    /// The longest part, slack included, in video ticks.
    part_limit: u64,
    /// How long a segment lasts before a keyframe may start the next, in video ticks.
    min_segment: u64,
    audio_wait: u64,
    /// `None` until the first keyframe, and again after `finish`.
    open: Option<OpenPart>,
    closed: VecDeque<ClosedPart>,
    /// Audio received and not yet in a part, in decode order.
    audio: VecDeque<Sample>,
    msn: u64,
    next_index: u32,
    segment_start: u64,
    /// Audio earlier than this (video ticks) is dropped: the first keyframe, or before it the
    /// latest video seen (the first keyframe can only be later).
    audio_floor: Option<u64>,
    last_video_dts: Option<u64>,
    last_audio_dts: Option<u64>,
    /// Where the newest audio sample ends, in audio ticks.
    audio_end: Option<u64>,
    sequence: u32,
    /// Samples dropped because their decode time went back.
    went_back: u64,
    finished: bool,
}

impl Segmenter {
    /// Fails if the codec configuration records are unusable (see [`cmaf::init_segment`]) or
    /// the targets make no sense (a zero part, a segment shorter than a part).
    pub fn new(config: SegmenterConfig, video: VideoConfig, audio: AudioConfig) -> Result<Self> {
        if config.part_target.is_zero() {
            return Err(HlsError::InvalidConfig { field: "part_target", reason: "zero".into() });
        }
        if config.segment_target < config.part_target {
            return Err(HlsError::InvalidConfig {
                field: "segment_target",
                reason: format!("{:?} is shorter than the part target {:?}", config.segment_target, config.part_target),
            });
        }
        let init = cmaf::init_segment(&video, &audio)?;
        let codecs = format!("{},{}", video.codec()?, audio.codec());
        let ticks = |d| duration_to_ticks(d, VIDEO_TIMESCALE);
        Ok(Segmenter {
            init,
            codecs,
            audio_rate: audio.sample_rate,
            part_limit: ticks(config.part_target + PART_SLACK),
            min_segment: ticks(config.segment_target / 2),
            audio_wait: ticks(AUDIO_WAIT),
            open: None,
            closed: VecDeque::new(),
            audio: VecDeque::new(),
            msn: 0,
            next_index: 0,
            segment_start: 0,
            audio_floor: None,
            last_video_dts: None,
            last_audio_dts: None,
            audio_end: None,
            sequence: 0,
            went_back: 0,
            finished: false,
        })
    }

    /// The init segment (`init.mp4`), the same for the whole stream.
    pub fn init_segment(&self) -> &[u8] {
        &self.init
    }

    /// The RFC 6381 codecs of the stream, for a multivariant playlist's `CODECS=`, e.g.
    /// `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    /// Takes the next video access unit (in decode order). Samples before the first keyframe,
    /// and samples whose decode time does not move forward, are dropped.
    pub fn push_video(&mut self, mut s: Sample) -> Vec<HlsEvent> {
        if self.finished {
            return Vec::new();
        }
        if self.last_video_dts.is_some_and(|last| s.dts <= last) {
            self.went_back("video", s.dts);
            return Vec::new();
        }
        let previous = self.last_video_dts.replace(s.dts);
        if s.duration == 0 {
            // No duration on the buffer: assume the last frame interval, to know if it fits.
            s.duration = previous.map_or(0, |p| clamp_u32(s.dts - p));
        }
        match self.open.take() {
            None if !s.keyframe => {
                self.audio_floor = Some(s.dts);
                self.drop_early_audio();
            }
            None => {
                self.audio_floor = Some(s.dts);
                self.drop_early_audio();
                self.segment_start = s.dts;
                self.open = Some(self.open_part(s));
            }
            Some(open) => {
                let ends_segment = s.keyframe && s.dts - self.segment_start >= self.min_segment;
                if s.keyframe || s.dts.saturating_add(u64::from(s.duration)) - open.start > self.part_limit {
                    self.close(open, s.dts, ends_segment);
                    if ends_segment {
                        self.msn += 1;
                        self.next_index = 0;
                        self.segment_start = s.dts;
                    }
                    self.open = Some(self.open_part(s));
                } else {
                    let mut open = open;
                    open.video.push(s);
                    self.open = Some(open);
                }
            }
        }
        self.drain(false)
    }

    /// Takes the next AAC frame (in decode order). Frames earlier than the first keyframe, and
    /// frames whose decode time does not move forward, are dropped.
    pub fn push_audio(&mut self, mut s: Sample) -> Vec<HlsEvent> {
        if self.finished {
            return Vec::new();
        }
        if self.last_audio_dts.is_some_and(|last| s.dts <= last) {
            self.went_back("audio", s.dts);
            return Vec::new();
        }
        if self.audio_floor.is_some_and(|floor| is_before(s.dts, self.audio_rate, floor, VIDEO_TIMESCALE)) {
            return Vec::new();
        }
        let previous = self.last_audio_dts.replace(s.dts);
        if s.duration == 0 {
            s.duration = previous.map_or(0, |p| clamp_u32(s.dts - p));
        }
        self.audio_end = Some(s.dts.saturating_add(u64::from(s.duration)));
        self.audio.push_back(s);
        if self.audio.len() > MAX_PENDING_AUDIO {
            self.audio.pop_front();
        }
        self.drain(false)
    }

    /// End of stream: the open part closes at the end of its last frame, ending the last
    /// segment, and every part still waiting for audio goes out with what audio there is.
    /// Later samples are ignored.
    pub fn finish(&mut self) -> Vec<HlsEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        if let Some(open) = self.open.take() {
            let end = open.video.last().map_or(open.start, |s| s.dts.saturating_add(u64::from(s.duration)));
            self.close(open, end, true);
        }
        let events = self.drain(true);
        self.audio.clear();
        events
    }

    /// Logs a sample dropped for going back in time: the first, then at every doubling (a
    /// broken timeline would otherwise log every frame).
    fn went_back(&mut self, track: &'static str, dts: u64) {
        self.went_back += 1;
        if self.went_back.is_power_of_two() {
            tracing::warn!(track, dts, dropped = self.went_back, "HLS: decode time went back; sample dropped");
        }
    }

    fn open_part(&mut self, first: Sample) -> OpenPart {
        let part = OpenPart {
            msn: self.msn,
            index: self.next_index,
            start: first.dts,
            independent: first.keyframe,
            video: vec![first],
        };
        self.next_index += 1;
        part
    }

    /// Closes `open` at `end` (the next part's start), queueing it for its audio.
    fn close(&mut self, open: OpenPart, end: u64, ends_segment: bool) {
        let mut video = open.video;
        fit_durations(&mut video, end);
        self.closed.push_back(ClosedPart {
            msn: open.msn,
            index: open.index,
            start: open.start,
            end,
            independent: open.independent,
            video,
            ends_segment_started_at: ends_segment.then_some(self.segment_start),
        });
    }

    fn drop_early_audio(&mut self) {
        let Some(floor) = self.audio_floor else { return };
        while self.audio.front().is_some_and(|a| is_before(a.dts, self.audio_rate, floor, VIDEO_TIMESCALE)) {
            self.audio.pop_front();
        }
    }

    /// Sends every closed part whose audio is complete (or waited for long enough; all of them
    /// when `force`), in order, each followed by its segment's end if it is the last.
    fn drain(&mut self, force: bool) -> Vec<HlsEvent> {
        let mut events = Vec::new();
        while let Some(part) = self.closed.front() {
            let audio_done =
                self.audio_end.is_some_and(|end| !is_before(end, self.audio_rate, part.end, VIDEO_TIMESCALE));
            let waited = self.last_video_dts.is_some_and(|dts| dts >= part.end.saturating_add(self.audio_wait));
            if !(force || audio_done || waited) {
                break;
            }
            let Some(part) = self.closed.pop_front() else { break };
            let mut audio = Vec::new();
            while let Some(a) = self.audio.pop_front() {
                if !is_before(a.dts, self.audio_rate, part.end, VIDEO_TIMESCALE) {
                    self.audio.push_front(a);
                    break;
                }
                audio.push(a);
            }
            if let Some(last) = audio.last() {
                let end = last.dts.saturating_add(u64::from(last.duration));
                fit_durations(&mut audio, end);
            }
            self.sequence = self.sequence.wrapping_add(1);
            match cmaf::fragment(self.sequence, &part.video, &audio) {
                Ok(bytes) => events.push(HlsEvent::Part {
                    msn: part.msn,
                    index: part.index,
                    duration: ticks_to_duration(part.end - part.start, VIDEO_TIMESCALE),
                    independent: part.independent,
                    bytes,
                }),
                // Only a sample over 4 GiB or a part over 2 GiB can fail: not a video frame.
                Err(error) => tracing::error!(%error, msn = part.msn, index = part.index, "HLS: part dropped"),
            }
            if let Some(start) = part.ends_segment_started_at {
                events.push(HlsEvent::SegmentEnd {
                    msn: part.msn,
                    duration: ticks_to_duration(part.end - start, VIDEO_TIMESCALE),
                    first_dts: ticks_to_duration(start, VIDEO_TIMESCALE),
                });
            }
        }
        events
    }
}

/// Makes each sample last until the next one's decode time, and the last until `end`.
fn fit_durations(samples: &mut [Sample], end: u64) {
    let mut next = end;
    for s in samples.iter_mut().rev() {
        s.duration = clamp_u32(next.saturating_sub(s.dts));
        next = s.dts;
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
