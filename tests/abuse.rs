//! A scripted abuse run against a live `tessera serve` while a call is recorded: 10,000 random
//! datagrams at the shared WebRTC UDP port, malformed WebSocket frames on the signalling
//! endpoint (before and after a join), half-open ICE-TCP streams, and oversized or slow HTTP
//! bodies. Afterwards the call still goes on (the subscriber still receives), the recording
//! is whole (continuous, its participant's colour throughout), the server is back to the file
//! descriptors it had and its memory has not run away.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::analysis::{RED, assert_color, decode_frames, probe};
use tessera_testkit::http;
use tessera_testkit::tessera::TEST_KEY;

/// A small deterministic generator (xorshift64*): the same abuse on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc fd").count()
}

/// One datagram of a kind a stranger might send: random, STUN-looking, RTP-looking,
/// DTLS-looking, or empty-ish.
fn datagram(noise: &mut Noise) -> Vec<u8> {
    let len = 1 + noise.below(1400) as usize;
    let mut d = noise.bytes(len);
    match noise.below(5) {
        // A binding request with our magic cookie and garbage attributes.
        0 if len >= 20 => {
            d[0] = 0x00;
            d[1] = 0x01;
            let body = (len - 20) as u16;
            d[2..4].copy_from_slice(&body.to_be_bytes());
            d[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes());
        }
        // RTP version 2, any payload type.
        1 => d[0] = 0x80 | (d[0] & 0x3f),
        // A DTLS 1.2 record header.
        2 if len >= 3 => d[..3].copy_from_slice(&[0x16, 0xfe, 0xfd]),
        3 => d.truncate(1 + len % 4),
        _ => {}
    }
    d
}

/// A WebSocket client frame; `mask: false` breaks RFC 6455's rule for clients.
fn ws_frame(first: u8, payload: &[u8], declared_len: Option<u64>, mask: bool) -> Vec<u8> {
    let mut f = vec![first];
    let len = declared_len.unwrap_or(payload.len() as u64);
    let m = if mask { 0x80 } else { 0 };
    if len < 126 {
        f.push(m | len as u8);
    } else if len <= u64::from(u16::MAX) {
        f.push(m | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&len.to_be_bytes());
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    if mask {
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A WebSocket upgraded on `/v1/rtc` (raw, so that it can misbehave).
fn ws_connect(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET /v1/rtc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("upgrade answer"), 1, "closed during the upgrade");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// Reads until the server closes the stream (or `limit` passes); true if it closed it.
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn token(port: u16, room: &str, identity: &str) -> String {
    let r = http::post_json(
        port,
        &format!("/v1/rooms/{room}/tokens"),
        Some(TEST_KEY),
        format!(r#"{{"identity":"{identity}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().unwrap().to_owned()
}

/// A raw HTTP request that announces `declared` body bytes and sends `sent` of them slowly.
fn slow_post(port: u16, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST /v1/rooms/abuse/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&vec![b' '; sent]).unwrap();
    s
}

#[test]
fn abuse_of_every_port_leaves_the_call_and_the_recording_whole() {
    let server = common::node().rtc_ports().start();
    let (udp_port, tcp_port) = (server.rtc_udp_port.unwrap(), server.rtc_tcp_port.unwrap());
    let (port, pid) = (server.port, server.pid());
    let mut red = server.bot("abuse", "red", &["--color", "#ff0000", "--size", "320x180", "--fps", "15", "--silent"]);
    red.wait_for("published", Duration::from_secs(30));
    let mut viewer = server.bot("abuse", "viewer", &["--subscribe", "--no-publish"]);
    viewer.wait_for("joined", Duration::from_secs(30));
    let rec = http::post_json(
        port,
        "/v1/rooms/abuse/recordings",
        Some(TEST_KEY),
        br#"{"layout":"grid","video":{"width":640,"height":360,"fps":15,"bitrate_kbps":800}}"#,
    );
    assert_eq!(rec.status, 201, "{}", String::from_utf8_lossy(&rec.body));
    let rec_id = rec.json()["id"].as_str().unwrap().to_owned();
    let recording_since = Instant::now();
    // Warmed up: the program, both calls and the recording are running.
    std::thread::sleep(Duration::from_secs(4));
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));
    let mut noise = Noise(0x7e55_e7a0_0000_0001);

    // 1. 10,000 datagrams at the shared UDP port, in bursts so the call's own packets still
    //    find room in the socket's buffer.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for burst in 0..100 {
        for _ in 0..100 {
            let _ = udp.send_to(&datagram(&mut noise), ("127.0.0.1", udp_port));
        }
        if burst % 10 == 9 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // 2. Malformed WebSocket frames, before a join and after one; each breaks the protocol
    //    and must end that connection only.
    let join =
        format!(r#"{{"type":"join","room":"abuse","token":"{}","name":"mallory"}}"#, token(port, "abuse", "mallory"));
    let bad_frames: Vec<(&str, Vec<u8>)> = vec![
        ("an unmasked frame", ws_frame(0x81, b"{\"type\":\"leave\"}", None, false)),
        ("a reserved opcode", ws_frame(0x83, b"x", None, true)),
        ("a 2^62-byte frame", ws_frame(0x82, b"", Some(1 << 62), true)),
        ("text that is not UTF-8", ws_frame(0x81, &[0xff, 0xfe, 0xfd], None, true)),
        ("a ping of 200 bytes", ws_frame(0x89, &[0u8; 200], None, true)),
        ("a fragmented close", ws_frame(0x08, b"", None, true)),
        ("random bytes", noise.bytes(300)),
    ];
    for joined in [false, true] {
        for (what, frame) in &bad_frames {
            let mut s = ws_connect(port);
            if joined {
                s.write_all(&ws_frame(0x81, join.as_bytes(), None, true)).unwrap();
            }
            let _ = s.write_all(frame);
            assert!(
                closed_by_server(&mut s, Duration::from_secs(12)),
                "{what} (joined: {joined}) left the connection open"
            );
        }
    }
    // Garbage JSON after a join gets an error message; the connection is the client's to end.
    let mut s = ws_connect(port);
    s.write_all(&ws_frame(0x81, join.as_bytes(), None, true)).unwrap();
    s.write_all(&ws_frame(0x81, b"{\"type\":\"publish\",\"sdp\":7}", None, true)).unwrap();
    let _ = s.shutdown(Shutdown::Both);

    // 3. Half-open ICE-TCP streams: silent, one byte, or a frame that never finishes.
    let mut half_open = Vec::new();
    for i in 0..60 {
        let mut s = TcpStream::connect(("127.0.0.1", tcp_port)).expect("ICE-TCP connect");
        match i % 3 {
            0 => {}
            1 => s.write_all(&[0x00]).unwrap(),
            _ => {
                s.write_all(&[0xff, 0xff]).unwrap();
                s.write_all(&noise.bytes(100)).unwrap();
            }
        }
        half_open.push(s);
    }

    // 4. HTTP: a body declared far over the limit is refused at once; slow bodies do not hold
    //    up other requests.
    let mut huge = slow_post(port, 100 * 1024 * 1024, 1024);
    huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 12];
    huge.read_exact(&mut answer).expect("an answer to the oversized body");
    assert_eq!(&answer, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&answer));
    let slow: Vec<TcpStream> = (0..20).map(|_| slow_post(port, 4096, 10)).collect();
    let mut chunked = TcpStream::connect(("127.0.0.1", port)).unwrap();
    chunked
        .write_all(format!("POST /v1/layouts/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes())
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..20 {
        if chunked.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
            || chunked.write_all(&chunk).is_err()
            || chunked.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    chunked.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 12];
    chunked.read_exact(&mut answer).expect("an answer to the oversized chunked body");
    assert_eq!(&answer, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&answer));
    let started = Instant::now();
    let health = http::get(port, "/v1/health", None);
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the API answered in {:?} beside slow bodies",
        started.elapsed()
    );

    // The half-open ICE-TCP streams are closed by the server itself: nobody claimed them.
    for (i, s) in half_open.iter_mut().enumerate() {
        assert!(closed_by_server(s, Duration::from_secs(15)), "ICE-TCP stream {i} still open");
    }
    drop((huge, slow, chunked, half_open));

    // The call went on: the recording still runs and the viewer is still in the room.
    let rec_now = http::get(port, &format!("/v1/recordings/{rec_id}"), Some(TEST_KEY)).json();
    assert_eq!(rec_now["status"], "recording", "{rec_now}");
    let room: Value = http::get(port, "/v1/rooms/abuse", Some(TEST_KEY)).json();
    let names: Vec<&str> = room["participants"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"red") && names.contains(&"viewer"), "{room}");
    assert!(!names.contains(&"mallory"), "a broken signalling connection left its participant: {room}");

    // Back where it was: every descriptor the abuse opened is closed again; memory did not
    // run away (allocators keep some of what they once used).
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (rss_after, fds_after) = (rss_kib(pid), open_fds(pid));
    eprintln!("server: {rss_before} KiB / {fds_before} fds before the abuse, {rss_after} KiB / {fds_after} fds after");
    assert!(fds_after <= fds_before, "file descriptors: {fds_before} before, {fds_after} after");
    assert!(rss_after < rss_before + 40 * 1024, "memory: {rss_before} KiB before, {rss_after} KiB after");

    // The recording is whole: red throughout, no gap, as long as it ran.
    std::thread::sleep(Duration::from_secs(1));
    let ran = recording_since.elapsed().as_secs_f64();
    let stop = http::post_json(port, &format!("/v1/recordings/{rec_id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(stop.status, 200, "{}", String::from_utf8_lossy(&stop.body));
    let done = server.wait_recording_ended(&rec_id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    let path = PathBuf::from(done["location"]["path"].as_str().unwrap());
    let p = probe(&path);
    assert!(p.duration > ran - 1.5 && p.duration < ran + 0.5, "{} s recorded of {ran:.1} s", p.duration);
    assert!(p.max_gap < 0.1, "a gap of {} s in the recording", p.max_gap);
    let frames = decode_frames(&path, 160, 90);
    let end = frames.last().expect("frames").pts;
    assert_color(&frames, 1.0, end, (320.0, 180.0), (640, 360), RED, "red");
    let (_, report) = viewer.stop();
    // 15 fps of video and its packets for the whole call, minus a generous margin.
    let received = report["packets_received"].as_u64().unwrap_or(0);
    assert!(received as f64 > ran * 15.0, "the viewer received {received} packets in {ran:.0} s: {report}");
    drop(red);
}
