//! Lip sync from RTP timestamps and RTCP sender reports, not arrival time: a participant whose
//! audio reaches us 300 ms later than their video is still in sync in the program.

mod common;
use common::*;
use std::time::Duration;
use tessera_compositor::ProgramConfig;
use tessera_testkit::analysis::{assert_continuous, decode_audio, decode_frames};
use tessera_testkit::sync_marks::{IN_SYNC, av_offsets as offsets_of, beep_onsets, flash_onsets};

/// The lip-sync delays the program applied to the sender's tracks (their jitter buffers'
/// `ts-offset`), for a failure to be read against: the intermittent steady -220 to -250 ms is
/// what a video delayed about 280 ms more than its audio measures (forcing 280 ms on the video
/// of the even path reads -251 ms), so the delays tell whether lip sync chose it.
fn applied_delays(room: &Room, sender: &Sender) -> String {
    use gst::prelude::*;
    let mut delays: Vec<String> = sender
        .tracks
        .iter()
        .map(|(kind, id)| {
            let jb = room
                .program
                .pipeline()
                .by_name(&format!("track-{}", id.0))
                .and_then(|bin| bin.downcast::<gst::Bin>().ok())
                .and_then(|bin| bin.by_name("jitterbuffer"));
            let ms = jb.map(|jb| jb.property::<i64>("ts-offset") as f64 / 1e6);
            format!("{kind:?} {}", ms.map_or("?".into(), |ms| format!("{ms:.1} ms")))
        })
        .collect();
    delays.sort();
    delays.join(", ")
}

fn av_offsets(audio_delay: Duration) -> (Vec<f64>, String) {
    av_offsets_joining_after(audio_delay, 0.0)
}

/// The A/V offsets of the marks when the sender joins `join_after` seconds into a running
/// program (and recording).
fn av_offsets_joining_after(audio_delay: Duration, join_after: f64) -> (Vec<f64>, String) {
    let room = Room::new(ProgramConfig::default(), "grid");
    let rec = Recording::start(&room);
    sleep(join_after);
    let mut s = spec("alice", 0x202020, 1000.0);
    s.sync_marks = true;
    let alice = room.join_with_audio_delay(s, audio_delay);
    sleep(9.0);
    let delays = applied_delays(&room, &alice);
    rec.finish(&room);
    let frames = decode_frames(&rec.path, 320, 180);
    assert_continuous(&frames, 30.0);
    let flashes = flash_onsets(&frames, (640.0, 360.0), (1280, 720));
    let audio = decode_audio(&rec.path);
    // Audio runs ahead of video on its way to an output; none of it may be lost while the
    // output waits for its first keyframe, or the file's audio starts late and plays early.
    let (audio_end, video_end) = (audio.len() as f64 / 48000.0, frames.last().map_or(0.0, |f| f.pts));
    assert!(audio_end >= video_end - 0.06, "audio ends at {audio_end:.3} s, video at {video_end:.3} s");
    let beeps = beep_onsets(&audio);
    assert!(flashes.len() >= 6, "flashes seen: {flashes:?}");
    assert!(beeps.len() >= 6, "beeps heard: {beeps:?}");
    // Let the first sender reports arrive and the offsets settle.
    (offsets_of(&flashes, &beeps, 3.5), delays)
}

#[test]
fn audio_and_video_stay_in_sync_when_the_audio_path_is_300ms_slower() {
    let (offsets, delays) = av_offsets(Duration::from_millis(300));
    assert!(offsets.len() >= 3, "matched marks: {offsets:?}");
    assert_in_sync_window(&offsets, &delays);
}

/// [`IN_SYNC`] (EBU R37 widened by a frame). Without the sender-report correction the
/// 300 ms case measures about +330 ms.
fn assert_in_sync_window(offsets: &[f64], delays: &str) {
    for o in offsets {
        assert!(
            IN_SYNC.contains(o),
            "A/V offset {:.0} ms (all: {offsets:?}); lip-sync delays applied: {delays}",
            o * 1000.0
        );
    }
}

#[test]
fn audio_and_video_are_in_sync_on_an_even_path() {
    let (offsets, delays) = av_offsets(Duration::ZERO);
    assert!(offsets.len() >= 3, "matched marks: {offsets:?}");
    assert_in_sync_window(&offsets, &delays);
}

/// A speaker joining a program that has run for a while (its audio mixer well past its first
/// deadline, 420 ms in) is in sync too. (This was one suspect for the intermittent steady
/// -220 to -250 ms: with the mixer's former start (`start-time-selection=zero`, no silence
/// primer) its next block went back to PTS 0; this test passes with that start too, so the
/// suspect is cleared, see docs/known-issues.md.)
#[test]
fn a_speaker_joining_a_running_program_is_in_sync() {
    let (offsets, delays) = av_offsets_joining_after(Duration::ZERO, 1.5);
    assert!(offsets.len() >= 3, "matched marks: {offsets:?}");
    assert_in_sync_window(&offsets, &delays);
}
