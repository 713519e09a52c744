//! The RTP output, as the SFU gets it: packets of the program's H.264 and of Opus, decoded back
//! by GStreamer's depayloaders; SPS/PPS ahead of every IDR; viewers' keyframe requests
//! coalesced; one clock for both streams; and detaching it leaves a recording playing on.

mod common;
use common::*;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use tessera_compositor::rtp::{ntp_now_ns, ntp_to_nanos, parse_rtp_header};
use tessera_compositor::{OutputSpec, ProgramConfig, RtpSink, RtpStream, RtpStreamInfo};
use tessera_testkit::analysis::{
    Frame, RED, assert_color, assert_continuous, decode_audio, decode_frames, tone_amplitude,
};

const CANVAS: (u32, u32) = (1280, 720);

struct Packet {
    stream: RtpStream,
    bytes: Vec<u8>,
    /// Wall clock at arrival, ns since 1900.
    arrived: u128,
}

/// An SFU's side of the output: keeps every packet (a test may take a lock here; a real sink
/// hands the bytes on without waiting).
#[derive(Default)]
struct Collector {
    packets: Mutex<Vec<Packet>>,
}

impl Collector {
    fn push(&self, stream: RtpStream, packet: &[u8]) {
        let arrived = ntp_now_ns();
        self.packets.lock().unwrap().push(Packet { stream, bytes: packet.to_vec(), arrived });
    }

    fn count(&self, stream: RtpStream) -> usize {
        self.packets.lock().unwrap().iter().filter(|p| p.stream == stream).count()
    }

    /// The packets of one stream, in arrival order.
    fn take(&self, stream: RtpStream) -> Vec<Packet> {
        let mut all = self.packets.lock().unwrap();
        let (mine, rest) = std::mem::take(&mut *all).into_iter().partition(|p| p.stream == stream);
        *all = rest;
        mine
    }
}

impl RtpSink for Collector {
    fn video(&self, packet: &[u8]) {
        self.push(RtpStream::Video, packet);
    }
    fn audio(&self, packet: &[u8]) {
        self.push(RtpStream::Audio, packet);
    }
}

fn payload(packet: &[u8]) -> &[u8] {
    let cc = (packet[0] & 0x0f) as usize;
    let mut at = 12 + 4 * cc;
    if packet[0] & 0x10 != 0 {
        at += 4 + 4 * u16::from_be_bytes([packet[at + 2], packet[at + 3]]) as usize;
    }
    &packet[at..]
}

/// The H.264 NAL unit types that start in a packet (single NAL, STAP-A, FU-A start).
fn nal_types(packet: &[u8]) -> Vec<u8> {
    let p = payload(packet);
    match p[0] & 0x1f {
        24 => {
            let (mut types, mut at) = (Vec::new(), 1);
            while at + 2 < p.len() {
                let size = u16::from_be_bytes([p[at], p[at + 1]]) as usize;
                types.push(p[at + 2] & 0x1f);
                at += 2 + size;
            }
            types
        }
        28 if p[1] & 0x80 != 0 => vec![p[1] & 0x1f],
        28 => vec![],
        t => vec![t],
    }
}

fn timestamp(packet: &[u8]) -> u32 {
    parse_rtp_header(packet).expect("an RTP packet").timestamp
}

/// Each IDR's packets: where it starts in `video` and its NAL units up to the IDR slice.
fn idrs(video: &[Packet]) -> Vec<(usize, Vec<u8>)> {
    let mut found: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, p) in video.iter().enumerate() {
        let ts = timestamp(&p.bytes);
        let types = nal_types(&p.bytes);
        if types.contains(&5) && !found.iter().any(|(at, _)| timestamp(&video[*at].bytes) == ts) {
            // The NAL units of this frame so far: its earlier packets have its timestamp too.
            let first = (0..=i).rev().take_while(|j| timestamp(&video[*j].bytes) == ts).last().unwrap_or(i);
            let units = video[first..=i].iter().flat_map(|p| nal_types(&p.bytes)).collect();
            found.push((first, units));
        }
    }
    found
}

/// Pushes one stream's packets through `depay_and_decode` into an `appsink name=out`, each
/// stamped with its RTP time since the first packet.
fn decode_rtp(packets: &[Packet], stream: &RtpStreamInfo, encoding: &str, tail: &str) -> Vec<(f64, Vec<u8>)> {
    let media = if stream.mime_type.starts_with("video") { "video" } else { "audio" };
    let desc = format!(
        "appsrc name=src format=time caps=application/x-rtp,media={media},clock-rate={},encoding-name={encoding},payload={} ! {tail} ! appsink name=out sync=false",
        stream.clock_rate, stream.payload_type
    );
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let out = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let first = timestamp(&packets[0].bytes);
    for p in packets {
        let ticks = timestamp(&p.bytes).wrapping_sub(first) as u64;
        let mut buffer = gst::Buffer::from_slice(p.bytes.clone());
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_nseconds(ticks * 1_000_000_000 / stream.clock_rate as u64));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut decoded = Vec::new();
    while let Some(sample) = out.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let b = sample.buffer().unwrap();
        let pts = b.pts().map(|t| t.nseconds() as f64 / 1e9).unwrap_or(-1.0);
        decoded.push((pts, b.map_readable().unwrap().to_vec()));
    }
    let errors = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(errors.is_none(), "decoding the {media} packets failed: {errors:?}");
    assert!(out.is_eos(), "the {media} decoder stalled");
    decoded
}

/// How long after its instant on the wall clock (per the output's clock sample) each packet
/// arrived, in seconds.
fn lags(packets: &[Packet], stream: &RtpStreamInfo, clock_ntp: u128, clock_rtp: u32) -> Vec<f64> {
    packets
        .iter()
        .map(|p| {
            let behind = clock_rtp.wrapping_sub(timestamp(&p.bytes)) as i32 as f64 / stream.clock_rate as f64;
            let instant = clock_ntp as f64 / 1e9 - behind;
            p.arrived as f64 / 1e9 - instant
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn rtp_output_carries_the_program_as_h264_and_opus_with_coalesced_keyframes() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let _a = room.join(spec("alice", RED, 440.0));
    let sink = Arc::new(Collector::default());
    let out = room.program.attach_output(OutputSpec::rtp(sink.clone())).expect("RTP output attaches");
    let info = room.program.rtp_output(out).expect("an RTP output");
    eprintln!("RTP output: {info:?}");
    // x264 is set to High; the level is x264's choice for 1280x720 at 30 fps.
    assert!(info.profile_level_id.starts_with("6400"), "High profile: {}", info.profile_level_id);
    let fmtp = format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}", info.profile_level_id);
    assert_eq!(info.video.fmtp, fmtp);
    assert_eq!((info.video.payload_type, info.video.clock_rate), (102, 90_000));
    assert_eq!((info.audio.payload_type, info.audio.clock_rate, info.audio.channels), (111, 48_000, Some(2)));
    assert!(!room.program.is_idle(), "an RTP output keeps the program running");

    sleep(1.2);
    let burst_at = sink.count(RtpStream::Video);
    let forced: Vec<bool> = (0..10)
        .map(|_| {
            let f = room.program.request_keyframe();
            sleep(0.01);
            f
        })
        .collect();
    assert_eq!(forced, [true, false, false, false, false, false, false, false, false, false], "one of ten");
    sleep(1.1);
    let second_at = sink.count(RtpStream::Video);
    assert!(room.program.request_keyframe(), "another a second later");
    sleep(1.0);
    let clock = room.program.rtp_clock(out).expect("the output's clock");
    let tiles = room.program.tiles();
    room.program.detach_output(out).expect("RTP output detaches");
    assert!(room.program.is_idle(), "nothing left once it is detached");
    assert!(room.program.rtp_output(out).is_none());
    room.assert_no_failures();

    let video = sink.take(RtpStream::Video);
    let audio = sink.take(RtpStream::Audio);
    for (packets, stream) in [(&video, &info.video), (&audio, &info.audio)] {
        for p in packets.iter() {
            let h = parse_rtp_header(&p.bytes).expect("valid RTP");
            assert_eq!((h.payload_type, h.ssrc), (stream.payload_type, stream.ssrc));
            assert!(p.bytes.len() <= 1200, "{} bytes: over the MTU", p.bytes.len());
        }
    }

    // The first packet is a STAP-A with SPS and PPS, then the IDR: a viewer starts on it.
    assert_eq!(payload(&video[0].bytes)[0] & 0x1f, 24, "STAP-A first");
    let keyframes = idrs(&video);
    assert_eq!(keyframes.first().map(|(at, _)| *at), Some(0), "the output starts on its IDR");
    for (at, units) in &keyframes {
        let idr = units.iter().position(|t| *t == 5).unwrap();
        assert!(
            units[..idr].contains(&7) && units[..idr].contains(&8),
            "SPS and PPS before the IDR at {at}: {units:?}"
        );
    }
    // The attach's IDR, one for the burst of ten, one for the request a second later (the
    // 2 s cadence restarts from each, so none of its own in 3.4 s).
    let starts: Vec<usize> = keyframes.iter().map(|(at, _)| *at).collect();
    assert_eq!(starts.len(), 3, "IDRs at packets {starts:?} (burst at {burst_at}, second request at {second_at})");
    assert!(starts[1] >= burst_at && starts[1] < second_at, "one IDR for the burst: {starts:?}");
    assert!(starts[2] >= second_at, "one IDR for the second request: {starts:?}");

    // One clock for both streams: the sample's two RTP times are its running time in each.
    let secs = |s: &RtpStreamInfo, rtp: u32| rtp.wrapping_sub(s.timestamp_offset) as f64 / s.clock_rate as f64;
    let running = clock.running_time.as_secs_f64();
    assert!((secs(&info.video, clock.video_rtp_time) - running).abs() < 1e-4);
    assert!((secs(&info.audio, clock.audio_rtp_time) - running).abs() < 1e-4);
    // And the packets agree with it: media of one instant leaves as late in either stream
    // (the mixers' latency and the encoders'), so a receiver mapping both by it plays them in sync.
    let ntp = ntp_to_nanos(clock.ntp_time);
    let video_lag = median(lags(&video, &info.video, ntp, clock.video_rtp_time));
    let audio_lag = median(lags(&audio, &info.audio, ntp, clock.audio_rtp_time));
    eprintln!("packets leave {video_lag:.3} s (video) and {audio_lag:.3} s (audio) after their instant");
    assert!((0.0..1.5).contains(&video_lag) && (0.0..1.5).contains(&audio_lag));
    assert!((video_lag - audio_lag).abs() < 0.1, "video {video_lag:.3} s, audio {audio_lag:.3} s");

    // Decoded, the video is the program: alice's colour in her tile, a frame per 1/30 s.
    let (w, h) = (320, 180);
    let tail = format!(
        "rtph264depay ! avdec_h264 ! videoconvert ! videoscale ! video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1"
    );
    let frames: Vec<Frame> = decode_rtp(&video, &info.video, "H264", &tail)
        .into_iter()
        .map(|(pts, rgb)| Frame { pts, width: w, height: h, rgb })
        .collect();
    eprintln!("{} frames decoded from {} video packets", frames.len(), video.len());
    assert!((90..=110).contains(&frames.len()), "{} frames in ~3.4 s", frames.len());
    let end = frames.last().unwrap().pts;
    let at = tile_center(&tiles, "alice").expect("alice's tile");
    assert_color(&frames, end - 1.5, end, at, CANVAS, RED, "alice over RTP");

    // Decoded, the audio is the mix: alice's tone, 20 ms Opus frames. (The first step is
    // short by Opus's 6.5 ms look-ahead, which the encoder takes off the timestamps after it.)
    let steps: Vec<u32> =
        audio.windows(2).map(|w| timestamp(&w[1].bytes).wrapping_sub(timestamp(&w[0].bytes))).collect();
    assert!(steps[1..].iter().all(|s| *s == 960), "one 20 ms frame a packet: {:?}", &steps[..steps.len().min(20)]);
    let tail = "rtpopusdepay ! opusdec ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,channels=1,rate=48000";
    let samples: Vec<f32> = decode_rtp(&audio, &info.audio, "OPUS", tail)
        .into_iter()
        .flat_map(|(_, bytes)| {
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>()
        })
        .collect();
    assert!(samples.len() > 48_000 * 3, "{} samples", samples.len());
    let last_second = &samples[samples.len() - 48_000..];
    let amp = tone_amplitude(last_second, 48_000.0, 440.0);
    assert!(amp > 0.02, "alice's 440 Hz tone is heard over RTP (amplitude {amp:.4})");
}

#[test]
fn detaching_an_rtp_output_leaves_a_recording_playing_on() {
    // A 44.1 kHz mix: the Opus branch resamples it to 48 kHz.
    let room = Room::new(ProgramConfig { audio_sample_rate: 44_100, ..Default::default() }, "grid");
    let _a = room.join(spec("alice", RED, 440.0));
    let rec = Recording::start(&room);
    sleep(1.0);
    let sink = Arc::new(Collector::default());
    let out = room.program.attach_output(OutputSpec::rtp(sink.clone())).expect("RTP output attaches");
    sleep(1.5);
    room.program.detach_output(out).expect("RTP output detaches");
    let sent = (sink.count(RtpStream::Video), sink.count(RtpStream::Audio));
    let audio: Vec<u32> = sink
        .packets
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.stream == RtpStream::Audio)
        .map(|p| timestamp(&p.bytes))
        .collect();
    let steps: Vec<u32> = audio.windows(2).skip(1).map(|w| w[1].wrapping_sub(w[0])).collect();
    assert!(steps.iter().all(|s| *s == 960), "20 ms at 48 kHz a packet: {:?}", &steps[..steps.len().min(20)]);
    // A still picture takes about a packet a frame; 75 Opus frames in 1.5 s.
    assert!(sent.0 > 30 && sent.1 > 50, "packets while attached: {sent:?}");
    assert!(!room.program.is_idle(), "the recording still runs");
    sleep(1.5);
    assert_eq!((sink.count(RtpStream::Video), sink.count(RtpStream::Audio)), sent, "no packet after detaching");
    let tiles = room.program.tiles();
    let stats = rec.finish(&room);

    let frames = decode_frames(&rec.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames, "every frame, through attach and detach");
    let end = frames.last().unwrap().pts;
    assert!(end > 3.5, "the recording ran on ({end:.2} s)");
    let at = tile_center(&tiles, "alice").expect("alice's tile");
    assert_color(&frames, 1.5, end, at, CANVAS, RED, "alice throughout");
    let audio = decode_audio(&rec.path);
    let last_second = &audio[audio.len() - 48_000..];
    assert!(tone_amplitude(last_second, 48_000.0, 440.0) > 0.02, "the recording's audio after the detach");
}
