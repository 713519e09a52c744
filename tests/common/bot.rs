//! Runs `tessera bot` (a synthetic WebRTC participant) against a test server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server::TEST_KEY;

pub struct Bot {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Bot {
    /// `tessera bot --url http://127.0.0.1:PORT --room ROOM --name NAME --api-key TEST_KEY ARGS…`.
    pub fn start(port: u16, room: &str, name: &str, args: &[&str]) -> Bot {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["bot", "--url", &format!("http://127.0.0.1:{port}"), "--room", room, "--name", name])
            .args(["--api-key", TEST_KEY])
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

    /// Waits for the bot's `event` line (`joined`, `published`, `left`).
    pub fn wait_for(&mut self, event: &str, timeout: Duration) -> Value {
        if let Some(v) = self.seen.iter().find(|v| v["event"] == event) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == event {
                        return v;
                    }
                }
                Err(_) => panic!("bot {} never said `{event}` (said {:?})", self.name, self.seen),
            }
        }
    }

    /// The bot's participant id once joined.
    pub fn participant_id(&mut self) -> String {
        self.wait_for("joined", Duration::from_secs(20))["participant_id"].as_str().unwrap_or_default().to_owned()
    }

    /// SIGTERM, then its exit status and its `left` report.
    pub fn stop(mut self) -> (ExitStatus, Value) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "bot {} did not leave within 10 s of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        };
        let left = self.wait_for("left", Duration::from_secs(2));
        (status, left)
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
