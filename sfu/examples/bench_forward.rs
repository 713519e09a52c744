//! Forwarding benchmark (not a test): one publisher to N subscribers through the forwarding
//! core (`TrackForwarder` → `DownTrack` → bounded queue, as in the server; no SRTP/sockets).
//! Reports forwarded packets per second on one core and the packet-in → packet-out delay.
//!
//! Usage: cargo run --release -p tessera-sfu --example bench_forward -- [SUBSCRIBERS] [SECONDS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp;
use tessera_sfu::forward::{DownTrack, Output, TrackForwarder};
use tokio::sync::mpsc;

fn main() {
    let mut args = std::env::args().skip(1);
    let subs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5).min(30);
    let f = TrackForwarder::new("video/VP8", Vec::new());
    f.set_layer_ssrc(1234, 0);
    let mut rxs = Vec::new();
    for i in 0..subs {
        let (tx, rx) = mpsc::channel(4096);
        let d = DownTrack::new(format!("s{i}"), 1000 + i as u32, 96, 90_000, Output::Queue(tx));
        f.add_down(Arc::new(d));
        rxs.push(rx);
    }
    let payload = Bytes::from(vec![0x10u8; 1100]);
    let mut key = payload.to_vec();
    key[1] = 0;
    let key = Bytes::from(key);
    let mut delays: Vec<u32> = Vec::new();
    let start = Instant::now();
    let mut seq: u16 = 0;
    let mut forwarded: u64 = 0;
    let mut busy = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(secs) {
        let mut p = rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = 1234;
        p.header.payload_type = 96;
        p.header.sequence_number = seq;
        p.header.timestamp = u32::from(seq) * 3000;
        p.payload = if seq.is_multiple_of(300) { key.clone() } else { payload.clone() };
        seq = seq.wrapping_add(1);
        let t0 = Instant::now();
        f.on_rtp(&p, t0);
        // Packet out: the last subscriber's queue has it.
        let mut got = 0;
        for rx in &mut rxs {
            while rx.try_recv().is_ok() {
                got += 1;
            }
        }
        let dt = t0.elapsed();
        busy += dt;
        forwarded += got;
        if got > 0 {
            delays.push(dt.as_nanos() as u32);
        }
    }
    delays.sort_unstable();
    let pct = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "subscribers={subs} forwarded={forwarded} in {:.1}s busy: {:.0} packets/s per core; fan-out delay (packet in -> last subscriber's queue) p50={:.1}us p99={:.1}us",
        busy.as_secs_f64(),
        forwarded as f64 / busy.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
}
