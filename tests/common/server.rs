//! Runs the real `tessera serve` on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http;

pub const TEST_KEY: &str = "test-key-0123456789abcdef";

pub struct Server {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

/// A port that was free a moment ago (the flag cannot take port 0).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `tessera serve` with no `TESSERA_*` inherited from the test environment, stderr in a file.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("serve");
    for var in ["TESSERA_CONFIG", "TESSERA_HTTP_ADDR", "TESSERA_DATA_DIR", "TESSERA_API_KEY", "TESSERA_LOG_FORMAT"] {
        cmd.env_remove(var);
    }
    let log = std::fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
    cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    cmd
}

impl Server {
    /// Starts with `--api-key TEST_KEY` and a data directory in a fresh temp dir.
    pub fn start() -> Self {
        Self::start_with(|cmd, dir| {
            cmd.args(["--api-key", TEST_KEY, "--data-dir"]).arg(dir.join("data"));
        })
    }

    /// Starts on a free port given with `--http-addr`, after `configure` adds its own settings.
    pub fn start_with(configure: impl FnOnce(&mut Command, &Path)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = command(dir.path());
        cmd.args(["--http-addr", &format!("127.0.0.1:{port}")]);
        configure(&mut cmd, dir.path());
        Self::launch(cmd, port, dir)
    }

    /// Spawns `cmd` (made by [`command`] for `dir`) and waits until it answers on `port`.
    pub fn launch(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Self {
        let child = cmd.spawn().expect("spawn tessera serve");
        let mut server = Self { port, child, dir };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http::send(self.port, "GET", "/v1/health", &[], http::Body::None)
                && response.status == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tessera serve exited early ({status}); stderr:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "tessera serve did not answer /v1/health within 30 s; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The server's process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The first line the server printed on stdout.
    pub fn stdout_line(&mut self) -> String {
        let stdout = self.child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read stdout");
        line
    }

    /// Sends `signal` (e.g. "TERM") and waits up to 10 s for the process to exit; returns its
    /// exit status and everything it logged.
    #[allow(dead_code)]
    pub fn stop_with_log(self, signal: &str) -> (ExitStatus, String) {
        let log = self.dir.path().join("stderr.log");
        let dir = tempfile::tempdir().expect("temp dir");
        let kept = dir.path().join("stderr.log");
        // The server's own directory goes with it: the log is read from a hard link.
        std::fs::hard_link(&log, &kept).expect("link stderr.log");
        let status = self.stop_with(signal);
        (status, std::fs::read_to_string(kept).unwrap_or_default())
    }

    /// Sends `signal` (e.g. "TERM") and waits up to 10 s for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tessera serve did not exit within 10 s of SIG{signal}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Tests that do not stop the server themselves (or fail) must not leak it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
