//! Test harness: the SFU router on a free 127.0.0.1 port, and headless Chromium peers.
#![allow(dead_code)]

pub mod relay;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_sfu::{MediaHandoff, Participant, Sfu, SfuConfig};

pub const TOKEN: &str = "test-token";

pub struct Server {
    pub sfu: Sfu,
    pub addr: SocketAddr,
}

pub async fn start(handoff: Option<Arc<dyn MediaHandoff>>) -> Server {
    start_with(SfuConfig::default(), handoff).await
}

pub async fn start_with(config: SfuConfig, handoff: Option<Arc<dyn MediaHandoff>>) -> Server {
    let sfu = Sfu::new(config, handoff);
    let app = tessera_sfu::router(sfu.clone(), Arc::new(|_room: &str, token: &str| token == TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { sfu, addr }
}

/// A headless Chromium showing a page; killed on drop.
pub struct Browser {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn open(url: &str, extra: &[&str]) -> Browser {
        let chromium = "/usr/bin/chromium";
        assert!(
            std::path::Path::new(chromium).exists(),
            "{chromium} is missing: run scripts/install-deps --with-test-servers"
        );
        let profile = tempfile::tempdir().expect("tempdir");
        let mut cmd = tokio::process::Command::new(chromium);
        cmd.args([
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
        .kill_on_drop(true);
        let child = cmd.spawn().expect("start chromium");
        Browser { child, _profile: profile }
    }
}

impl Browser {
    /// The DevTools port Chromium picked for `--remote-debugging-port=0`, once it has written
    /// it to the profile (blocking poll, up to `timeout`).
    pub fn devtools_port(&self, timeout: Duration) -> Option<u16> {
        let file = self._profile.path().join("DevToolsActivePort");
        let end = Instant::now() + timeout;
        loop {
            let port = std::fs::read_to_string(&file).ok().and_then(|s| s.lines().next()?.trim().parse().ok());
            if port.is_some() || Instant::now() >= end {
                return port;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The participants of a room.
pub fn participants(sfu: &Sfu, room: &str) -> Vec<Arc<Participant>> {
    sfu.get_room(room).map(|r| r.participants()).unwrap_or_default()
}

/// The latest `getStats` summary the page reported for a participant.
pub fn inbound(p: &Participant, kind: &str, field: &str) -> f64 {
    stat(p, &format!("/inbound/{kind}/{field}"))
}

/// Any number from the latest `getStats` summary the page reported (a JSON pointer such as
/// `/outbound/video/nackCount`); 0 when absent.
pub fn stat(p: &Participant, pointer: &str) -> f64 {
    let s = p.stats.lock().unwrap_or_else(|e| e.into_inner());
    s.as_ref().and_then(|v| v.pointer(pointer)).and_then(|v| v.as_f64()).unwrap_or(0.0)
}

/// Polls `cond` every 250 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    cond()
}
