//! `tessera serve`, the real binary, as a node under test: on its own free loopback port with
//! its own temp directory (its data directory, its log), extra flags and environment, stopped
//! by a signal or killed on drop. Several nodes run side by side in one test, each with its
//! own ports and data; a [`NodeBuilder`] cloned (or given the same [`NodeBuilder::data_dir`])
//! starts a node again on the same data.
//!
//! The binary's path comes from the test: `env!("CARGO_BIN_EXE_tessera")` in the `tessera`
//! package's integration tests.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bot::Bot;
use crate::http;
use crate::ports::{free_port, free_udp_port};

/// The API key nodes get unless told otherwise.
pub const TEST_KEY: &str = "test-key-0123456789abcdef";

/// The `TESSERA_*` settings a node never inherits from the test's environment.
const NOT_INHERITED: [&str; 5] =
    ["TESSERA_CONFIG", "TESSERA_HTTP_ADDR", "TESSERA_DATA_DIR", "TESSERA_API_KEY", "TESSERA_LOG_FORMAT"];

/// `BIN serve` run in `dir`, with no `TESSERA_*` setting inherited from the test environment,
/// stdout piped and stderr in `dir/stderr.log`; no flags yet.
pub fn serve_command(bin: impl AsRef<Path>, dir: &Path) -> Command {
    let mut cmd = Command::new(bin.as_ref());
    cmd.arg("serve");
    for var in NOT_INHERITED {
        cmd.env_remove(var);
    }
    let log = std::fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
    cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    cmd
}

#[derive(Clone, Debug)]
enum DataDir {
    /// `data/` in the node's own temp directory.
    Own,
    At(PathBuf),
    /// No `--data-dir` flag.
    Unset,
}

/// How to start a node: by default `--api-key TEST_KEY`, `--data-dir` in its own temp
/// directory and a free port for `--http-addr 127.0.0.1:PORT`.
#[derive(Clone, Debug)]
pub struct NodeBuilder {
    bin: PathBuf,
    name: String,
    api_key: Option<String>,
    data_dir: DataDir,
    http_port: Option<u16>,
    rtc_ports: Option<(u16, u16)>,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
}

impl NodeBuilder {
    /// A node of the `tessera` binary at `bin`.
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        NodeBuilder {
            bin: bin.into(),
            name: "tessera serve".into(),
            api_key: Some(TEST_KEY.into()),
            data_dir: DataDir::Own,
            http_port: None,
            rtc_ports: None,
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// What failures call the node (`tessera serve` by default).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// `--api-key KEY` instead of [`TEST_KEY`].
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// No `--api-key` flag (the key from the environment or a config file, or a generated one).
    pub fn without_api_key(mut self) -> Self {
        self.api_key = None;
        self
    }

    /// `--data-dir DIR`: a directory of the test's, which outlives the node (to start another
    /// on the same data).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = DataDir::At(dir.into());
        self
    }

    /// No `--data-dir` flag.
    pub fn without_data_dir(mut self) -> Self {
        self.data_dir = DataDir::Unset;
        self
    }

    /// `--http-addr 127.0.0.1:PORT` on this port rather than a free one picked at start.
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = Some(port);
        self
    }

    /// `--rtc-udp-port` and `--rtc-tcp-port` on free ports, picked now: clones of this builder
    /// start their nodes on the same ones.
    pub fn rtc_ports(mut self) -> Self {
        self.rtc_ports = Some((free_udp_port(), free_port()));
        self
    }

    /// Adds a flag (after the ones above).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the node.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        self.envs.extend(vars.into_iter().map(|(k, v)| (k.as_ref().to_owned(), Some(v.as_ref().to_owned()))));
        self
    }

    /// Removes an environment variable the node would inherit.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the node and waits (30 s at most) until it answers `GET /v1/health`.
    pub fn start(self) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = self.http_port.unwrap_or_else(free_port);
        let mut cmd = serve_command(&self.bin, dir.path());
        cmd.args(["--http-addr", &format!("127.0.0.1:{port}")]);
        if let Some(key) = &self.api_key {
            cmd.args(["--api-key", key]);
        }
        let data_dir = match &self.data_dir {
            DataDir::Own => Some(dir.path().join("data")),
            DataDir::At(d) => Some(d.clone()),
            DataDir::Unset => None,
        };
        if let Some(d) = &data_dir {
            cmd.arg("--data-dir").arg(d);
        }
        if let Some((udp, tcp)) = self.rtc_ports {
            cmd.args(["--rtc-udp-port", &udp.to_string(), "--rtc-tcp-port", &tcp.to_string()]);
        }
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        let mut node = Node {
            port,
            rtc_udp_port: self.rtc_ports.map(|p| p.0),
            rtc_tcp_port: self.rtc_ports.map(|p| p.1),
            dir,
            bin: self.bin,
            name: self.name,
            api_key: self.api_key,
            data_dir,
            child,
        };
        node.wait_healthy();
        node
    }
}

/// A running `tessera serve`; killed (SIGKILL) on drop unless stopped before.
pub struct Node {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Its WebRTC ports, when started with [`NodeBuilder::rtc_ports`].
    pub rtc_udp_port: Option<u16>,
    pub rtc_tcp_port: Option<u16>,
    /// Its own temp directory: its working directory, `stderr.log`, and `data/` unless given
    /// another data directory.
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    name: String,
    api_key: Option<String>,
    data_dir: Option<PathBuf>,
    child: Child,
}

impl Node {
    /// A node of the binary at `bin`, to be configured.
    pub fn builder(bin: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder::new(bin)
    }

    /// Spawns `cmd` (made by [`serve_command`] for `dir`, with all its flags) and waits until it
    /// answers on `port`: for settings the builder does not make (the address from the
    /// environment or a config file).
    pub fn launch(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Node {
        let child = cmd.spawn().expect("spawn tessera serve");
        let mut node = Node {
            port,
            rtc_udp_port: None,
            rtc_tcp_port: None,
            dir,
            bin: PathBuf::from(cmd.get_program()),
            name: "tessera serve".into(),
            api_key: None,
            data_dir: None,
            child,
        };
        node.wait_healthy();
        node
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
                panic!("{} exited early ({status}); stderr:\n{}", self.name, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer /v1/health within 30 s; stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API key it was given with `--api-key`.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// Everything it logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().expect("this node was started without --data-dir")
    }

    /// The first line the server printed on stdout.
    pub fn stdout_line(&mut self) -> String {
        let stdout = self.child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read stdout");
        line
    }

    /// A `tessera bot` in `room` on this node, with its API key.
    pub fn bot(&self, room: &str, name: &str, args: &[&str]) -> Bot {
        let key = self.api_key.as_deref().expect("a bot needs the node's --api-key");
        Bot::start(&self.bin, self.port, key, room, name, args)
    }

    /// `n` receive-only subscribers in `room` on this node for `seconds` (one `tessera bot
    /// --subscribers` process named `name`, with `args`).
    pub fn subscribers(
        &self,
        room: &str,
        name: &str,
        n: usize,
        seconds: u64,
        args: &[&str],
    ) -> crate::bot::Subscribers {
        let key = self.api_key.as_deref().expect("the load generator needs the node's --api-key");
        let (n, seconds) = (n.to_string(), seconds.to_string());
        let mut all = vec!["--room", room, "--name", name, "--subscribers", &n, "--duration", &seconds];
        all.extend_from_slice(args);
        crate::bot::Subscribers::start(&self.bin, &self.url(), key, &all)
    }

    /// `GET /v1/recordings/{id}` until the recording is `completed` or `failed` (up to
    /// `timeout`), and then its resource.
    pub fn wait_recording_ended(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = http::get(self.port, &format!("/v1/recordings/{id}"), self.api_key()).json();
            if r["status"] == "completed" || r["status"] == "failed" {
                return r;
            }
            assert!(Instant::now() < deadline, "recording {id} never ended: {r}\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM: a graceful stop. Waits up to 10 s for the exit.
    pub fn stop(self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends `signal` (e.g. "TERM") and waits up to 10 s for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        assert!(crate::process::signal(self.child.id(), signal), "kill -{signal} failed");
        crate::process::wait_exit(&mut self.child, Duration::from_secs(10)).unwrap_or_else(|| {
            panic!("{} did not exit within 10 s of SIG{signal}; stderr:\n{}", self.name, self.stderr())
        })
    }

    /// Sends `signal` (e.g. "TERM") and waits up to 10 s for the process to exit; returns its
    /// exit status and everything it logged.
    pub fn stop_with_log(self, signal: &str) -> (ExitStatus, String) {
        let log = self.dir.path().join("stderr.log");
        let dir = tempfile::tempdir().expect("temp dir");
        let kept = dir.path().join("stderr.log");
        // The node's own directory goes with it: the log is read from a hard link.
        std::fs::hard_link(&log, &kept).expect("link stderr.log");
        let status = self.stop_with(signal);
        (status, std::fs::read_to_string(kept).unwrap_or_default())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Tests that do not stop the node themselves (or fail) must not leak it.
        crate::process::kill(&mut self.child);
    }
}
