//! The cluster benchmark (`scripts/bench-cluster`, figures in bench/cluster.md): three
//! `tessera serve` nodes on one Redis, on this machine.
//!
//! 1. API latency, direct vs forwarded: `GET /v1/rooms/{room}` asked of the room's node and of
//!    another node (which forwards it), one keep-alive connection each, p50/p90/p99/max.
//! 2. Placement: 100 rooms, each joined over the signalling WebSocket through one node, one
//!    after another; how many land on each node.
//!
//! `cargo run --release --example bench_cluster -- [TESSERA_BINARY] [REQUESTS]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::http;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::{Node, TEST_KEY};

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().unwrap_or_else(|| "target/release/tessera".into());
    // Nodes run in their own directories.
    let bin = std::fs::canonicalize(&bin).unwrap_or_else(|e| panic!("{bin}: {e}"));
    let requests: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let redis = Redis::start();
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| {
            Node::builder(&bin)
                .name(id)
                .rtc_ports()
                .args(["--redis-url", &redis.url(), "--node-id", id, "--max-cpu", "1.0"])
                .env("RUST_LOG", "warn")
                .start()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // 1. A room (one participant that only signals), then the same GET direct and forwarded.
    let _held = runtime.block_on(join(&nodes[0], "latency"));
    let host =
        http::get(nodes[0].port, "/v1/rooms/latency", Some(TEST_KEY)).json()["node"].as_str().unwrap().to_owned();
    let host_index = ["n1", "n2", "n3"].iter().position(|id| *id == host).unwrap();
    let other = (host_index + 1) % 3;
    println!("room `latency` on {host}; {requests} requests each, after 200 to warm up");
    for (label, index) in [("direct   ", host_index), ("forwarded", other)] {
        let times = latencies(nodes[index].port, "/v1/rooms/latency", requests);
        println!(
            "{label}  p50 {:>6.3} ms  p90 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms",
            pct(&times, 0.50),
            pct(&times, 0.90),
            pct(&times, 0.99),
            pct(&times, 1.0)
        );
    }

    // 2. 100 rooms through one node.
    let started = Instant::now();
    let held: Vec<_> = runtime.block_on(async {
        let mut held = Vec::new();
        for i in 0..100 {
            held.push(join(&nodes[0], &format!("spread{i}")).await);
        }
        held
    });
    let took = started.elapsed();
    let listed = http::get(nodes[0].port, "/v1/rooms", Some(TEST_KEY)).json();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for room in listed["rooms"].as_array().unwrap() {
        if room["name"].as_str().is_some_and(|n| n.starts_with("spread")) {
            *counts.entry(room["node"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    println!(
        "100 rooms joined through n1 in {:.2} s ({:.1} ms per join, placement included): {counts:?}",
        took.as_secs_f64(),
        took.as_secs_f64() * 10.0
    );
    drop(held);
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

/// Milliseconds per request, sorted, over one keep-alive connection.
fn latencies(port: u16, path: &str, n: usize) -> Vec<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TEST_KEY}\r\n\r\n");
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        if i >= 200 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A participant that only signals, joined to `room` through `node`.
async fn join(node: &Node, room: &str) -> Socket {
    use futures_util::{SinkExt, StreamExt};
    let body = json!({"identity": "bench"}).to_string();
    let token = http::post_json(node.port, &format!("/v1/rooms/{room}/tokens"), Some(TEST_KEY), body.as_bytes()).json();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/v1/rtc", node.port)).await.unwrap();
    let hello = json!({"type": "join", "room": room, "token": token["token"]});
    socket.send(tokio_tungstenite::tungstenite::Message::text(hello.to_string())).await.unwrap();
    let answer = socket.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer["type"], "joined", "{answer}");
    socket
}
