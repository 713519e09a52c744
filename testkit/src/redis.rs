//! A Redis for tests: Debian's `redis-server` (installed by `scripts/install-deps
//! --with-test-servers`) on a free loopback port with its own temp directory, stopped,
//! restarted on the same port and data, and killed on drop. A test that needs it fails when
//! `redis-server` is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// What the server keeps on disk across a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing (`--save "" --appendonly no`): a restart starts empty.
    None,
    /// An append-only file written before each write is acknowledged (`--appendonly yes
    /// --appendfsync always`, no RDB snapshots): a restart, even after [`Redis::kill`], has
    /// every acknowledged write.
    AppendOnly,
}

/// A `redis-server` on 127.0.0.1; killed on drop.
pub struct Redis {
    port: u16,
    persistence: Persistence,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// `redis-server` from PATH (or /usr/bin, Debian's place).
fn binary() -> PathBuf {
    crate::process::find("redis-server")
        .or_else(|| Some(PathBuf::from("/usr/bin/redis-server")).filter(|p| p.is_file()))
        .expect(
            "redis-server is not installed: run scripts/install-deps --with-test-servers (Debian package redis-server)",
        )
}

impl Redis {
    /// A server that keeps nothing on disk.
    pub fn start() -> Redis {
        Redis::start_with(Persistence::None)
    }

    /// A server with the given persistence.
    pub fn start_with(persistence: Persistence) -> Redis {
        let dir = tempfile::Builder::new().prefix("tessera-redis").tempdir().expect("temp dir");
        let mut redis = Redis { port: free_port(), persistence, dir, child: None };
        redis.spawn();
        redis
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its working directory (the append-only file, the log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the server gracefully (SIGTERM; the append-only file is flushed) and waits for
    /// it (10 s at most). Nothing happens if it is not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        crate::process::signal(child.id(), "TERM");
        let status = crate::process::wait_exit(&mut child, Duration::from_secs(10));
        if status.is_none() {
            crate::process::kill(&mut child);
            panic!("redis-server did not exit within 10 s of SIGTERM; log:\n{}", self.log());
        }
        status
    }

    /// Kills the server without warning (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::process::kill(&mut child);
        }
    }

    /// Starts the server again on the same port and directory (stopping it first if it
    /// runs), and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let appendonly = match self.persistence {
            Persistence::None => ["--appendonly", "no"],
            Persistence::AppendOnly => ["--appendonly", "yes"],
        };
        let mut cmd = Command::new(binary());
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", ""])
            .args(appendonly)
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if self.persistence == Persistence::AppendOnly {
            cmd.args(["--appendfsync", "always"]);
        }
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Until it answers PING with PONG (it refuses commands while it loads its data), 10 s at
    /// most.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port).is_ok_and(|reply| reply.starts_with("+PONG")) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                panic!("redis-server exited at start ({status}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "redis-server did not answer PING within 10 s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// PING over a fresh connection (RESP): the first line of the reply.
fn ping(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if s.read(&mut byte)? == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One command over a fresh connection, as a client would write it (RESP): the reply's
    /// first line.
    fn command(port: u16, args: &[&str]) -> String {
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") && s.read(&mut byte).expect("a reply") == 1 {
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).trim_end().to_owned()
    }

    #[test]
    fn starts_answers_restarts_on_the_same_port_and_stops() {
        let mut redis = Redis::start();
        let port = redis.port();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
        // PING written by hand.
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut reply = [0u8; 7];
        s.read_exact(&mut reply).expect("a reply to PING");
        assert_eq!(&reply, b"+PONG\r\n");
        drop(s);
        assert_eq!(command(port, &["SET", "k", "v"]), "+OK");

        // Restarted: the same port and directory, and (without persistence) empty.
        redis.restart();
        assert_eq!(redis.port(), port);
        assert_eq!(command(port, &["PING"]), "+PONG");
        assert_eq!(command(port, &["GET", "k"]), "$-1");

        let status = redis.stop().expect("it was running");
        assert!(status.success(), "{status}");
        assert!(!redis.is_running());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after stop");
        assert!(redis.stop().is_none(), "a second stop does nothing");
    }

    #[test]
    fn with_an_append_only_file_a_restart_keeps_the_data_even_after_a_kill() {
        let mut redis = Redis::start_with(Persistence::AppendOnly);
        let port = redis.port();
        assert_eq!(command(port, &["SET", "k", "kept"]), "+OK");
        redis.kill();
        assert!(!redis.is_running());
        redis.restart();
        assert_eq!(command(port, &["GET", "k"]), "$4");
        let pid = redis.child.as_ref().map(Child::id).expect("running");
        drop(redis);
        // Killed and reaped on drop.
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "redis-server {pid} outlived its handle");
    }
}
