//! `tessera bot`: a synthetic WebRTC participant (GStreamer test media over the SFU's own
//! stack) that reports what it does as JSON lines on stdout.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Bot {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Bot {
    /// `BIN bot --url http://127.0.0.1:PORT --room ROOM --name NAME --api-key KEY ARGS…`, with
    /// no `TESSERA_TOKEN` inherited. `bin` is the `tessera` binary (`CARGO_BIN_EXE_tessera` in
    /// its package's tests); [`crate::tessera::Node::bot`] fills in a node's.
    pub fn start(bin: impl AsRef<Path>, port: u16, api_key: &str, room: &str, name: &str, args: &[&str]) -> Bot {
        let mut child = Command::new(bin.as_ref())
            .args(["bot", "--url", &format!("http://127.0.0.1:{port}"), "--room", room, "--name", name])
            .args(["--api-key", api_key])
            .args(args)
            .env_remove("TESSERA_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tessera bot starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Bot { name: name.to_owned(), child, lines, seen: Vec::new() }
    }

    /// Waits for the bot's `event` line (`joined`, `published`, `reconnecting`, `left`).
    pub fn wait_for(&mut self, event: &str, timeout: Duration) -> Value {
        self.wait_for_nth(event, 1, timeout)
    }

    /// Waits for the `n`th `event` line (from 1): a bot that joined again through another
    /// node (`reconnecting`) says `joined` and `published` once more.
    pub fn wait_for_nth(&mut self, event: &str, n: usize, timeout: Duration) -> Value {
        let said = |seen: &[Value]| seen.iter().filter(|v| v["event"] == event).nth(n.saturating_sub(1)).cloned();
        if let Some(v) = said(&self.seen) {
            return v;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v);
                    if let Some(v) = said(&self.seen) {
                        return v;
                    }
                }
                Err(_) => panic!("bot {} never said `{event}` {n} times (said {:?})", self.name, self.seen),
            }
        }
    }

    /// The bot's participant id once joined.
    pub fn participant_id(&mut self) -> String {
        self.wait_for("joined", Duration::from_secs(20))["participant_id"].as_str().unwrap_or_default().to_owned()
    }

    /// SIGTERM, then its exit status and its `left` report.
    pub fn stop(mut self) -> (ExitStatus, Value) {
        crate::process::signal(self.child.id(), "TERM");
        let status = crate::process::wait_exit(&mut self.child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("bot {} did not leave within 10 s of SIGTERM", self.name));
        let left = self.wait_for("left", Duration::from_secs(2));
        (status, left)
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        crate::process::kill(&mut self.child);
    }
}

/// `tessera bot --subscribers N`: the load generator, running. Its JSON report (the
/// `--report` file) and its stderr are read by [`Subscribers::finish`].
pub struct Subscribers {
    child: Child,
    report: std::path::PathBuf,
    _dir: tempfile::TempDir,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Subscribers {
    /// `BIN bot --url URL --api-key KEY ARGS… --report FILE` (ARGS with `--room`,
    /// `--subscribers`…), with no `TESSERA_TOKEN` inherited.
    pub fn start(bin: impl AsRef<Path>, url: &str, api_key: &str, args: &[&str]) -> Subscribers {
        use std::io::Read;
        let dir = tempfile::tempdir().expect("temp dir");
        let report = dir.path().join("report.json");
        let mut child = Command::new(bin.as_ref())
            .args(["bot", "--url", url, "--api-key", api_key])
            .args(args)
            .arg("--report")
            .arg(&report)
            .env_remove("TESSERA_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tessera bot --subscribers starts");
        let mut pipe = child.stderr.take().expect("stderr piped");
        // Read while it runs, so that a full pipe never stalls it.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Subscribers { child, report, _dir: dir, stderr: Some(stderr) }
    }

    /// Waits up to `timeout` for the run to end; its report and stderr. Panics if it fails.
    pub fn finish(mut self, timeout: Duration) -> (Value, String) {
        let status = crate::process::wait_exit(&mut self.child, timeout).unwrap_or_else(|| {
            crate::process::kill(&mut self.child);
            panic!("the load generator did not finish within {timeout:?}")
        });
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        assert!(status.success(), "the load generator failed ({status}):\n{stderr}");
        let text = std::fs::read(&self.report).unwrap_or_else(|e| panic!("no report ({e}):\n{stderr}"));
        let report =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{stderr}"));
        (report, stderr)
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        crate::process::kill(&mut self.child);
    }
}
