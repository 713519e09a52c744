//! Bad input gets a clear error and loses nothing: garbage RTP, wrong payload types, unknown
//! tracks and impossible track parameters are rejected while the program and its recording go on.

mod common;
use common::*;
use tessera_compositor::{Codec, CompositorError, ProgramConfig, TrackId, TrackKind, TrackParams};
use tessera_testkit::analysis::{RED, assert_color, assert_continuous, decode_audio, decode_frames, tone_amplitude};

#[test]
fn garbage_rtp_is_rejected_and_the_program_keeps_recording() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    let a = room.join(spec("alice", RED, 440.0));
    sleep(1.5);
    let video = a.tracks[&TrackKind::Camera];
    let audio = a.tracks[&TrackKind::Audio];
    let mut rng: u32 = 0x9e3779b9;
    let mut rejected = 0;
    for len in 0..3000usize {
        let bytes: Vec<u8> = (0..len % 1500)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                rng as u8
            })
            .collect();
        let track = if len % 2 == 0 { video } else { audio };
        if room.program.push_rtp(track, &bytes).is_err() {
            rejected += 1;
        }
    }
    // A well-formed header with the wrong payload type is refused too.
    let mut wrong_pt = vec![0x80, 55, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xde, 0xad];
    assert!(matches!(room.program.push_rtp(video, &wrong_pt), Err(CompositorError::InvalidRtp(_))));
    wrong_pt[1] = 96; // the track's payload type: accepted (the decoder copes with junk)
    assert!(room.program.push_rtp(video, &wrong_pt).is_ok());
    assert!(matches!(room.program.push_rtp(TrackId(999), &wrong_pt), Err(CompositorError::UnknownTrack(999))));
    assert!(rejected > 2900, "malformed packets are refused ({rejected} of 3000)");
    assert!(room.program.track_stats(video).unwrap().rejected > 1400);
    let t_garbage = rec.now(&room);
    sleep(2.5);
    let stats = rec.finish(&room);

    let frames = decode_frames(&rec.path, 320, 180);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames);
    let end = frames.last().unwrap().pts;
    assert_color(&frames, t_garbage + 0.5, end, (640.0, 360.0), (1280, 720), RED, "alice after the garbage");
    let audio = decode_audio(&rec.path);
    assert!(tone_amplitude(&audio[audio.len() - 48000..], 48000.0, 440.0) > 0.02, "alice still heard");
}

#[test]
fn impossible_tracks_are_refused_with_a_reason() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let good = TrackParams {
        participant: "p".into(),
        name: "P".into(),
        kind: TrackKind::Camera,
        codec: Codec::Vp8,
        payload_type: 96,
        clock_rate: 90_000,
        ssrc: 1,
    };
    let cases = [
        (TrackParams { participant: String::new(), ..good.clone() }, "identity"),
        (TrackParams { codec: Codec::Opus, clock_rate: 48_000, ..good.clone() }, "video codec"),
        (TrackParams { kind: TrackKind::Audio, ..good.clone() }, "audio codec"),
        (TrackParams { clock_rate: 8_000, ..good.clone() }, "clock rate"),
        (TrackParams { payload_type: 200, ..good.clone() }, "payload_type"),
    ];
    for (params, reason) in cases {
        let err = room.program.add_track(params).expect_err(reason).to_string();
        assert!(err.contains(reason), "{err} should mention {reason}");
    }
    room.program.add_track(good.clone()).expect("a valid track");
    let dup = room.program.add_track(TrackParams { ssrc: 2, ..good }).expect_err("second camera");
    assert!(dup.to_string().contains("already publishes"), "{dup}");
    assert!(room.program.remove_track(TrackId(12345)).is_err());
    assert_eq!(room.program.stats().tracks, 1);
}

#[test]
fn invalid_program_settings_are_refused_naming_the_field() {
    let err = tessera_compositor::Program::new(
        ProgramConfig { fps: 0, ..Default::default() },
        tessera_compositor::layout::Layout::builtin("grid").unwrap(),
    )
    .err()
    .expect("fps 0 is refused");
    assert!(err.to_string().contains("fps"), "{err}");
}

#[test]
fn a_new_video_track_asks_for_a_keyframe_at_once() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let a = room.join(spec("alice", RED, 440.0));
    let video = a.tracks[&TrackKind::Camera];
    assert_eq!(room.keyframe_requests.lock().unwrap().first(), Some(&video));
}
