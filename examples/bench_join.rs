//! Join to first composited frame (figures in bench/compositor.md, issue 22): how long after a
//! participant joins a room whose program runs does the program show them?
//!
//! One `tessera serve` records room `join` (its program runs, a grid); then, one at a time,
//! `BENCH_JOINS` (10) `tessera bot`s join it, each staying 3 s. For each, two figures:
//! - **client start -> first frame**: from spawning the bot process (its GStreamer start,
//!   signalling, ICE and DTLS included, as a browser joining has them) until the server logs
//!   the first composed frame that shows the bot;
//! - **track -> first frame**: from the SFU handing the track to the program (`add_track`) to
//!   that frame, as the server measures it (`after_ms` of `first frame composed`): the keyframe
//!   request, the publisher's keyframe, the decode, and the compositor's latency (it composes a
//!   frame once its inputs' jitter buffers could have filled it).
//!
//! The server logs the moment the compositor *outputs* that frame; the encoder and the outputs
//! follow. `cargo run --release --example bench_join -- [TESSERA_BINARY]`.

use std::time::{Duration, Instant};

use tessera_testkit::http;
use tessera_testkit::tessera::{Node, TEST_KEY};

const ROOM: &str = "join";
const MARK: &str = "first frame composed";

fn after_ms(line: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix("after_ms=")?.parse().ok())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn main() {
    let bin = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| "target/release/tessera".into());
    // The node runs in a directory of its own.
    let bin = std::path::absolute(&bin).unwrap_or(bin);
    let joins: usize = std::env::var("BENCH_JOINS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let node = Node::builder(&bin).env("RUST_LOG", "warn,tessera_compositor::program=info").start();
    let rec = http::post_json(node.port, &format!("/v1/rooms/{ROOM}/recordings"), Some(TEST_KEY), b"{}");
    assert_eq!(rec.status, 201, "recording: {}", String::from_utf8_lossy(&rec.body));
    std::thread::sleep(Duration::from_secs(2));
    let marks = |log: &str| log.lines().filter(|l| l.contains(MARK)).map(str::to_owned).collect::<Vec<_>>();
    let (mut client, mut server) = (Vec::new(), Vec::new());
    for k in 0..joins {
        let before = marks(&node.stderr()).len();
        let spawned = Instant::now();
        let name = format!("joiner{k}");
        let bot = node.bot(ROOM, &name, &["--color", "#ff0000", "--size", "640x360", "--fps", "30"]);
        let line = loop {
            if let Some(line) = marks(&node.stderr()).into_iter().nth(before) {
                break line;
            }
            assert!(spawned.elapsed() < Duration::from_secs(30), "no first frame from {name}");
            std::thread::sleep(Duration::from_millis(5));
        };
        let from_start = spawned.elapsed().as_secs_f64() * 1000.0;
        let from_track = after_ms(&line).map(|v| v as f64).unwrap_or(f64::NAN);
        println!("join {k}: client start -> first frame {from_start:.0} ms; track -> first frame {from_track:.0} ms");
        client.push(from_start);
        server.push(from_track);
        std::thread::sleep(Duration::from_secs(3));
        bot.stop();
        std::thread::sleep(Duration::from_secs(1));
    }
    let (cmax, smax) = (client.iter().copied().fold(0.0, f64::max), server.iter().copied().fold(0.0, f64::max));
    println!(
        "{joins} joins: client start -> first frame median {:.0} ms (max {cmax:.0}); track -> first frame median {:.0} ms (max {smax:.0})",
        median(&mut client),
        median(&mut server)
    );
    println!(
        "RESULT joins={joins} client_median_ms={:.0} client_max_ms={cmax:.0} track_median_ms={:.0} track_max_ms={smax:.0}",
        median(&mut client),
        median(&mut server)
    );
}
