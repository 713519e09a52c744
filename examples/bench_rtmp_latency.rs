//! RTP in -> RTMP out (issue 22; figures in bench/compositor.md#rtp-in-to-rtmp-out): how long a
//! participant's frame takes from its RTP packets reaching Tessera to the frame of the program
//! that shows it leaving by RTMP.
//!
//! One `tessera serve` (release), one `tessera bot` `flash` (`--color '#000000'
//! --wall-clock-marks`: its picture turns white for the first 100 ms of every wall-clock second,
//! see docs/bot.md) with `--packet-log` (the wall-clock time of every RTP packet it sends), and
//! nginx-rtmp on this machine. The room is streamed to nginx (`POST /v1/rooms/{room}/streams`,
//! the default 1280x720 program, the bot alone in the grid); an RTMP player in this process
//! (GStreamer: `rtmp2src ! flvdemux ! queue ! h264parse ! avdec_h264 max-threads=1`) notes when each
//! encoded frame reaches it and decodes it, and at each dark-to-bright change of the picture's
//! centre takes that frame's arrival.
//!
//! For each flash (second S):
//! - **RTP in**: the first packet of the first multi-packet video frame the bot sent after S
//!   (its black frames are a single small packet, the black-to-white change is several), from
//!   the packet log: the moment the packet entered the bot's WebRTC stack; SRTP and loopback
//!   add well under a millisecond before Tessera reads it;
//! - **RTMP out**: the flash frame's arrival at the player, which includes nginx's relay
//!   (a pass-through of FLV tags on loopback);
//! - also reported: the bot's own part (S to RTP in: capture, VP8 encode) and the player's
//!   decode, so that the whole, glass to decoded frame, adds up.
//!
//! Every latency here is taken modulo a second (from the whole second the flash began on), so
//! it is valid while under a second, which the parts confirm: the bot holds each frame 60 ms
//! (its pacing latency), and the program's compositor composes a frame as soon as every input
//! has one (its 200 ms jitter-buffer latency is a deadline for late inputs, not a delay).
//!
//! `scripts/bench-rtmp-latency`, or `cargo run --release --example bench_rtmp_latency --
//! [TESSERA_BINARY]`; environment `BENCH_FLASHES` (20), `BENCH_VERBOSE` (set: a line per flash).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gst::prelude::*;
use serde_json::json;
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::rtmp::NginxRtmp;
use tessera_testkit::tessera::{Node, TEST_KEY};

const KEY: Option<&str> = Some(TEST_KEY);
const ROOM: &str = "latency";

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What the player saw: for each dark-to-bright change, the flash frame's arrival (encoded,
/// at the decoder's input) and when it came out decoded, in wall-clock microseconds.
#[derive(Default)]
struct Seen {
    /// Arrival of each encoded frame by its PTS.
    arrivals: HashMap<u64, u64>,
    bright: Option<bool>,
    /// Frames decoded so far.
    decoded: u64,
    flashes: Vec<(u64, u64)>,
}

/// The player. Its audio is dropped, through a leaky queue: the audio sink holds its first
/// buffer until the pipeline plays, which it does once the video has decoded a keyframe, and a
/// full audio queue would hold up the demuxer before that keyframe came.
fn player(url: &str, seen: Arc<Mutex<Seen>>) -> gst::Pipeline {
    let desc = format!(
        "rtmp2src location={url} ! flvdemux name=d d.audio ! queue leaky=downstream ! fakesink sync=false d.video ! queue ! h264parse ! avdec_h264 name=dec max-threads=1 \
         ! videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=64,height=36 ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc).expect("player").downcast::<gst::Pipeline>().expect("a pipeline");
    let dec = pipeline.by_name("dec").expect("dec");
    let s = Arc::clone(&seen);
    dec.static_pad("sink").expect("sink pad").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer()
            && let Some(pts) = b.pts()
        {
            s.lock().expect("seen").arrivals.insert(pts.nseconds(), now_us());
        }
        gst::PadProbeReturn::Ok
    });
    let sink = pipeline.by_name("sink").expect("sink").downcast::<gst_app::AppSink>().expect("appsink");
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let decoded = now_us();
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                // The mean of an 8x8 patch at the centre of the 64x36 picture.
                let mut sum = 0u32;
                for y in 14..22 {
                    for x in 28..36 {
                        sum += u32::from(map.as_slice()[y * 64 + x]);
                    }
                }
                let bright = sum / 64 > 128;
                let mut s = seen.lock().expect("seen");
                s.decoded += 1;
                if bright && s.bright == Some(false) {
                    let arrived = buffer.pts().and_then(|p| s.arrivals.get(&p.nseconds()).copied());
                    if let Some(a) = arrived {
                        s.flashes.push((a, decoded));
                    }
                }
                s.bright = Some(bright);
                if s.arrivals.len() > 1000 {
                    s.arrivals.clear();
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline
}

/// The packet log's video packets: (wall-clock µs) in order.
fn video_sends(path: &std::path::Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let t = f.next()?.parse().ok()?;
            (f.next()? == "v").then_some(t)
        })
        .collect()
}

/// The first packet of the first frame of two or more packets sent in [second, second + 150
/// ms): packets of one frame leave together (under 5 ms apart), frames 33 ms apart; the
/// white-to-black change, another big frame, leaves 100 ms after the flash's.
fn flash_sent(sends: &[u64], second_us: u64) -> Option<u64> {
    let from = sends.partition_point(|&t| t < second_us);
    let window: Vec<u64> = sends[from..].iter().copied().take_while(|&t| t < second_us + 150_000).collect();
    let mut i = 0;
    while i < window.len() {
        let mut j = i + 1;
        while j < window.len() && window[j] - window[j - 1] < 5_000 {
            j += 1;
        }
        if j - i >= 2 {
            return Some(window[i]);
        }
        i = j;
    }
    None
}

fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let median = s[s.len() / 2];
    format!("median {median:.1}, min {:.1}, max {:.1} (n={})", s[0], s[s.len() - 1], s.len())
}

fn main() {
    let bin = std::env::args().nth(1).unwrap_or_else(|| "target/release/tessera".into());
    let copy = tempfile::tempdir().expect("tempdir");
    let bin = {
        let to = copy.path().join("tessera");
        std::fs::copy(&bin, &to).unwrap_or_else(|e| panic!("{bin}: {e}"));
        to
    };
    let flashes: usize = std::env::var("BENCH_FLASHES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    gst::init().expect("gst init");
    let nginx = NginxRtmp::start();
    let node = Node::builder(&bin).env("RUST_LOG", "warn").start();
    let log = copy.path().join("flash.packets");
    let log_arg = log.to_string_lossy().into_owned();
    let mut flash = node.bot(
        ROOM,
        "flash",
        &["--color", "#000000", "--wall-clock-marks", "--size", "640x360", "--fps", "30", "--packet-log", &log_arg],
    );
    flash.wait_for("published", Duration::from_secs(30));
    let body = json!({ "destinations": [nginx.url("lat")] }).to_string();
    let r = http::post_json(node.port, &format!("/v1/rooms/{ROOM}/streams"), KEY, body.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let stream = r.json()["id"].as_str().expect("a stream id").to_owned();
    wait_for("the stream to be live", Duration::from_secs(30), || {
        let s = http::get(node.port, &format!("/v1/streams/{stream}"), KEY).json();
        (s["destinations"][0]["status"] == "live").then_some(())
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    // Now and then (one run in four or five) the player, started as the stream goes live,
    // never prerolls; a new one does at once. Not a figure of Tessera's: only the flash frames
    // after the player started are measured.
    let mut pipeline = None;
    for attempt in 1..=3 {
        let p = player(&nginx.url("lat"), Arc::clone(&seen));
        p.set_state(gst::State::Playing).expect("play");
        let bus = p.bus().expect("bus");
        std::thread::spawn(move || {
            for msg in bus.iter_timed(gst::ClockTime::NONE) {
                if let gst::MessageView::Error(e) = msg.view() {
                    eprintln!("player error: {} ({:?})", e.error(), e.debug());
                }
            }
        });
        let started = std::time::Instant::now();
        while seen.lock().expect("seen").decoded == 0 && started.elapsed() < Duration::from_secs(8) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if seen.lock().expect("seen").decoded > 0 {
            pipeline = Some(p);
            break;
        }
        eprintln!("the player showed nothing in 8 s (attempt {attempt}); starting another");
        let _ = p.set_state(gst::State::Null);
    }
    let pipeline = pipeline.expect("an RTMP player that plays");
    // Past the player's start, then the flashes.
    std::thread::sleep(Duration::from_secs(3));
    seen.lock().expect("seen").flashes.clear();
    wait_for("the flashes", Duration::from_secs(flashes as u64 + 30), || {
        (seen.lock().expect("seen").flashes.len() >= flashes).then_some(())
    });
    let _ = pipeline.set_state(gst::State::Null);
    let (_, _) = flash.stop();
    let sends = video_sends(&log);
    let seen = seen.lock().expect("seen");
    let (mut tessera, mut bot, mut decode, mut whole) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &(arrived, decoded) in &seen.flashes {
        // The flash began on the whole second before the frame arrived (well under a second).
        let second = arrived / 1_000_000 * 1_000_000;
        decode.push((decoded - arrived) as f64 / 1000.0);
        whole.push((decoded - second) as f64 / 1000.0);
        if let Some(sent) = flash_sent(&sends, second) {
            tessera.push((arrived as f64 - sent as f64) / 1000.0);
            bot.push((sent - second) as f64 / 1000.0);
        }
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            let sent = flash_sent(&sends, second).map(|t| (t - second) / 1000);
            println!(
                "  flash at {second}: sent +{sent:?} ms, arrived +{} ms, decoded +{} ms",
                (arrived - second) / 1000,
                (decoded - second) / 1000
            );
        }
    }
    println!("RTMP latency, {} flashes (ms):", seen.flashes.len());
    println!("  RTP in -> RTMP out (at the player, through nginx): {}", spread(&tessera));
    println!("  the bot's capture -> RTP in: {}", spread(&bot));
    println!("  the player's decode: {}", spread(&decode));
    println!("  capture -> decoded at the player: {}", spread(&whole));
    drop(node);
    drop(nginx);
}
