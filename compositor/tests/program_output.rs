//! The program as a user sees it: codecs, size, frame rate, duration, everyone in their tile
//! and everyone heard.

mod common;
use common::*;
use tessera_compositor::{Codec, ProgramConfig};
use tessera_testkit::analysis::{
    BLUE, GREEN, RED, YELLOW, assert_color, assert_continuous, close, decode_audio, decode_frames, ffprobe, keyframes,
    tone_amplitude,
};

#[test]
fn records_every_participant_in_the_grid_with_the_promised_codecs() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let mut b = spec("bob", GREEN, 660.0);
    b.video = Some(Codec::H264);
    let _b = room.join(b);
    let _c = room.join(spec("carol", BLUE, 1000.0));
    sleep(6.0);
    let tiles = room.program.tiles();
    let stats = rec.finish(&room);

    let info = ffprobe(rec.path.to_str().unwrap());
    let v = info.video.expect("video stream");
    assert_eq!(v.codec, "h264");
    assert_eq!(v.profile.as_deref(), Some("High"));
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    assert!((v.fps.unwrap() - 30.0).abs() < 0.01, "fps {:?}", v.fps);
    let a = info.audio.expect("audio stream");
    assert_eq!(a.codec, "aac");
    assert_eq!(a.profile.as_deref(), Some("LC"));
    assert_eq!((a.sample_rate, a.channels), (Some(48000), Some(2)));
    assert!((5.3..=6.7).contains(&info.duration), "duration {}", info.duration);

    let frames = decode_frames(&rec.path, 320, 180);
    let n = assert_continuous(&frames, 30.0);
    assert_eq!(n as u64, stats.video_frames, "every produced frame is in the file");
    // Three in a 1280x720 grid: two on top, one centred below, all the same size.
    assert_eq!(tiles.len(), 3);
    let canvas = (1280, 720);
    let end = frames.last().unwrap().pts;
    for (who, color) in [("alice", RED), ("bob", GREEN), ("carol", BLUE)] {
        let at = tile_center(&tiles, who).expect("tile");
        assert_color(&frames, end - 2.5, end, at, canvas, color, who);
    }
    let (ax, ay) = tile_center(&tiles, "alice").unwrap();
    let (bx, by) = tile_center(&tiles, "bob").unwrap();
    let (cx, cy) = tile_center(&tiles, "carol").unwrap();
    assert!(ax < 640.0 && bx > 640.0 && (ay - by).abs() < 1.0 && ay < 360.0, "first row: alice, bob");
    assert!((cx - 640.0).abs() < 2.0 && cy > 360.0, "carol centred on the second row");

    let audio = decode_audio(&rec.path);
    let tail = &audio[audio.len() - 48000 * 2..];
    for hz in [440.0, 660.0, 1000.0] {
        let amp = tone_amplitude(tail, 48000.0, hz);
        assert!(amp > 0.02, "tone {hz} Hz missing (amplitude {amp:.4})");
    }
    let noise = tone_amplitude(tail, 48000.0, 1500.0);
    assert!(noise < 0.005, "unexpected energy at 1500 Hz: {noise:.4}");
}

#[test]
fn runs_at_a_constant_rate_with_nobody_in_the_room() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    sleep(3.0);
    rec.finish(&room);
    let frames = decode_frames(&rec.path, 160, 90);
    let n = assert_continuous(&frames, 30.0);
    assert!((80..=100).contains(&n), "{n} frames in ~3 s");
    let audio = decode_audio(&rec.path);
    assert!(audio.len() > 48000 * 2, "silence is recorded too ({} samples)", audio.len());
    assert!(audio.iter().all(|s| s.abs() < 1e-3), "silence is silent");
}

fn portrait(width: u32, height: u32) {
    let config = ProgramConfig { width, height, ..Default::default() };
    let room = Room::new(config, "portrait-grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    let _b = room.join(spec("bob", YELLOW, 880.0));
    sleep(4.0);
    let tiles = room.program.tiles();
    rec.finish(&room);
    let info = ffprobe(rec.path.to_str().unwrap());
    let v = info.video.expect("video");
    assert_eq!((v.width, v.height), (Some(width), Some(height)));
    let frames = decode_frames(&rec.path, 180, 320);
    assert_continuous(&frames, 30.0);
    let end = frames.last().unwrap().pts;
    for (who, color) in [("alice", RED), ("bob", YELLOW)] {
        let at = tile_center(&tiles, who).expect("tile");
        assert_color(&frames, end - 1.5, end, at, (width, height), color, who);
    }
    let (_, ay) = tile_center(&tiles, "alice").unwrap();
    let (_, by) = tile_center(&tiles, "bob").unwrap();
    assert!(ay < by, "portrait: stacked vertically");
}

#[test]
fn portrait_720x1280() {
    portrait(720, 1280);
}

#[test]
fn portrait_1080x1920() {
    portrait(1080, 1920);
}

#[test]
fn keyframes_every_two_seconds_and_no_b_frames() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let _a = room.join(spec("alice", RED, 440.0));
    sleep(7.0);
    rec.finish(&room);
    let (keys, b_frames) = keyframes(&rec.path);
    assert!(!b_frames, "no B-frames");
    assert_eq!(keys.first().copied(), Some(0.0), "starts on a keyframe");
    // After the output's first (forced) keyframe, the encoder's 2 s cadence.
    let gaps: Vec<f64> = keys.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 2, "keyframes at {keys:?}");
    for g in gaps {
        assert!((g - 2.0).abs() < 0.04, "keyframe interval {g:.3} s (keyframes at {keys:?})");
    }
}

#[test]
fn outputs_attach_and_detach_without_disturbing_each_other() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let _a = room.join(spec("alice", RED, 440.0));
    let first = Recording::start(&room);
    sleep(2.5);
    let second = Recording::start(&room);
    sleep(2.5);
    let first_stats = first.finish(&room);
    sleep(2.5);
    let second_stats = second.finish(&room);
    assert_eq!(room.program.stats().outputs, 0);

    for (rec, stats, secs) in [(&first, first_stats, 5.0), (&second, second_stats, 5.0)] {
        let frames = decode_frames(&rec.path, 160, 90);
        let n = assert_continuous(&frames, 30.0);
        assert_eq!(n as u64, stats.video_frames, "complete file");
        let dur = n as f64 / 30.0;
        assert!((dur - secs).abs() < 0.6, "{} s recorded, expected ~{secs}", dur);
        assert!(frames.first().unwrap().pts.abs() < 0.001, "each output starts at zero");
        assert!(close(frames.last().unwrap().color_at(640.0, 360.0, 1280, 720), RED));
        let info = ffprobe(rec.path.to_str().unwrap());
        assert!(info.duration > 4.0, "index written at EOS: duration {}", info.duration);
    }
    // The second output overlapped the first for 2.5 s and started later in program time.
    assert!(second_stats.started_at.unwrap() > first_stats.started_at.unwrap());
}
