//! A webhook receiver on loopback, in the test process: what Tessera's webhooks deliver.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// What a webhook receiver got: (event header, signature header, body) per request.
pub type Deliveries = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A webhook receiver on a free loopback port: answers 503 to the first delivery (to see the
/// retry), 200 to the rest, and keeps (`X-Tessera-Event`, `X-Tessera-Signature`, body) of
/// each request it accepted. Returns its port and what it got.
pub fn receiver() -> (u16, Deliveries) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Deliveries = Default::default();
    let kept = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().flatten().enumerate() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut len, mut event, mut sig) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                let value = line.split_once(':').map(|(_, v)| v.trim().to_string()).unwrap_or_default();
                if lower.starts_with("content-length:") {
                    len = value.parse().unwrap_or(0);
                } else if lower.starts_with("x-tessera-event:") {
                    event = value;
                } else if lower.starts_with("x-tessera-signature:") {
                    sig = value;
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let status = if n == 0 { "503 Service Unavailable" } else { "200 OK" };
            let mut conn = conn;
            let _ = conn
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            if n > 0 {
                kept.lock().unwrap().push((event, sig, body));
            }
        }
    });
    (port, seen)
}
