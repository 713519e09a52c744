//! The LL-HLS muxer against tools we did not write: real x264 and AAC encodes (GStreamer)
//! cut by the segmenter into parts and segments, written out with the playlist, then read by
//! ffprobe (the init segment with all segments: codecs, size, rate, duration), ffmpeg (the
//! playlist, decoded without an error), GStreamer's qtdemux and avdec_h264 (one segment's
//! frames) and ffprobe again on each independent part alone. A segment is its parts back to
//! back, byte for byte.

use gst::prelude::*;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;
use tessera_compositor::hls::{
    AudioConfig, HlsEvent, INIT_NAME, Playlist, PlaylistConfig, Sample, Segmenter, SegmenterConfig, VideoConfig,
    part_name, segment_name,
};

const VIDEO: &str = "videotestsrc is-live=false num-buffers=180 \
    ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 \
    ! x264enc key-int-max=60 tune=zerolatency speed-preset=ultrafast ! video/x-h264,stream-format=avc,alignment=au \
    ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false";
/// 282 frames of 1024 samples: just over 6 s.
const AUDIO: &str = "audiotestsrc num-buffers=282 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
    ! avenc_aac ! aacparse ! appsink name=sink sync=false";

/// A pipeline's encoded output: its caps and its buffers as samples in `timescale` ticks.
struct Encoded {
    caps: gst::Caps,
    samples: Vec<Sample>,
}

/// Nanoseconds to ticks, rounded: truncating would make 30 fps frames 2999 and 3001 ticks.
fn ticks(t: gst::ClockTime, timescale: u64) -> u64 {
    ((u128::from(t.nseconds()) * u128::from(timescale) + 500_000_000) / 1_000_000_000) as u64
}

fn encode(description: &str, timescale: u64) -> Encoded {
    gst::init().expect("GStreamer");
    let pipeline = gst::parse::launch(description).expect("pipeline").downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).expect("playing");
    let (mut caps, mut samples) = (None, Vec::new());
    // pull_sample fails at EOS (or on an error, which the bus then holds).
    while let Ok(sample) = sink.pull_sample() {
        caps.get_or_insert_with(|| sample.caps().expect("caps").to_owned());
        let buffer = sample.buffer().expect("buffer");
        // Running time, not the buffer's timestamps: x264enc's output segment starts at 1000
        // hours (room for negative DTS), the AAC encoder's at zero.
        let segment = sample.segment().expect("segment").downcast_ref::<gst::ClockTime>().expect("a time segment");
        let running = |t: gst::ClockTime| segment.to_running_time(t).expect("within the segment");
        let pts = running(buffer.pts().expect("pts"));
        let dts = buffer.dts().map_or(pts, running);
        let (pts, dts) = (ticks(pts, timescale), ticks(dts, timescale));
        samples.push(Sample {
            dts,
            cts_offset: i32::try_from(pts as i64 - dts as i64).unwrap(),
            duration: buffer.duration().map_or(0, |d| ticks(d, timescale) as u32),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            data: buffer.map_readable().unwrap().to_vec(),
        });
    }
    let error = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(error.is_none(), "{description}: {error:?}");
    Encoded { caps: caps.expect("some output"), samples }
}

fn codec_data(caps: &gst::Caps) -> Vec<u8> {
    let s = caps.structure(0).unwrap();
    s.get::<gst::Buffer>("codec_data").expect("codec_data in the caps").map_readable().unwrap().to_vec()
}

/// Runs a tool we did not write; its stdout, after checking it succeeded without a word on stderr.
fn run_clean(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program).args(args).current_dir(dir).output().expect("the tool runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{program} {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn video_frames(file: &str, dir: &Path) -> u64 {
    let args = ["-v", "error", "-count_frames", "-select_streams", "v:0"];
    let out = run_clean(
        "ffprobe",
        &[&args[..], &["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file]].concat(),
        dir,
    );
    // The HLS demuxer lists the stream twice (in its program, and alone): the same count.
    out.lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("frame count of {file}: {out}"))
}

/// Decodes a file's H.264 with GStreamer; returns the number of frames decoded.
fn gst_decoded_frames(path: &Path) -> usize {
    let description =
        format!("filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! fakesink name=sink", path.display());
    let pipeline = gst::parse::launch(&description).expect("pipeline").downcast::<gst::Pipeline>().unwrap();
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = frames.clone();
    let pad = pipeline.by_name("sink").unwrap().static_pad("sink").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos, gst::MessageType::Error])
        .expect("EOS or an error within 30 s");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(message.view(), gst::MessageView::Eos(_)), "{}: {message:?}", path.display());
    frames.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn hls_of_real_encodes_makes_segments_parts_and_a_playlist_that_ffmpeg_and_gstreamer_decode() {
    let video = encode(VIDEO, 90_000);
    let audio = encode(AUDIO, 48_000);
    let vs = video.caps.structure(0).unwrap();
    let (width, height) = (vs.get::<i32>("width").unwrap() as u32, vs.get::<i32>("height").unwrap() as u32);
    let video_config = VideoConfig { width, height, avcc: codec_data(&video.caps) };
    let audio_config = AudioConfig { sample_rate: 48_000, channels: 2, asc: codec_data(&audio.caps) };
    assert_eq!(audio_config.codec(), "mp4a.40.2");
    let codec = video_config.codec().unwrap();
    assert!(codec.starts_with("avc1.") && codec.len() == 11, "{codec}");
    assert_eq!(video.samples.len(), 180);
    assert!(video.samples.iter().all(|s| s.cts_offset == 0), "zerolatency: no B-frames");

    let mut segmenter = Segmenter::new(SegmenterConfig::default(), video_config, audio_config).unwrap();
    // The two streams in time order, as the program's appsinks would deliver them.
    let mut merged: Vec<(f64, bool, Sample)> =
        video.samples.into_iter().map(|s| (s.dts as f64 / 90_000.0, true, s)).collect();
    merged.extend(audio.samples.into_iter().map(|s| (s.dts as f64 / 48_000.0, false, s)));
    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut events = Vec::new();
    for (_, is_video, sample) in merged {
        events.extend(if is_video { segmenter.push_video(sample) } else { segmenter.push_audio(sample) });
    }
    events.extend(segmenter.finish());

    // Written out as a server would: the header, each part, each segment, the playlist.
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).expect("write");
    write(INIT_NAME, segmenter.init_segment());
    let mut playlist = Playlist::new(PlaylistConfig {
        part_target: SegmenterConfig::default().part_target,
        target_duration: std::time::Duration::from_secs(3),
        window: 10,
    });
    let clock = Some(SystemTime::now());
    let (mut open, mut parts, mut segments) = (Vec::new(), Vec::new(), Vec::new());
    for event in &events {
        playlist.apply(event, clock);
        match event {
            HlsEvent::Part { msn, index, bytes, independent, duration } => {
                assert!(duration.as_secs_f64() <= 0.501, "part {msn}.{index}: {duration:?}");
                write(&part_name(*msn, *index), bytes);
                open.extend_from_slice(bytes);
                parts.push((*msn, *index, *independent));
            }
            HlsEvent::SegmentEnd { msn, duration, .. } => {
                write(&segment_name(*msn), &std::mem::take(&mut open));
                segments.push((*msn, duration.as_secs_f64()));
            }
        }
    }
    playlist.finish();
    write("index.m3u8", playlist.render().as_bytes());
    eprintln!("{}", playlist.render());

    // Keyframes every 60 frames: three segments of 2 s, each of four parts.
    assert_eq!(segments.len(), 3, "{segments:?}");
    assert!(segments.iter().all(|(_, d)| (d - 2.0).abs() < 0.01), "{segments:?}");
    for (msn, _) in &segments {
        let of_segment: Vec<_> = parts.iter().filter(|p| p.0 == *msn).collect();
        assert_eq!(of_segment.len(), 4, "segment {msn}: {of_segment:?}");
        assert!(of_segment[0].2, "segment {msn} starts with an independent part");
        // The segment is its parts back to back.
        let joined: Vec<u8> =
            of_segment.iter().flat_map(|p| std::fs::read(dir.path().join(part_name(p.0, p.1))).unwrap()).collect();
        assert!(joined == std::fs::read(dir.path().join(segment_name(*msn))).unwrap(), "segment {msn} = its parts");
    }

    // The header and every segment, as one file: what a player downloading segments plays.
    let mut all = segmenter.init_segment().to_vec();
    for (msn, _) in &segments {
        all.extend(std::fs::read(dir.path().join(segment_name(*msn))).unwrap());
    }
    write("all.mp4", &all);
    let probe = run_clean(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate:format=duration",
            "-of",
            "json",
            "all.mp4",
        ],
        dir.path(),
    );
    let probe: serde_json::Value = serde_json::from_str(&probe).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let stream =
        |codec: &str| streams.iter().find(|s| s["codec_name"] == codec).unwrap_or_else(|| panic!("{codec}: {probe}"));
    assert_eq!((&stream("h264")["width"], &stream("h264")["height"]), (&320.into(), &180.into()));
    assert_eq!(stream("aac")["sample_rate"], "48000");
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 6.0).abs() < 0.2, "duration {duration}");
    assert_eq!(video_frames("all.mp4", dir.path()), 180);

    // The playlist, as a plain HLS client reads it (parts ignored): every frame, no error.
    assert_eq!(video_frames("index.m3u8", dir.path()), 180);
    run_clean(
        "ffmpeg",
        &["-v", "error", "-allowed_extensions", "ALL", "-i", "index.m3u8", "-f", "null", "-"],
        dir.path(),
    );

    // GStreamer's demuxer and decoder on one segment: its two seconds of frames.
    write(
        "seg1-whole.mp4",
        &[segmenter.init_segment(), &std::fs::read(dir.path().join(segment_name(1))).unwrap()].concat(),
    );
    assert_eq!(gst_decoded_frames(&dir.path().join("seg1-whole.mp4")), 60);

    // An independent part plays on its own: a player may start on it.
    for (msn, index, _) in parts.iter().filter(|p| p.2) {
        let name = format!("part{msn}.{index}.mp4");
        write(
            &name,
            &[segmenter.init_segment(), &std::fs::read(dir.path().join(part_name(*msn, *index))).unwrap()].concat(),
        );
        assert_eq!(video_frames(&name, dir.path()), 15, "{name}");
    }
}
