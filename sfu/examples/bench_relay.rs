//! What one packet costs on a relay link between two nodes (not a test): two [`RelayLink`]s
//! joined in memory, the sending one encrypting (SRTP, AEAD_AES_128_GCM) and remembering each
//! packet for repairs, the receiving one decrypting, tracking its sequence and handing it on
//! in order. A second pass also sends each datagram from a UDP socket to a loopback socket
//! drained by another thread, one `send_to` per datagram as the relay hub does. The figures
//! are per packet of one layer crossing one link: a track's layer crosses each link once,
//! whatever the number of subscribers behind it.
//!
//! Usage: cargo run --release -p tessera-sfu --example bench_relay -- [PACKETS]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp;
use tessera_sfu::relay::{LinkEvent, LinkKeys, RelayLink};

fn packet(seq: u16) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = 96;
    p.header.ssrc = 0x1234_5678 & !1;
    p.header.sequence_number = seq;
    p.header.timestamp = u32::from(seq) / 4 * 3000;
    p.header.marker = seq % 4 == 3;
    p.payload = Bytes::from(vec![0x5a; 1100]);
    p
}

/// CPU time of this process (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

fn main() {
    let packets: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let (ka, kb) = (LinkKeys::random(), LinkKeys::random());
    let now = Instant::now();
    let mut a = RelayLink::new(&ka, &kb, now).expect("link a");
    let mut b = RelayLink::new(&kb, &ka, now).expect("link b");

    // In memory: encrypt + history on one side, decrypt + order on the other.
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut delivered = 0u64;
    for i in 0..packets {
        a.send_rtp(&packet(i as u16)).expect("send");
        while let Some(d) = a.poll_transmit() {
            for e in b.receive(&d, now) {
                if let LinkEvent::Rtp(_) = e {
                    delivered += 1;
                }
            }
        }
    }
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    assert_eq!(delivered, u64::from(packets));
    let per = wall.as_secs_f64() * 1e9 / f64::from(packets);
    println!(
        "in memory: {packets} packets of 1100 bytes, {per:.0} ns per packet (both ends), {:.0} packets per CPU-second",
        f64::from(packets) / cpu.as_secs_f64().max(1e-9)
    );

    // Through a loopback socket, as the hub sends (the receiving end in another thread).
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let drain = std::thread::spawn(move || {
        rx.set_read_timeout(Some(Duration::from_millis(500))).ok();
        let mut buf = [0u8; 1500];
        let mut n = 0u64;
        while rx.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    let (cpu0, t0) = (cpu_time(), Instant::now());
    for i in 0..packets {
        a.send_rtp(&packet(i as u16)).expect("send");
        while let Some(d) = a.poll_transmit() {
            let _ = tx.send_to(&d, to);
        }
    }
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let received = drain.join().unwrap_or(0);
    let per = wall.as_secs_f64() * 1e9 / f64::from(packets);
    println!(
        "sending end with send_to: {per:.0} ns per packet, {:.0} packets per CPU-second of the process ({received} received)",
        f64::from(packets) / cpu.as_secs_f64().max(1e-9)
    );
}
