//! The audiences benchmark (`scripts/bench-audiences`, figures in bench/audiences.md): how late
//! the room's program reaches its viewers, and what its WebRTC viewers cost the server. One
//! `tessera serve` and two bots (`flash`: black, flashing white on every wall-clock second,
//! `--wall-clock-marks`; `blue`: a plain blue picture) on this machine; the room's program
//! is published into the room (`publish_program`) for the whole run.
//!
//! 1. WHEP, glass to glass: headless Chromium plays the watch page (`/rooms/{room}/watch`); a
//!    `requestVideoFrameCallback` loop reads the flash tile's brightness in every frame it
//!    shows, and at each dark-to-bright change notes the wall-clock time the frame is to be
//!    displayed (`expectedDisplayTime`). The flash began on a whole wall-clock second, so
//!    that time modulo a second is the latency (while it is under a second).
//! 2. LL-HLS, the same flashes in hls.js (low-latency mode) in headless Chromium. The latency
//!    is over a second, so the whole seconds come from hls.js's own wall-clock estimate
//!    (`Date.now() - hls.playingDate`, which only counts from the program's output); also
//!    reported: hls.js's `latency` behind the live edge of the playlist.
//! 3. CPU of the program's WebRTC viewers: the server process's CPU (utime + stime in
//!    `/proc/PID/stat`) over a window with 0, 1, 10 and 50 receive-only subscribers of the
//!    program (`tessera bot --subscribers N --program`, another process on the same cores),
//!    and with N webrtcbin viewers playing it by WHEP (in this process), to compare the two
//!    ways a copy of the program leaves the SFU.
//!
//! `cargo run --release --example bench_audiences -- [TESSERA_BINARY]`; environment:
//! `BENCH_FLASHES` (20), `BENCH_CPU_SECONDS` (15), `BENCH_SUBSCRIBERS` ("1,10,50"),
//! `BENCH_WHEP_VIEWERS` ("10,50"; "0": none), `BENCH_HLS_RESYNC` (set: the re-synced LL-HLS pass
//! even without a stall).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::{Value, json};
use tessera_testkit::cdp::Page;
use tessera_testkit::chromium::{Browser, hlsjs_player};
use tessera_testkit::http::{self, Body};
use tessera_testkit::poll::wait_for;
use tessera_testkit::tessera::{Node, TEST_KEY};
use tessera_testkit::whip;

const KEY: Option<&str> = Some(TEST_KEY);
const ROOM: &str = "audience";
/// Both bots' picture size.
const CAMERA: (u32, u32) = (640, 360);

/// A `requestVideoFrameCallback` loop on a `<video>`: the mean brightness of a 8x8 patch at
/// (fx, fy) of the picture in every frame shown; at each dark-to-bright change, the wall-clock
/// times (ms) of the callback, of the expected display and (WebRTC) of the frame's last packet,
/// and `extra()`'s fields. Results in `window.bench`.
const FLASH_PROBE: &str = r#"
window.benchFlashes = (video, fx, fy, extra) => {
  const m = { transitions: [], frames: 0, bright: null, skew: [] };
  const c = document.createElement('canvas');
  c.width = 8; c.height = 8;
  const g = c.getContext('2d', { willReadFrequently: true });
  const wall = (t) => performance.timeOrigin + t;
  const step = (now, meta) => {
    const callback = Date.now();
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      g.drawImage(video, Math.floor(fx * w) - 4, Math.floor(fy * h) - 4, 8, 8, 0, 0, 8, 8);
      const d = g.getImageData(0, 0, 8, 8).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
      const level = sum / (d.length / 4) / 3;
      const bright = level > 128;
      if (bright && m.bright === false) {
        const t = { callback, display: wall(meta.expectedDisplayTime), presented: wall(meta.presentationTime),
                    mediaTime: meta.mediaTime, level };
        if (meta.receiveTime !== undefined) t.received = wall(meta.receiveTime);
        if (extra) Object.assign(t, extra());
        m.transitions.push(t);
        // Date.now() against the high-resolution clock the display times are on.
        m.skew.push(Date.now() - wall(performance.now()));
      }
      m.bright = bright;
      m.frames++;
    }
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
  return m;
};
"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().unwrap_or_else(|| "target/release/tessera".into());
    // A copy: a build (or `cargo clean`) of someone else's on this machine may replace or
    // remove target/release/tessera while the benchmark runs.
    let copy = tempfile::tempdir().expect("tempdir");
    let bin = {
        let to = copy.path().join("tessera");
        std::fs::copy(&bin, &to).unwrap_or_else(|e| panic!("{bin}: {e}"));
        to
    };
    let flashes: usize = env_or("BENCH_FLASHES", 20);
    let cpu_secs: u64 = env_or("BENCH_CPU_SECONDS", 15);
    let whep_counts: Vec<usize> = std::env::var("BENCH_WHEP_VIEWERS")
        .unwrap_or_else(|_| "10,50".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let subscriber_counts: Vec<usize> = std::env::var("BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();

    // Room for the bots, the program and the biggest audience of subscribers (each one is a
    // participant; WHEP viewers are not).
    let most = subscriber_counts.iter().max().copied().unwrap_or(0);
    let node = Node::builder(&bin)
        .env("RUST_LOG", "warn")
        .args(["--max-participants", &(most + 10).max(50).to_string()])
        .start();
    println!("tessera serve pid {} on port {}", node.pid(), node.port);
    let mut flash = node.bot(
        ROOM,
        "flash",
        &["--color", "#000000", "--wall-clock-marks", "--size", "640x360", "--fps", "30", "--tone", "1000"],
    );
    flash.wait_for("published", Duration::from_secs(30));
    let mut blue = node.bot(ROOM, "blue", &["--color", "#0000ff", "--size", "640x360", "--fps", "30"]);
    blue.wait_for("published", Duration::from_secs(30));
    let published = patch_room(&node, &json!({"publish_program": true}));
    assert_eq!(published.status, 200, "{}", String::from_utf8_lossy(&published.body));
    wait_for("the program to run", Duration::from_secs(20), || {
        (!http::get(node.port, &format!("/v1/rooms/{ROOM}"), KEY).json()["program"].is_null()).then_some(())
    });
    let mut summary = Vec::new();

    // 1. WHEP, glass to glass.
    let browser = Browser::open(&watch_url(&node, "watcher"), &[]);
    let mut tab = browser.page("/watch");
    let stats = wait_for("Chromium playing the program by WHEP", Duration::from_secs(40), || {
        let error = tab.eval("window.tesseraWatch && window.tesseraWatch.error");
        assert!(error.is_null(), "the watch page failed: {error}");
        let stats = tab.eval("window.tesseraWatch ? window.tesseraWatch.stats() : {}");
        (stats["video"]["framesDecoded"].as_f64().unwrap_or(0.0) > 30.0).then_some(stats)
    });
    let size = (
        stats["video"]["frameWidth"].as_u64().unwrap_or(1280) as u32,
        stats["video"]["frameHeight"].as_u64().unwrap_or(720) as u32,
    );
    let tile = tessera_compositor::harness::grid_centres(&["flash", "blue"], size, CAMERA)[0];
    let (fx, fy) = (tile.0 / f64::from(size.0), tile.1 / f64::from(size.1));
    println!("WHEP: program {}x{}, the flash tile's centre at ({:.0}, {:.0})", size.0, size.1, tile.0, tile.1);
    tab.eval(FLASH_PROBE);
    tab.eval(&format!("window.bench = window.benchFlashes(document.getElementById('program'), {fx}, {fy}); true"));
    let whep = collect(&mut tab, flashes);
    let g2g: Vec<f64> = whep.iter().map(|t| t["display"].as_f64().unwrap_or(f64::NAN).rem_euclid(1000.0)).collect();
    let to_browser: Vec<f64> =
        whep.iter().filter_map(|t| t["received"].as_f64()).map(|r| r.rem_euclid(1000.0)).collect();
    println!("  expected display minus callback time, ms: {}", spread(&display_after_callback(&whep)));
    let whep_stats = tab.eval("window.tesseraWatch.stats()");
    let skew = tab.eval("window.bench.skew");
    summary.push(format!("WHEP glass to glass (expected display), ms: {}", spread(&g2g)));
    summary.push(format!("WHEP capture to the frame's last packet in Chromium, ms: {}", spread(&to_browser)));
    println!("{}\n{}", summary[0], summary[1]);
    println!("  Date.now() minus the display clock, ms: {skew}; receiver stats: {whep_stats}");
    // Leave as the page does when it goes (a killed browser would be sent the program on).
    tab.eval(
        "fetch(window.tesseraWatch.resource, {method: 'DELETE', headers: {Authorization: \
         'Bearer ' + new URLSearchParams(location.search).get('token')}}).then(r => r.status)",
    );
    drop(tab);
    drop(browser);

    // 2. LL-HLS.
    let r = http::post_json(node.port, &format!("/v1/rooms/{ROOM}/hls"), KEY, b"{}");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let hls = r.json();
    let hls_id = hls["id"].as_str().expect("an HLS output id").to_owned();
    let playlist = hls["playlist_url"].as_str().expect("playlist_url").to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let page = hlsjs_player(dir.path());
    let browser = Browser::open(&format!("{page}?src={playlist}"), &[]);
    let mut tab = browser.page("player.html");
    // Stalls (hls.js raises its target latency by a second at each, up to a limit).
    tab.wait_for("!!(window.player && window.player.hls)", Duration::from_secs(20));
    tab.eval(
        "window.stalls = { hls: [], waiting: [] }; \
         const ms = () => Math.round(performance.now() - window.player.started); \
         window.player.hls.on(Hls.Events.ERROR, (_, d) => { \
           if (d.details === 'bufferStalledError') window.stalls.hls.push({ at_ms: ms(), buffer: d.buffer }); }); \
         document.getElementById('v').addEventListener('waiting', () => window.stalls.waiting.push(ms())); true",
    );
    wait_for("hls.js playing the program", Duration::from_secs(40), || {
        let error = tab.eval("window.player && window.player.error");
        assert!(error.is_null(), "hls.js failed: {error}");
        let stats = tab.eval("window.player ? window.player.stats() : {}");
        (stats["frames"].as_f64().unwrap_or(0.0) > 90.0).then_some(())
    });
    // Let hls.js settle on its target latency first.
    std::thread::sleep(Duration::from_secs(5));
    tab.eval(FLASH_PROBE);
    tab.eval(&format!(
        "window.bench = window.benchFlashes(document.getElementById('v'), {fx}, {fy}, () => {{ \
           const h = window.player.hls; const d = h.playingDate; \
           return {{ playingDate: d ? d.getTime() : null, latency: h.latency, targetLatency: h.targetLatency }}; }}); true"
    ));
    let (lines, stalls) = hls_pass(&mut tab, flashes, "LL-HLS");
    summary.extend(lines);
    // hls.js raised its target a second for each stall and keeps it: once more at its own
    // 1.5 s target, as a "go live" button would (the stall count reset, a seek to its live
    // sync position), to see the latency a player reaches without the stall.
    if stalls > 0 || std::env::var_os("BENCH_HLS_RESYNC").is_some() {
        tab.eval(
            "window.player.hls.latencyController.stallCount = 0; \
             document.getElementById('v').currentTime = window.player.hls.liveSyncPosition; true",
        );
        std::thread::sleep(Duration::from_secs(4));
        tab.eval("window.bench.transitions = []; window.stalls = { hls: [], waiting: [] }; true");
        let (lines, _) = hls_pass(&mut tab, flashes, "LL-HLS re-synced to 1.5 s");
        summary.extend(lines);
    }
    drop(tab);
    drop(browser);
    let stopped = http::post_json(node.port, &format!("/v1/hls/{hls_id}/stop"), KEY, b"");
    assert_eq!(stopped.status, 200, "{}", String::from_utf8_lossy(&stopped.body));

    // 3. CPU of the program's WebRTC viewers.
    std::thread::sleep(Duration::from_secs(5));
    let hz = clock_ticks();
    let mut idle_cores = None;
    println!(
        "CPU over {cpu_secs} s windows (server = tessera serve; viewers = the process receiving; \
         machine = all CPUs busy, of {}):",
        num_cpus()
    );
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for &n in std::iter::once(&0).chain(subscriber_counts.iter()) {
        let mut subscribers = (n > 0).then(|| start_subscribers(&bin, &node, n, cpu_secs));
        if n > 0 {
            // Their ramp (20 a second), then keyframes and connections settle.
            std::thread::sleep(Duration::from_secs_f64(n as f64 / 20.0 + 6.0));
        }
        let viewer_pid = subscribers.as_ref().map(|(child, _)| child.id());
        let m = measure(node.pid(), viewer_pid, cpu_secs, hz);
        let report = subscribers.as_mut().map(|(child, report)| finish_subscribers(child, report));
        let received = report.as_ref().map(received_summary).unwrap_or_default();
        // Counted as the subscribers that were receiving.
        let n = report.as_ref().and_then(|r| r["totals"]["connected"].as_u64()).map_or(n, |c| c as usize);
        let row = cpu_row(&format!("{n:>2} bot subscribers (--program)"), &m, idle_cores, n, &received);
        if n == 0 {
            idle_cores = Some(m.server);
        }
        points.push((n as f64, m.server));
        println!("{row}");
        rows.push(row);
        std::thread::sleep(Duration::from_secs(3));
    }
    if let Some((intercept, slope)) = fit(&points) {
        let row =
            format!("bot subscribers, least-squares fit: server {intercept:.3} cores {slope:+.4} core per subscriber");
        println!("{row}");
        rows.push(row);
    }
    for &whep_viewers in &whep_counts {
        let viewers = WhepViewers::start(&node, whep_viewers);
        std::thread::sleep(Duration::from_secs(6));
        let (packets, bytes) = (viewers.packets(), viewers.bytes());
        let m = measure(node.pid(), Some(std::process::id()), cpu_secs, hz);
        let per_viewer = |v: u64| v as f64 / m.wall / whep_viewers as f64;
        let received = format!(
            "{:.0} packets/s, {:.0} kbit/s per viewer",
            per_viewer(viewers.packets() - packets),
            per_viewer(viewers.bytes() - bytes) * 8.0 / 1000.0
        );
        let row =
            cpu_row(&format!("{whep_viewers:>2} webrtcbin WHEP viewers"), &m, idle_cores, whep_viewers, &received);
        println!("{row}");
        rows.push(row);
        drop(viewers);
        std::thread::sleep(Duration::from_secs(3));
    }
    // The baseline again: how far the machine's other load moved it meanwhile.
    let again = measure(node.pid(), None, cpu_secs, hz);
    let row = cpu_row(" 0 viewers again (drift of the baseline)", &again, idle_cores, 0, "");
    println!("{row}");
    rows.push(row);
    summary.extend(rows);

    println!("\n=== audiences: summary ===");
    for l in &summary {
        println!("{l}");
    }
    let _ = flash.stop();
    let _ = blue.stop();
}

/// Collects `flashes` flashes in the hls.js page and prints (and returns) its figures, with the
/// stalls seen since `window.stalls` was last reset (and their count).
fn hls_pass(tab: &mut Page, flashes: usize, label: &str) -> (Vec<String>, usize) {
    let marks = collect(tab, flashes);
    let mut g2g = Vec::new();
    let mut estimates = Vec::new();
    let mut before_pdt = Vec::new();
    let mut behind_edge = Vec::new();
    for t in &marks {
        let display = t["display"].as_f64().unwrap_or(f64::NAN);
        let Some(date) = t["playingDate"].as_f64() else { continue };
        // hls.js's estimate counts from the frame's EXT-X-PROGRAM-DATE-TIME, when the
        // program's encoder gave it out: later than its capture by the way there (bot,
        // SFU, compositor, encoder), which is under a second (the WHEP figure bounds it).
        // So the latency is the first value at or above the estimate with the flash's
        // fraction of a second.
        let estimate = display - date;
        let fraction = display.rem_euclid(1000.0);
        let seconds = ((estimate - fraction) / 1000.0).ceil().max(0.0);
        let latency = seconds * 1000.0 + fraction;
        g2g.push(latency);
        estimates.push(estimate);
        before_pdt.push(latency - estimate);
        if let Some(l) = t["latency"].as_f64() {
            behind_edge.push(l * 1000.0);
        }
    }
    println!("  expected display minus callback time, ms: {}", spread(&display_after_callback(&marks)));
    let stalls = tab.eval("window.stalls");
    let skew = tab.eval("window.bench.skew");
    println!("  Date.now() minus the display clock, ms: {skew}");
    let stats = tab.eval("window.player.stats()");
    println!("  hls.js: {stats}");
    let line = |what: &str, v: &[f64]| format!("{label} {what}, ms: {}", spread(v));
    let mut lines = vec![
        line("glass to glass (expected display)", &g2g),
        line("hls.js's wall-clock estimate (now - playingDate)", &estimates),
        line("capture to EXT-X-PROGRAM-DATE-TIME (the difference)", &before_pdt),
        line("hls.js latency behind the live edge", &behind_edge),
    ];
    lines.push(format!(
        "{label} hls.js target latency {} s (PART-HOLD-BACK 1.5 s, plus 1 s per stall); first frame at {:.0} ms; \
         stalls (ms from the page's start): {stalls}",
        stats["targetLatency"],
        tab.eval("window.player.firstFrameMs").as_f64().unwrap_or(f64::NAN),
    ));
    for l in &lines {
        println!("{l}");
    }
    let count = stalls["hls"].as_array().map_or(0, Vec::len);
    (lines, count)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn patch_room(node: &Node, body: &Value) -> http::Response {
    let mut headers = http::auth(KEY);
    headers.push(("Content-Type".into(), "application/json".into()));
    let body = body.to_string();
    http::send(node.port, "PATCH", &format!("/v1/rooms/{ROOM}"), &headers, Body::Sized(body.as_bytes())).expect("PATCH")
}

/// A subscribe-only token for the room.
fn viewer_token(node: &Node, identity: &str) -> String {
    let body = json!({"identity": identity, "publish": false}).to_string();
    let r = http::post_json(node.port, &format!("/v1/rooms/{ROOM}/tokens"), KEY, body.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().expect("a token").to_owned()
}

fn watch_url(node: &Node, identity: &str) -> String {
    format!("{}/rooms/{ROOM}/watch?token={}", node.url(), viewer_token(node, identity))
}

/// Waits for `n` dark-to-bright changes (after the first, which may be a picture that was
/// bright already when the loop started) and returns them.
fn collect(tab: &mut Page, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(n as u64 * 2 + 30);
    loop {
        let marks = tab.eval("window.bench.transitions");
        let list = marks.as_array().cloned().unwrap_or_default();
        if list.len() > n {
            return list[1..].to_vec();
        }
        let frames = tab.eval("window.bench.frames");
        assert!(Instant::now() < deadline, "only {} flashes seen in {frames} frames", list.len());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Least squares of y on x: (intercept, slope).
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| (my - sxy / sxx * mx, sxy / sxx))
}

/// How long after its callback each flash frame was expected on the display.
fn display_after_callback(marks: &[Value]) -> Vec<f64> {
    marks.iter().filter_map(|t| Some(t["display"].as_f64()? - t["callback"].as_f64()?)).collect()
}

/// `median p90 min max (n)` of `v`, nearest rank.
fn spread(v: &[f64]) -> String {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return "none".into();
    }
    s.sort_by(f64::total_cmp);
    let q = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    format!("median {:.0}  p90 {:.0}  min {:.0}  max {:.0}  (n = {})", q(0.5), q(0.9), s[0], s[s.len() - 1], s.len())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// utime + stime of a process, in ticks.
fn process_ticks(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let f = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    f(11) + f(12)
}

/// (busy, steal) ticks over all CPUs, from /proc/stat.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().find(|l| l.starts_with("cpu ")).unwrap_or_default();
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    (get(0) + get(1) + get(2) + get(5) + get(6), get(7))
}

/// One window's CPU, in cores (CPU-seconds per second).
struct Measured {
    wall: f64,
    server: f64,
    viewers: Option<f64>,
    machine: f64,
    steal: f64,
}

fn measure(server: u32, viewers: Option<u32>, secs: u64, hz: f64) -> Measured {
    let (s0, v0, m0, t0) = (process_ticks(server), viewers.map(process_ticks), machine_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (s1, v1, m1) = (process_ticks(server), viewers.map(process_ticks), machine_ticks());
    let wall = t0.elapsed().as_secs_f64();
    let cores = |ticks: f64| ticks / hz / wall;
    Measured {
        wall,
        server: cores(s1 - s0),
        viewers: v0.zip(v1).map(|(a, b)| cores(b - a)),
        machine: cores(m1.0 - m0.0),
        steal: cores(m1.1 - m0.1),
    }
}

fn cpu_row(label: &str, m: &Measured, idle: Option<f64>, n: usize, received: &str) -> String {
    let per_viewer = match idle {
        Some(idle) if n > 0 => format!("{:+.4} core per viewer", (m.server - idle) / n as f64),
        _ => "baseline".into(),
    };
    let viewers = m.viewers.map_or("-".into(), |v| format!("{v:.3}"));
    format!(
        "{label}: server {:.3} cores ({per_viewer}); viewers' process {viewers}; machine {:.2} of {} (steal {:.2}){}",
        m.server,
        m.machine,
        num_cpus(),
        m.steal,
        if received.is_empty() { String::new() } else { format!("; {received}") }
    )
}

/// `tessera bot --subscribers N --program` for long enough to be measured; its report file.
fn start_subscribers(bin: &std::path::Path, node: &Node, n: usize, secs: u64) -> (Child, std::path::PathBuf) {
    let report = std::env::temp_dir().join(format!("bench-audiences-{}-{n}.json", std::process::id()));
    let duration = (n as f64 / 20.0 + 6.0 + secs as f64 + 3.0).ceil() as u64;
    let child = Command::new(bin)
        .args(["bot", "--url", &node.url(), "--api-key", TEST_KEY, "--room", ROOM, "--name", "viewer"])
        .args(["--subscribers", &n.to_string(), "--program", "--duration", &format!("{duration}s")])
        .arg("--report")
        .arg(&report)
        .env_remove("TESSERA_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tessera bot --subscribers starts");
    (child, report)
}

/// Lets the load generator finish (its --duration) and reads its report.
fn finish_subscribers(child: &mut Child, report: &std::path::Path) -> Value {
    let status = tessera_testkit::process::wait_exit(child, Duration::from_secs(30));
    if status.is_none() {
        tessera_testkit::process::kill(child);
    }
    let text = std::fs::read(report).unwrap_or_default();
    let _ = std::fs::remove_file(report);
    serde_json::from_slice(&text).unwrap_or(Value::Null)
}

fn received_summary(report: &Value) -> String {
    let t = &report["totals"];
    let secs = report["duration_s"].as_f64().unwrap_or(f64::NAN);
    let subs = t["subscribers"].as_f64().unwrap_or(f64::NAN);
    // The ones not connected at the end, and what they said.
    let unconnected: Vec<String> = report["subscribers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["connected"] != true)
        .map(|s| {
            let packets: u64 = s["tracks"].as_array().into_iter().flatten().filter_map(|t| t["packets"].as_u64()).sum();
            format!("{} ({} packets, error {})", s["id"], packets, s["error"])
        })
        .collect();
    format!(
        "{}/{} connected, {:.0} packets/s, {:.0} kbit/s per subscriber over its run, loss {}%, {} freezes{}",
        t["connected"],
        t["subscribers"],
        t["packets"].as_f64().unwrap_or(0.0) / secs / subs,
        t["bytes"].as_f64().unwrap_or(0.0) * 8.0 / 1000.0 / secs / subs,
        t["loss_pct"],
        t["freezes"],
        if unconnected.is_empty() { String::new() } else { format!("; not connected: {}", unconnected.join(", ")) }
    )
}

/// N WHEP viewers of the room's program: webrtcbin (GStreamer's WebRTC stack) offering
/// `recvonly` H.264 (High) and Opus, non-trickle, ICE on 127.0.0.1; what they receive is
/// counted and dropped (not decoded), as the bot subscribers do.
struct WhepViewers {
    pipelines: Vec<gst::Pipeline>,
    /// The server's port and each session's resource and token, to `DELETE` it at the end (a
    /// viewer that just goes would be sent the program until its consent check fails).
    port: u16,
    sessions: Vec<(String, String)>,
    /// Packets and bytes received by all of them.
    packets: Arc<[AtomicU64; 2]>,
}

impl WhepViewers {
    fn start(node: &Node, n: usize) -> WhepViewers {
        gst::init().expect("gst init");
        let packets = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let mut pipelines = Vec::new();
        let mut sessions = Vec::new();
        for i in 0..n {
            let (pipeline, webrtc) = whep_pipeline(&packets);
            let offer = whip::complete_offer(&pipeline, &webrtc, || ());
            let token = viewer_token(node, &format!("whep-{i}"));
            let mut headers = http::auth(Some(&token));
            headers.push(("Content-Type".into(), "application/sdp".into()));
            let r = http::send(node.port, "POST", &format!("/whep/{ROOM}"), &headers, Body::Sized(offer.as_bytes()))
                .expect("WHEP POST");
            assert_eq!(r.status, 201, "WHEP: {}", String::from_utf8_lossy(&r.body));
            whip::accept_answer(&webrtc, &String::from_utf8_lossy(&r.body));
            pipelines.push(pipeline);
            sessions.push((r.header("location").expect("a WHEP session's Location").to_owned(), token));
        }
        let viewers = WhepViewers { pipelines, port: node.port, sessions, packets };
        let start = viewers.packets();
        wait_for("the WHEP viewers receiving", Duration::from_secs(20), || {
            (viewers.packets() > start + 50 * n as u64).then_some(())
        });
        viewers
    }

    fn packets(&self) -> u64 {
        self.packets[0].load(Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.packets[1].load(Ordering::Relaxed)
    }
}

impl Drop for WhepViewers {
    fn drop(&mut self) {
        for (location, token) in &self.sessions {
            let _ = http::send(self.port, "DELETE", location, &http::auth(Some(token)), Body::None);
        }
        for p in &self.pipelines {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

fn whep_pipeline(packets: &Arc<[AtomicU64; 2]>) -> (gst::Pipeline, gst::Element) {
    let (pipeline, webrtc) = whip::recvonly_webrtcbin();
    let pipe = pipeline.downgrade();
    let packets = Arc::clone(packets);
    webrtc.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        let Some(pipeline) = pipe.upgrade() else { return };
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
            .expect("fakesink");
        let packets = Arc::clone(&packets);
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
            let (n, bytes) = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => (1, b.size() as u64),
                Some(gst::PadProbeData::BufferList(l)) => (l.len() as u64, l.iter().map(|b| b.size() as u64).sum()),
                _ => (0, 0),
            };
            packets[0].fetch_add(n, Ordering::Relaxed);
            packets[1].fetch_add(bytes, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        pipeline.add(&sink).expect("add fakesink");
        sink.sync_state_with_parent().expect("fakesink plays");
        pad.link(&sink.static_pad("sink").expect("sink pad")).expect("link fakesink");
    });
    (pipeline, webrtc)
}
