//! A real TURN server for tests: coturn's `turnserver` from Debian (installed by
//! `scripts/install-deps --with-test-servers`) on loopback, with the TURN REST API's shared
//! secret. Stopped (killed) on drop.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_udp_port;

pub struct Turn {
    /// The UDP (and TCP) listening port on 127.0.0.1.
    pub port: u16,
    /// The relay port range coturn allocates in.
    pub relay_ports: (u16, u16),
    child: Child,
    pub dir: tempfile::TempDir,
}

/// A STUN Binding request (RFC 5389: type 0x0001, no attributes, the magic cookie).
fn binding_request() -> [u8; 20] {
    let mut m = [0u8; 20];
    m[1] = 0x01;
    m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    m[8..20].copy_from_slice(b"tessera-turn");
    m
}

impl Turn {
    /// `turnserver` on 127.0.0.1 (listening and relaying there only), `use-auth-secret` with
    /// `secret`, realm `tessera.test`, relaying to loopback peers, no TLS/DTLS, no CLI.
    pub fn start(secret: &str) -> Turn {
        let binary = "/usr/bin/turnserver";
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: run scripts/install-deps --with-test-servers (Debian package coturn)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_udp_port();
        // A relay range of 200 ports somewhere in 20000-59999, away from the listening port.
        let base = 20_000 + (std::process::id() as u16 % 200) * 200;
        let relay_ports = (base, base + 199);
        let log = dir.path().join("turn.log");
        let child = Command::new(binary)
            // -v: sessions (with their users) are logged.
            .args(["-n", "-v", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={}", relay_ports.0))
            .arg(format!("--max-port={}", relay_ports.1))
            .args(["--use-auth-secret", &format!("--static-auth-secret={secret}"), "--realm=tessera.test"])
            .args(["--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--fingerprint"])
            .arg(format!("--log-file={}", log.display()))
            .arg("--simple-log")
            .arg(format!("--pidfile={}", dir.path().join("turn.pid").display()))
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver");
        let mut turn = Turn { port, relay_ports, child, dir };
        turn.wait_ready();
        turn
    }

    /// Until coturn answers a STUN Binding request on its port (at most 10 s).
    fn wait_ready(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP probe");
        socket.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        loop {
            let _ = socket.send_to(&binding_request(), ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 20
                && buf[0..2] == [0x01, 0x01]
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("turnserver exited early ({status}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "turnserver did not answer STUN within 10 s; log:\n{}", self.log());
        }
    }

    /// `turn:127.0.0.1:PORT?transport=udp`.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// coturn's log so far (`--log-file`; coturn may add a date to the name).
    pub fn log(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("turn") && n.ends_with(".log"))
        });
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect::<Vec<_>>().join("")
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        crate::process::kill(&mut self.child);
    }
}
