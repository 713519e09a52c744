//! Reading back what a test recorded or received: stream facts from ffprobe, decoded frames
//! and their colours, audio tones, frame timing. Colours are `0xRRGGBB`.

use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const RED: u32 = 0xff0000;
pub const GREEN: u32 = 0x00ff00;
pub const BLUE: u32 = 0x0000ff;
pub const YELLOW: u32 = 0xffff00;
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProbeInfo {
    pub format: String,
    pub duration: f64,
    pub video: Option<StreamInfo>,
    pub audio: Option<StreamInfo>,
}

fn ratio(s: &str) -> Option<f64> {
    let (a, b) = s.split_once('/')?;
    let (a, b): (f64, f64) = (a.parse().ok()?, b.parse().ok()?);
    (b != 0.0).then(|| a / b)
}

/// Runs ffprobe (a tool we did not write) on a file or URL.
pub fn ffprobe(target: &str) -> ProbeInfo {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams", target])
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed on {target}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let mut info = ProbeInfo {
        format: v["format"]["format_name"].as_str().unwrap_or("").to_string(),
        duration: v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
        video: None,
        audio: None,
    };
    for s in v["streams"].as_array().into_iter().flatten() {
        let si = StreamInfo {
            codec: s["codec_name"].as_str().unwrap_or("").to_string(),
            width: s["width"].as_u64().map(|x| x as u32),
            height: s["height"].as_u64().map(|x| x as u32),
            fps: s["avg_frame_rate"].as_str().and_then(ratio).or_else(|| s["r_frame_rate"].as_str().and_then(ratio)),
            sample_rate: s["sample_rate"].as_str().and_then(|r| r.parse().ok()),
            channels: s["channels"].as_u64().map(|x| x as u32),
            profile: s["profile"].as_str().map(str::to_string),
        };
        match s["codec_type"].as_str() {
            Some("video") => info.video = Some(si),
            Some("audio") => info.audio = Some(si),
            _ => {}
        }
    }
    info
}

/// A decoded frame, scaled down to `width`x`height` RGB.
pub struct Frame {
    pub pts: f64,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    /// Mean colour of a small square around (x, y) given in program (canvas) coordinates.
    pub fn color_at(&self, x: f64, y: f64, canvas_w: u32, canvas_h: u32) -> (u8, u8, u8) {
        let cx = (x / canvas_w as f64 * self.width as f64) as i64;
        let cy = (y / canvas_h as f64 * self.height as f64) as i64;
        let (mut r, mut g, mut b, mut n) = (0u64, 0u64, 0u64, 0u64);
        for dy in -2..=2 {
            for dx in -2..=2 {
                let (px, py) = (cx + dx, cy + dy);
                if px < 0 || py < 0 || px >= self.width as i64 || py >= self.height as i64 {
                    continue;
                }
                let i = ((py as u32 * self.width + px as u32) * 3) as usize;
                r += self.rgb[i] as u64;
                g += self.rgb[i + 1] as u64;
                b += self.rgb[i + 2] as u64;
                n += 1;
            }
        }
        let n = n.max(1);
        ((r / n) as u8, (g / n) as u8, (b / n) as u8)
    }
}

/// Runs a decoding pipeline ending in `appsink name=out` and hands each buffer to `each`.
/// Fails (never hangs) on a pipeline error or when nothing arrives for 20 s.
fn pull_all(desc: &str, mut each: impl FnMut(&gst::BufferRef)) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut idle = 0;
    loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(500)) {
            each(sample.buffer().unwrap());
            idle = 0;
            continue;
        }
        if sink.is_eos() {
            break;
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            pipeline.set_state(gst::State::Null).unwrap();
            panic!("decoding failed: {msg:?}");
        }
        idle += 1;
        assert!(idle < 40, "decoding stalled: {desc}");
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Decodes every video frame of a file (any container GStreamer reads), scaled down.
pub fn decode_frames(path: &Path, width: u32, height: u32) -> Vec<Frame> {
    LAST_DECODED.with(|l| *l.borrow_mut() = Some(path.to_owned()));
    let desc = format!(
        "filesrc location={} ! qtdemux name=d d.video_0 ! queue ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={width},height={height},pixel-aspect-ratio=1/1 ! appsink name=out sync=false",
        path.display()
    );
    decode_rgb(&desc, width, height)
}

thread_local! {
    /// The file `decode_frames` read last on this thread, for diagnostics when its frames
    /// turn out wrong.
    static LAST_DECODED: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// The first `n` video packets of the file `decode_frames` read last (pts, dts, flags as
/// ffprobe reads them from the container), to tell a frame missing from the file from one
/// lost in decoding.
pub fn last_decoded_packets(n: usize) -> String {
    let Some(path) = LAST_DECODED.with(|l| l.borrow().clone()) else { return "no file decoded".into() };
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,dts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().take(n).collect::<Vec<_>>().join(" | "),
        Err(e) => format!("ffprobe: {e}"),
    }
}

/// Decodes a JPEG still (e.g. the program's preview), scaled to `width`x`height`.
pub fn decode_jpeg(jpeg: &[u8], width: u32, height: u32) -> Frame {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("still.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let desc = format!(
        "filesrc location={} ! jpegdec ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={width},height={height},pixel-aspect-ratio=1/1 ! appsink name=out sync=false",
        path.display()
    );
    decode_rgb(&desc, width, height).pop().expect("the JPEG decodes to a picture")
}

/// Runs `desc` (ending in an RGB `appsink name=out`) and collects its frames.
fn decode_rgb(desc: &str, width: u32, height: u32) -> Vec<Frame> {
    let stride = (width * 3).div_ceil(4) * 4;
    let mut frames = Vec::new();
    pull_all(desc, |buffer| {
        let map = buffer.map_readable().unwrap();
        let mut rgb = Vec::with_capacity((width * height * 3) as usize);
        for row in 0..height {
            let start = (row * stride) as usize;
            rgb.extend_from_slice(&map[start..start + (width * 3) as usize]);
        }
        let pts = buffer.pts().map(|p| p.nseconds() as f64 / 1e9).unwrap_or(-1.0);
        frames.push(Frame { pts, width, height, rgb });
    });
    frames
}

/// Decodes the audio of a file to mono f32 at 48 kHz.
pub fn decode_audio(path: &Path) -> Vec<f32> {
    let desc = format!(
        "filesrc location={} ! qtdemux name=d d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! \
         audio/x-raw,format=F32LE,channels=1,rate=48000 ! appsink name=out sync=false",
        path.display()
    );
    // Samples are placed at their timestamps: index / 48000 is the time in the file.
    let mut samples: Vec<f32> = Vec::new();
    pull_all(&desc, |buffer| {
        let map = buffer.map_readable().unwrap();
        if let Some(pts) = buffer.pts() {
            let at = (pts.nseconds() as u128 * 48_000 / 1_000_000_000) as usize;
            if at > samples.len() {
                samples.resize(at, 0.0);
            }
        }
        samples.extend(map.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    });
    samples
}

/// Amplitude of a frequency in a window of samples (Goertzel), 0..~1 for a full-scale sine.
pub fn tone_amplitude(samples: &[f32], rate: f64, hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.sqrt() / samples.len() as f64
}

/// Whether the colour `c` is `rgb` give or take 47 in each channel.
pub fn close(c: (u8, u8, u8), rgb: u32) -> bool {
    let want = (((rgb >> 16) & 0xff) as i32, ((rgb >> 8) & 0xff) as i32, (rgb & 0xff) as i32);
    (c.0 as i32 - want.0).abs() < 48 && (c.1 as i32 - want.1).abs() < 48 && (c.2 as i32 - want.2).abs() < 48
}

/// Times (s) of the video keyframes and whether any B-frames are declared, via ffprobe.
pub fn keyframes(path: &Path) -> (Vec<f64>, bool) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let keys = text.lines().filter(|l| l.contains('K')).filter_map(|l| l.split(',').next()?.parse().ok()).collect();
    let streams = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=has_b_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let b_frames = String::from_utf8_lossy(&streams.stdout).trim() != "0";
    (keys, b_frames)
}

thread_local! {
    /// The video frames the output this thread finished last passed to its muxer: a gap
    /// report compares them with the frames in the file.
    static LAST_MUXED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Notes how many video frames the output just finished passed to its muxer, for the report
/// of a later [`assert_continuous`] that finds a gap.
pub fn note_muxed_frames(frames: u64) {
    LAST_MUXED.with(|l| l.set(Some(frames)));
}

/// Asserts frames are evenly spaced at `fps` with no gap or repeat, and returns their count.
pub fn assert_continuous(frames: &[Frame], fps: f64) -> usize {
    let step = 1.0 / fps;
    for w in frames.windows(2) {
        let d = w[1].pts - w[0].pts;
        if (d - step).abs() >= 0.002 {
            let first: Vec<String> = frames.iter().take(6).map(|f| format!("{:.4}", f.pts)).collect();
            panic!(
                "timestamp gap: {:.4} -> {:.4}; first decoded frames at {first:?}; first packets in the file (pts,dts,flags): {}; {} frames decoded, the last finished output passed {:?} to its muxer",
                w[0].pts,
                w[1].pts,
                last_decoded_packets(6),
                frames.len(),
                LAST_MUXED.with(|l| l.get())
            );
        }
    }
    frames.len()
}

/// The frames with `from <= pts < to`.
pub fn frames_in(frames: &[Frame], from: f64, to: f64) -> impl Iterator<Item = &Frame> {
    frames.iter().filter(move |f| f.pts >= from && f.pts < to)
}

/// Asserts that in every frame of [from, to) the point `at` of the `canvas` (a participant's
/// tile centre) shows `color`; `who` names it in the failure.
pub fn assert_color(frames: &[Frame], from: f64, to: f64, at: (f64, f64), canvas: (u32, u32), color: u32, who: &str) {
    let mut n = 0;
    for f in frames_in(frames, from, to) {
        let c = f.color_at(at.0, at.1, canvas.0, canvas.1);
        assert!(close(c, color), "{who} at {at:?} t={:.3}: got {c:?}, want #{color:06x}", f.pts);
        n += 1;
    }
    assert!(n > 0, "no frames between {from} and {to}");
}

/// Video packet timestamps (s) of a file or URL, read by ffprobe, in order.
pub fn video_packet_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// Asserts packet times step by one frame (FLV keeps milliseconds) and returns the count.
pub fn assert_no_frame_lost(times: &[f64], fps: f64, what: &str) -> usize {
    let step = 1.0 / fps;
    assert!(times.first().is_some_and(|t| *t < 0.1), "{what}: starts at {:?}", times.first());
    for w in times.windows(2) {
        let d = w[1] - w[0];
        assert!(
            (d - step).abs() < 0.0025,
            "{what}: frame gap {:.3} -> {:.3} (of {} frames; first: {:?})",
            w[0],
            w[1],
            times.len(),
            &times[..times.len().min(12)]
        );
    }
    times.len()
}

/// What [`probe`] reads of a recording.
#[derive(Debug)]
pub struct Probe {
    pub duration: f64,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub video_frames: u64,
    /// Largest gap between consecutive video frames, in seconds.
    pub max_gap: f64,
}

/// ffprobe: decodes every video frame (counting them) and reads their timestamps.
pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let find = |t: &str| streams.iter().find(|s| s["codec_type"] == t).cloned();
    let video = find("video").expect("no video stream");
    let ts = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe frames");
    let mut times: Vec<f64> = String::from_utf8_lossy(&ts.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    let max_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Probe {
        duration: v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
        video_codec: video["codec_name"].as_str().unwrap_or_default().to_owned(),
        audio_codec: find("audio").and_then(|a| a["codec_name"].as_str().map(str::to_owned)),
        video_frames: video["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0),
        max_gap,
    }
}
