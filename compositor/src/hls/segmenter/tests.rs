//! The segmenter fed synthetic streams with exact times: 30 fps video (3000 ticks a frame at
//! 90 kHz) and AAC frames of 1024 samples at 48 kHz, delivered in arrival order. Every part is
//! read back, so the checks are on the samples each holds, not on bytes.

use super::*;
use crate::hls::testing::{ReadFragment, configs, read_fragment};

const FRAME: u64 = 3000;
const AAC: u64 = 1024;

fn segmenter() -> Segmenter {
    let (video, audio) = configs();
    Segmenter::new(SegmenterConfig::default(), video, audio).unwrap()
}

/// `n` frames from media time 0; keyframes where `key` says.
fn video(n: u64, key: impl Fn(u64) -> bool) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            dts: i * FRAME,
            cts_offset: 0,
            duration: FRAME as u32,
            keyframe: key(i),
            data: format!("v{i}").into_bytes(),
        })
        .collect()
}

/// AAC frames from media time 0 up to `secs`.
fn audio(secs: f64) -> Vec<Sample> {
    let n = (secs * 48_000.0 / AAC as f64).ceil() as u64;
    (0..n)
        .map(|i| Sample {
            dts: i * AAC,
            cts_offset: 0,
            duration: AAC as u32,
            keyframe: true,
            data: format!("a{i}").into_bytes(),
        })
        .collect()
}

fn every_60(i: u64) -> bool {
    i.is_multiple_of(60)
}

/// An event and the media time of the sample whose arrival produced it (`f64::INFINITY`: at
/// `finish`).
type Timed = (f64, HlsEvent);

/// Feeds video at its media time and each audio frame at `audio_arrival(its media time)`,
/// in arrival order (video first on a tie), then finishes.
fn run(seg: &mut Segmenter, video: Vec<Sample>, audio: Vec<Sample>, audio_arrival: impl Fn(f64) -> f64) -> Vec<Timed> {
    let mut arrivals: Vec<(f64, bool, Sample)> =
        video.into_iter().map(|s| (s.dts as f64 / 90_000.0, true, s)).collect();
    arrivals.extend(audio.into_iter().map(|s| (audio_arrival(s.dts as f64 / 48_000.0), false, s)));
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut events = Vec::new();
    for (at, is_video, s) in arrivals {
        let out = if is_video { seg.push_video(s) } else { seg.push_audio(s) };
        events.extend(out.into_iter().map(|e| (at, e)));
    }
    events.extend(seg.finish().into_iter().map(|e| (f64::INFINITY, e)));
    events
}

#[derive(Debug)]
struct Part {
    /// When it came out (see [`Timed`]).
    at: f64,
    /// Start and end in seconds of media time.
    start: f64,
    end: f64,
    independent: bool,
    read: ReadFragment,
}

#[derive(Debug)]
struct Segment {
    duration: f64,
    first_dts: f64,
    parts: Vec<Part>,
}

/// Checks the event stream's shape and reads it back: parts in order with indexes from 0 in
/// each segment, each segment's end after its parts with their summed duration, segments from
/// msn 0 without a gap, fragment sequence numbers 1, 2, 3…, parts never over the target (plus
/// the rounding slack), independent exactly when they start with a keyframe, every segment
/// starting with an independent part, and the video timeline without a gap or overlap.
fn check(events: &[Timed]) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut media_time = None;
    let mut sequence = 0;
    for (at, event) in events {
        match event {
            HlsEvent::Part { msn, index, duration, independent, bytes } => {
                assert_eq!((*msn, *index as usize), (segments.len() as u64, parts.len()), "part order");
                assert!(*duration <= Duration::from_millis(501), "part {msn}.{index} lasts {duration:?}");
                let read = read_fragment(bytes);
                sequence += 1;
                assert_eq!(read.sequence, sequence);
                let first = read.video.first().expect("every part has video");
                assert_eq!(*independent, first.keyframe, "part {msn}.{index}");
                let ticks: u64 = read.video.iter().map(|s| u64::from(s.duration)).sum();
                assert_eq!(ticks_to_duration(ticks, VIDEO_TIMESCALE), *duration, "part {msn}.{index}'s duration");
                assert_eq!(media_time.unwrap_or(first.dts), first.dts, "part {msn}.{index} follows the last");
                media_time = Some(first.dts + ticks);
                let start = first.dts as f64 / 90_000.0;
                parts.push(Part {
                    at: *at,
                    start,
                    end: start + duration.as_secs_f64(),
                    independent: *independent,
                    read,
                });
            }
            HlsEvent::SegmentEnd { msn, duration, first_dts } => {
                assert_eq!(*msn, segments.len() as u64);
                assert!(!parts.is_empty(), "segment {msn} has parts");
                assert!(parts[0].independent, "segment {msn} starts on a keyframe");
                let summed: f64 = parts.iter().map(|p| p.end - p.start).sum();
                assert!((duration.as_secs_f64() - summed).abs() < 1e-6, "segment {msn}: {duration:?} vs {summed}");
                assert!((first_dts.as_secs_f64() - parts[0].start).abs() < 1e-9);
                let parts = std::mem::take(&mut parts);
                segments.push(Segment { duration: duration.as_secs_f64(), first_dts: first_dts.as_secs_f64(), parts });
            }
        }
    }
    assert!(parts.is_empty(), "every part's segment ended");
    segments
}

fn all_parts(segments: &[Segment]) -> impl Iterator<Item = &Part> {
    segments.iter().flat_map(|s| &s.parts)
}

/// All video samples of all parts, in order.
fn all_video(segments: &[Segment]) -> Vec<Sample> {
    all_parts(segments).flat_map(|p| p.read.video.clone()).collect()
}

fn all_audio(segments: &[Segment]) -> Vec<Sample> {
    all_parts(segments).flat_map(|p| p.read.audio.clone()).collect()
}

/// The audio frames from media time `from` to `to` (seconds), as they were given.
fn audio_between(audio: &[Sample], from: f64, to: f64) -> Vec<Sample> {
    audio.iter().filter(|a| (from..to).contains(&(a.dts as f64 / 48_000.0))).cloned().collect()
}

/// Every audio frame is in the part whose time span covers its start (the first part also
/// starts the audio).
fn assert_audio_in_its_part(segments: &[Segment]) {
    for p in all_parts(segments) {
        for a in &p.read.audio {
            let t = a.dts as f64 / 48_000.0;
            assert!(t < p.end && (p.start == 0.0 || t >= p.start), "audio at {t} in part {}..{}", p.start, p.end);
        }
    }
}

fn durations(segments: &[Segment]) -> Vec<String> {
    segments.iter().map(|s| format!("{:.3}", s.duration)).collect()
}

fn part_durations(segment: &Segment) -> Vec<String> {
    segment.parts.iter().map(|p| format!("{:.3}", p.end - p.start)).collect()
}

#[test]
fn a_steady_stream_makes_two_second_segments_of_four_parts() {
    let mut seg = segmenter();
    let (v, a) = (video(180, every_60), audio(6.0));
    let events = run(&mut seg, v.clone(), a.clone(), |t| t);
    let segments = check(&events);
    assert_eq!(durations(&segments), ["2.000", "2.000", "2.000"]);
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.first_dts, 2.0 * i as f64);
        assert_eq!(part_durations(s), ["0.500"; 4]);
        let independent: Vec<bool> = s.parts.iter().map(|p| p.independent).collect();
        assert_eq!(independent, [true, false, false, false]);
    }
    assert_eq!(all_video(&segments), v, "every frame, with its own times");
    assert_eq!(all_audio(&segments), a, "every AAC frame, with its own times");
    assert_audio_in_its_part(&segments);
    // A part goes out with the first frame after it, or the audio frame reaching its end.
    for p in all_parts(&segments).filter(|p| p.at.is_finite()) {
        assert!(p.at >= p.end - 0.022 && p.at <= p.end + 0.034, "part {}..{} out at {}", p.start, p.end, p.at);
    }
}

#[test]
fn a_forced_keyframe_closes_a_part_and_starts_a_segment_only_past_half_the_target() {
    // Regular keyframes every 2 s, forced ones at 0.667 s (too early for a new segment) and
    // 3.333 s (1.333 s into segment 1: a new one); the encoder's cadence restarts after it
    // (4.0 s is a keyframe of the old cadence too, only 0.667 s into segment 2).
    let keys = [0, 20, 60, 100, 120, 180, 240];
    let mut seg = segmenter();
    let events = run(&mut seg, video(270, |i| keys.contains(&i)), audio(9.0), |t| t);
    let segments = check(&events);
    let starts: Vec<String> = segments.iter().map(|s| format!("{:.3}", s.first_dts)).collect();
    assert_eq!(starts, ["0.000", "2.000", "3.333", "6.000", "8.000"]);
    assert_eq!(durations(&segments), ["2.000", "1.333", "2.667", "2.000", "1.000"]);
    assert_eq!(part_durations(&segments[0]), ["0.500", "0.167", "0.500", "0.500", "0.333"]);
    assert_eq!(part_durations(&segments[2]), ["0.500", "0.167", "0.500", "0.500", "0.500", "0.500"]);
    let independent: Vec<bool> = segments[0].parts.iter().map(|p| p.independent).collect();
    assert_eq!(independent, [true, false, true, false, false], "the forced keyframe starts a part");
    assert!(segments.iter().all(|s| s.duration < 1.5 * 2.0 + 0.5));
    assert_audio_in_its_part(&segments);
}

#[test]
fn audio_arriving_200_ms_late_or_early_makes_the_same_parts() {
    let (v, a) = (video(180, every_60), audio(6.0));
    let in_time = run(&mut segmenter(), v.clone(), a.clone(), |t| t);
    let late = run(&mut segmenter(), v.clone(), a.clone(), |t| t + 0.2);
    let early = run(&mut segmenter(), v, a, |t| t - 0.2);
    let events = |timed: &[Timed]| timed.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>();
    assert_eq!(events(&late), events(&in_time), "a part waits for its audio");
    assert_eq!(events(&early), events(&in_time));
    // Late audio holds each part back by its lateness, no more.
    for p in all_parts(&check(&late)).filter(|p| p.at.is_finite()) {
        assert!(
            p.at >= p.end + 0.2 - 0.022 && p.at <= p.end + 0.2 + 0.022,
            "part {}..{} out at {}",
            p.start,
            p.end,
            p.at
        );
    }
}

#[test]
fn without_audio_parts_go_out_a_second_late_with_video_only() {
    let mut seg = segmenter();
    let v = video(180, every_60);
    let segments = check(&run(&mut seg, v.clone(), Vec::new(), |t| t));
    assert_eq!(durations(&segments), ["2.000", "2.000", "2.000"]);
    assert_eq!(all_video(&segments), v);
    for p in all_parts(&segments) {
        assert!(p.read.audio.is_empty());
        if p.at.is_finite() {
            assert!(
                (p.at - (p.end + AUDIO_WAIT.as_secs_f64())).abs() < 1e-9,
                "part {}..{} out at {}",
                p.start,
                p.end,
                p.at
            );
        }
    }
    // The last second's parts come out at the end.
    assert!(all_parts(&segments).filter(|p| p.at.is_infinite()).count() >= 2);
}

#[test]
fn stalled_audio_is_not_waited_for_and_goes_into_the_next_part_when_it_comes() {
    // Audio stalls at 1.0 s; what it has encoded since comes in one burst when video is at 2.6 s.
    let (v, a) = (video(180, every_60), audio(6.0));
    let events = run(&mut segmenter(), v, a.clone(), |t| if (1.0..2.6).contains(&t) { 2.6 } else { t });
    let segments = check(&events);
    let parts: Vec<&Part> = all_parts(&segments).collect();
    // Part 1.0..1.5 went out once video was a second past it, without audio.
    assert_eq!((parts[2].start, parts[2].at), (1.0, 2.5));
    assert!(parts[2].read.audio.is_empty());
    // Part 1.5..2.0 came out with the burst, with the late audio from 1.0 s on.
    assert_eq!((parts[3].start, parts[3].at), (1.5, 2.6));
    assert_eq!(parts[3].read.audio, audio_between(&a, 1.0, 2.0));
    assert_eq!(all_audio(&segments), a, "no AAC frame lost, each track's time only moves forward");
}

#[test]
fn media_before_the_first_keyframe_is_dropped() {
    // The first keyframe is at 1.0 s (frame 30); audio starts at 0.
    let (v, a) = (video(150, |i| i % 60 == 30), audio(5.0));
    let segments = check(&run(&mut segmenter(), v.clone(), a.clone(), |t| t));
    assert_eq!(segments[0].first_dts, 1.0);
    assert_eq!(all_video(&segments), v[30..].to_vec());
    assert_eq!(all_audio(&segments), audio_between(&a, 1.0, 5.0));
    // Audio arriving late, after the first keyframe, is dropped all the same.
    let segments = check(&run(&mut segmenter(), v, a.clone(), |t| t + 0.3));
    assert_eq!(all_audio(&segments), audio_between(&a, 1.0, 5.0));
}

#[test]
fn finish_sends_the_last_part_and_segment_then_nothing() {
    let mut seg = segmenter();
    // 2.5 s: a last segment of one part, its last frame lasting its own duration.
    let (v, a) = (video(75, every_60), audio(3.0));
    let segments = check(&run(&mut seg, v, a.clone(), |t| t));
    assert_eq!(durations(&segments), ["2.000", "0.500"]);
    assert_eq!(all_audio(&segments), audio_between(&a, 0.0, 2.5), "audio past the video's end is dropped");
    assert!(seg.finish().is_empty());
    assert!(seg.push_video(video(1, |_| true).remove(0)).is_empty());
    // A stream that never had a keyframe has nothing to finish.
    let mut seg = segmenter();
    assert!(seg.push_video(video(2, |_| false).remove(1)).is_empty());
    assert!(seg.finish().is_empty());
}

#[test]
fn missing_durations_and_samples_out_of_order_change_nothing() {
    let (v, a) = (video(180, every_60), audio(6.0));
    let reference = run(&mut segmenter(), v.clone(), a.clone(), |t| t);
    // No buffer durations: the interval since the previous sample stands in.
    let strip = |s: &[Sample]| s.iter().cloned().map(|s| Sample { duration: 0, ..s }).collect::<Vec<_>>();
    let mut stripped_a = strip(&a);
    stripped_a[0].duration = AAC as u32; // the very first frame has nothing before it
    let events = run(&mut segmenter(), strip(&v), stripped_a, |t| t);
    let strip_times = |timed: Vec<Timed>| timed.into_iter().map(|(_, e)| e).collect::<Vec<_>>();
    assert_eq!(strip_times(events), strip_times(reference.clone()));
    // A repeated or earlier sample is dropped.
    let mut seg = segmenter();
    let mut events = Vec::new();
    for (i, s) in v.iter().enumerate() {
        events.extend(seg.push_video(s.clone()));
        if i == 10 {
            assert!(seg.push_video(v[5].clone()).is_empty());
            assert!(seg.push_video(s.clone()).is_empty());
        }
    }
    events.extend(seg.finish());
    assert_eq!(all_video(&check(&events.into_iter().map(|e| (0.0, e)).collect::<Vec<_>>())), v);
}

#[test]
fn impossible_targets_are_refused() {
    let (video, audio) = configs();
    let zero = SegmenterConfig { part_target: Duration::ZERO, ..SegmenterConfig::default() };
    assert!(matches!(Segmenter::new(zero, video.clone(), audio.clone()), Err(HlsError::InvalidConfig { .. })));
    let short = SegmenterConfig { segment_target: Duration::from_millis(400), ..SegmenterConfig::default() };
    assert!(matches!(Segmenter::new(short, video.clone(), audio.clone()), Err(HlsError::InvalidConfig { .. })));
    let bad = VideoConfig { avcc: vec![0; 3], ..video };
    assert!(matches!(Segmenter::new(SegmenterConfig::default(), bad, audio), Err(HlsError::InvalidAvcc(_))));
    assert_eq!(segmenter().codecs(), "avc1.64001f,mp4a.40.2");
    assert_eq!(&segmenter().init_segment()[4..8], b"ftyp");
}
