//! A process killed with SIGKILL mid-recording leaves a fragmented MP4 that plays up to its
//! last complete fragment.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use tessera_testkit::analysis::{GREEN, RED, assert_continuous, close, decode_audio, decode_frames, ffprobe};

#[test]
fn sigkill_mid_recording_leaves_a_playable_file() {
    let dir = tmpdir();
    let path = dir.path().join("killed.mp4");
    let mut child = Command::new(env!("CARGO_BIN_EXE_synthetic-room"))
        .arg(&path)
        .args(["0", "2"])
        .spawn()
        .expect("synthetic-room starts");
    // Wait for the recording to be well under way, then kill it without warning.
    let started = Instant::now();
    while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == 0 {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("recording never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let file_appeared = started.elapsed();
    std::thread::sleep(Duration::from_millis(6500));
    child.kill().expect("SIGKILL");
    let killed_after = started.elapsed() - file_appeared;
    child.wait().expect("reaped");

    let info = ffprobe(path.to_str().unwrap());
    assert_eq!(info.video.as_ref().map(|v| v.codec.as_str()), Some("h264"));
    assert_eq!(info.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    let frames = decode_frames(&path, 160, 90);
    let n = assert_continuous(&frames, 30.0);
    let played = frames.last().map(|f| f.pts).unwrap_or(0.0);
    // Fragments are 1 s: at most about one fragment (plus the muxer's queue) is lost.
    let lost = killed_after.as_secs_f64() - played;
    assert!(lost < 1.6, "plays {played:.2} s of {:.2} s recorded ({n} frames)", killed_after.as_secs_f64());
    // And it shows the room: red on the left, green (H.264) on the right at the end.
    let last = frames.last().unwrap();
    assert!(close(last.color_at(320.0, 360.0, 1280, 720), RED), "left tile");
    assert!(close(last.color_at(960.0, 360.0, 1280, 720), GREEN), "right tile");
    let audio = decode_audio(&path);
    assert!(audio.len() as f64 / 48000.0 > played - 1.0, "audio plays too");
}
