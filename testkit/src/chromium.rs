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

/// hls.js as `scripts/install-deps --with-test-servers` installs it (the pinned npm release).
pub fn hlsjs() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let path = home.join(".cache/tessera/hls.js-1.5.20/hls.min.js");
    assert!(path.exists(), "{} is missing: run scripts/install-deps --with-test-servers", path.display());
    path
}

/// A page in `dir` that plays the HLS playlist in its `?src=` with hls.js in low-latency mode
/// (a `<video>` fed by Media Source Extensions, as sites embed it); returns its `file://` URL
/// prefix (append `?src=…`). The page exposes `window.player`: `error` (a fatal hls.js error),
/// `stats()` (decoded frames, the video's size, hls.js's latency behind the live edge, decoded
/// audio bytes, the parts and segments loaded) and `sample(x, y)` (the RGB at a point of the
/// picture, in 0..1 of its size).
pub fn hlsjs_player(dir: &Path) -> String {
    std::fs::copy(hlsjs(), dir.join("hls.min.js")).expect("copy hls.js");
    let page = dir.join("player.html");
    std::fs::write(&page, HLSJS_PAGE).expect("write the player page");
    format!("file://{}", page.display())
}

const HLSJS_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>player</title></head>
<body>
<video id="v" autoplay playsinline></video>
<script src="hls.min.js"></script>
<script>
const v = document.getElementById('v');
const player = window.player = { error: null, fragments: 0, parts: 0, started: performance.now(), firstFrameMs: null };
// Catching up to the target latency after a stall by playing up to 1.5x, as low-latency players are configured.
const hls = new Hls({ lowLatencyMode: true, enableWorker: true, backBufferLength: 10, maxLiveSyncPlaybackRate: 1.5 });
player.hls = hls;
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) player.error = d.type + ': ' + d.details; });
hls.on(Hls.Events.FRAG_LOADED, (_, d) => { if (d.part) player.parts++; else player.fragments++; });
hls.loadSource(new URLSearchParams(location.search).get('src'));
hls.attachMedia(v);
v.play().catch(e => { player.error = 'play: ' + e; });
const firstFrame = () => {
  if (v.getVideoPlaybackQuality().totalVideoFrames > 0) player.firstFrameMs = performance.now() - player.started;
  else requestAnimationFrame(firstFrame);
};
requestAnimationFrame(firstFrame);
player.stats = () => ({
  frames: v.getVideoPlaybackQuality().totalVideoFrames,
  dropped: v.getVideoPlaybackQuality().droppedVideoFrames,
  width: v.videoWidth, height: v.videoHeight, time: v.currentTime, paused: v.paused,
  latency: hls.latency, targetLatency: hls.targetLatency, lowLatency: hls.lowLatencyMode,
  audioBytes: v.webkitAudioDecodedByteCount, parts: player.parts, fragments: player.fragments,
});
player.sample = (x, y) => {
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const p = g.getImageData(Math.floor(x * c.width), Math.floor(y * c.height), 1, 1).data;
  return [p[0], p[1], p[2]];
};
</script>
</body></html>
"#;
