//! The cascade benchmark (`scripts/bench-cascade`, figures in bench/cascade.md): three
//! `tessera serve` nodes on one Redis, on this machine.
//!
//! - `hop [SUBSCRIBERS] [SECONDS]`: one publisher bot on n1 (noise, 3 Mbit/s, paced as
//!   browsers pace), first with every subscriber on n1, then with half on n1 and half on n3
//!   (their copies crossing the n1 → n3 relay link). For each run: forwarded copies per
//!   CPU-second of the nodes that forward, and the forwarding delay per copy (p50, p99) on n1
//!   (publisher's packet in → copy out) and on n3 (relayed packet in → copy out: what a hop
//!   adds besides the link's transit).
//! - `big [SUBSCRIBERS] [SECONDS]`: one headless Chromium publishing camera (three simulcast
//!   layers) and microphone on n1, and SUBSCRIBERS receive-only subscribers spread evenly over
//!   the three nodes (one `tessera bot --subscribers` process per node): each node's CPU, and
//!   the subscribers' loss, freezes and time to the first packet.
//!
//! `cargo run --release --example bench_cascade -- TESSERA_BINARY MODE [SUBSCRIBERS] [SECONDS]`

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::http;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::{Node, TEST_KEY};

const IDS: [&str; 3] = ["n1", "n2", "n3"];

/// CPU seconds (user + system) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn metrics(node: &Node) -> String {
    String::from_utf8(http::get(node.port, "/metrics", None).body).unwrap_or_default()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// The forwarding-delay histogram's cumulative buckets: (upper bound in seconds, count).
fn delay_buckets(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tessera_sfu_forward_delay_seconds_bucket{le=\"")?;
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, value.parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which `q` of the copies between two snapshots fell.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let counts: Vec<(f64, f64)> =
        after.iter().map(|(le, n)| (*le, n - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, m)| *m))).collect();
    let total = counts.last().map_or(0.0, |(_, n)| *n);
    counts.iter().find(|(_, n)| *n >= q * total).map_or(f64::NAN, |(le, _)| *le)
}

fn start_nodes(bin: &std::path::Path, redis: &Redis, extra: &[&str]) -> Vec<Node> {
    let nodes: Vec<Node> = IDS
        .iter()
        .map(|id| {
            Node::builder(bin)
                .name(id)
                .rtc_ports()
                .args(["--redis-url", &redis.url(), "--node-id", id, "--max-cpu", "1.0"])
                .args(extra)
                .env("RUST_LOG", "warn")
                .start()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    nodes
}

/// One forwarding run of the `hop` mode: `on_n1` subscribers on n1 and `on_n3` on n3.
fn hop_run(nodes: &[Node], room: &str, on_n1: usize, on_n3: usize, seconds: u64) {
    let mut publisher =
        nodes[0].bot(room, "pub", &["--pattern", "snow", "--bitrate-kbps", "3000", "--pace-factor", "2.5"]);
    publisher.wait_for("published", Duration::from_secs(30));
    let mut loads = Vec::new();
    for (n, count) in [(0, on_n1), (2, on_n3)] {
        if count > 0 {
            loads.push(nodes[n].subscribers(room, &format!("sub{n}"), count, seconds + 6, &["--report-every", "60"]));
        }
    }
    // Warm up (joins, keyframes), then measure.
    std::thread::sleep(Duration::from_secs(4));
    let snap = |i: usize| (metrics(&nodes[i]), cpu_seconds(nodes[i].pid()));
    let (b1, b3) = (snap(0), snap(2));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (a1, a3) = (snap(0), snap(2));
    let wall = t0.elapsed().as_secs_f64();
    let copies = |b: &(String, f64), a: &(String, f64)| {
        metric(&a.0, "tessera_sfu_forwarded_packets") - metric(&b.0, "tessera_sfu_forwarded_packets")
    };
    let (c1, c3) = (copies(&b1, &a1), copies(&b3, &a3));
    let (cpu1, cpu3) = (a1.1 - b1.1, a3.1 - b3.1);
    let per_cpu = (c1 + c3) / (cpu1 + if on_n3 > 0 { cpu3 } else { 0.0 }).max(1e-9);
    println!(
        "{on_n1:>3} on n1 + {on_n3:>3} on n3: {:.0} copies/s, n1 {:.2} cores, n3 {:.2} cores, {per_cpu:.0} copies per CPU-second of the forwarding nodes",
        (c1 + c3) / wall,
        cpu1 / wall,
        cpu3 / wall
    );
    let (d1b, d1a) = (delay_buckets(&b1.0), delay_buckets(&a1.0));
    println!(
        "    n1 (publisher's packet in -> copy out): p50 <= {:.0} us, p99 <= {:.0} us",
        quantile(&d1b, &d1a, 0.5) * 1e6,
        quantile(&d1b, &d1a, 0.99) * 1e6
    );
    if on_n3 > 0 {
        let (d3b, d3a) = (delay_buckets(&b3.0), delay_buckets(&a3.0));
        let rtt = metric(&a3.0, "tessera_relay_rtt_seconds{peer=\"n1\"}");
        let sent = metric(&a1.0, "tessera_relay_packets_sent_total{peer=\"n3\"}")
            - metric(&b1.0, "tessera_relay_packets_sent_total{peer=\"n3\"}");
        println!(
            "    n3 (relayed packet in -> copy out): p50 <= {:.0} us, p99 <= {:.0} us; link n1 -> n3 {:.0} packets/s, round trip {:.0} us",
            quantile(&d3b, &d3a, 0.5) * 1e6,
            quantile(&d3b, &d3a, 0.99) * 1e6,
            sent / wall,
            rtt * 1e6
        );
    }
    for load in loads {
        let (report, _) = load.finish(Duration::from_secs(60));
        let t = &report["totals"];
        println!(
            "    subscribers {}: connected {}, loss {}%, freezes {}",
            t["subscribers"], t["connected"], t["loss_pct"], t["freezes"]
        );
    }
    let _ = publisher.stop();
}

fn big(nodes: &[Node], subscribers: usize, seconds: u64) {
    let token = http::post_json(
        nodes[0].port,
        "/v1/rooms/big/tokens",
        Some(TEST_KEY),
        br#"{"identity":"presenter","name":"presenter"}"#,
    )
    .json();
    let page = format!(
        "{}/rooms/big?token={}&name=presenter&simulcast=1",
        nodes[0].url(),
        token["token"].as_str().unwrap_or_default()
    );
    let _browser = tessera_testkit::chromium::Browser::open(&page, &[]);
    std::thread::sleep(Duration::from_secs(5));
    let per_node = subscribers / 3;
    let started = Instant::now();
    let loads: Vec<_> = (0..3)
        .map(|i| {
            nodes[i].subscribers(
                "big",
                &format!("v{}", i + 1),
                per_node,
                seconds,
                &["--report-every", "60", "--ramp-per-second", "50"],
            )
        })
        .collect();
    let cpu0: Vec<f64> = nodes.iter().map(|n| cpu_seconds(n.pid())).collect();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed().as_secs_f64();
    let cores: Vec<String> = nodes
        .iter()
        .zip(&cpu0)
        .zip(IDS)
        .map(|((n, c0), id)| format!("{id} {:.2}", (cpu_seconds(n.pid()) - c0) / wall))
        .collect();
    println!("{} subscribers over three nodes for {seconds} s; cores: {}", per_node * 3, cores.join(", "));
    for (i, load) in loads.into_iter().enumerate() {
        let (report, _) = load.finish(Duration::from_secs(120));
        let t: &Value = &report["totals"];
        println!(
            "    on {}: {} of {} connected, {} packets, loss {}%, freezes {} ({} ms), first packet p50 {} ms p95 {} ms",
            IDS[i],
            t["connected"],
            t["subscribers"],
            t["packets"],
            t["loss_pct"],
            t["freezes"],
            t["freeze_ms"],
            t["time_to_first_packet_ms"]["p50"],
            t["time_to_first_packet_ms"]["p95"]
        );
    }
    let m = metrics(&nodes[0]);
    println!(
        "    n1 relay: {:.0} packets sent to n2, {:.0} to n3",
        metric(&m, "tessera_relay_packets_sent_total{peer=\"n2\"}"),
        metric(&m, "tessera_relay_packets_sent_total{peer=\"n3\"}")
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().unwrap_or_else(|| "target/release/tessera".into());
    let bin = std::fs::canonicalize(&bin).unwrap_or_else(|e| panic!("{bin}: {e}"));
    let mode = args.next().unwrap_or_else(|| "hop".into());
    let subscribers: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(if mode == "big" { 300 } else { 20 });
    let seconds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(15);
    let redis = Redis::start();
    let cap = (subscribers + 10).to_string();
    let nodes = start_nodes(&bin, &redis, &["--max-participants", &cap]);
    match mode.as_str() {
        "hop" => {
            hop_run(&nodes, "one", subscribers, 0, seconds);
            hop_run(&nodes, "spread", subscribers / 2, subscribers - subscribers / 2, seconds);
        }
        "big" => big(&nodes, subscribers, seconds),
        other => panic!("unknown mode {other}: hop or big"),
    }
}
