//! Headless Chromium (Debian's `chromium`) as a participant or an operator: a page opened with
//! fake camera, microphone and screen, and the media those fakes play. Drive the page over
//! DevTools with [`crate::cdp::Page`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cdp::Page;

/// A headless Chromium showing a page; killed on drop.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url` in a fresh profile with Chromium's fake media devices (allowed without a
    /// prompt), loopback peer connections, and DevTools on a port of its choosing; `extra`
    /// flags come last.
    pub fn open(url: &str, extra: &[&str]) -> Browser {
        let chromium = "/usr/bin/chromium";
        assert!(Path::new(chromium).exists(), "{chromium} is missing: run scripts/install-deps --with-test-servers");
        let profile = tempfile::tempdir().expect("tempdir");
        let child = Command::new(chromium)
            .args([
                "--headless=new",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Browser { child, profile }
    }

    /// The DevTools port Chromium picked for `--remote-debugging-port=0`, once it has written
    /// it to the profile (blocking poll, up to `timeout`).
    pub fn devtools_port(&self, timeout: Duration) -> Option<u16> {
        let file = self.profile.path().join("DevToolsActivePort");
        let end = Instant::now() + timeout;
        loop {
            let port = std::fs::read_to_string(&file).ok().and_then(|s| s.lines().next()?.trim().parse().ok());
            if port.is_some() || Instant::now() >= end {
                return port;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page whose URL contains `url_part`, over DevTools (20 s for each of the DevTools
    /// port and the page target to show up).
    pub fn page(&self, url_part: &str) -> Page {
        let port = self.devtools_port(Duration::from_secs(20)).expect("Chromium's DevTools port");
        Page::attach(port, url_part, Duration::from_secs(20))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A red 640x360 clip for Chromium's fake camera (it loops it), made in `dir`, as the flag
/// that selects it.
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

/// An audio file `dir/name` for Chromium's fake microphone (it loops it): ffmpeg's `source`
/// filter graph, 48 kHz mono.
pub fn audio_file(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", source, "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg made no {name}");
    path
}

/// The flag that makes Chromium's fake microphone play `path` (see [`audio_file`]).
pub fn fake_mic(path: &Path) -> String {
    format!("--use-file-for-fake-audio-capture={}", path.display())
}
