//! What Chromium's fake camera shows in the browser tests.

use std::path::Path;
use std::process::Command;

/// A red 640x360 clip for Chromium's fake camera (it loops it), as the flag that selects it.
pub fn red_camera(dir: &Path) -> String {
    let video = dir.join("red.y4m");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "color=c=red:s=640x360:r=30", "-t", "2", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg made no red.y4m");
    format!("--use-file-for-fake-video-capture={}", video.display())
}
