//! A signalling-only participant (a blocking WebSocket on its own thread): joins a room over
//! `/v1/rtc`, publishes nothing, never answers subscribe offers, and keeps every server
//! message with the time it arrived, so tests can check what the protocol tells the others.

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::stream::MaybeTlsStream;
use tokio_tungstenite::tungstenite::{self, Message};

pub struct Observer {
    pub id: String,
    out: mpsc::Sender<String>,
    incoming: mpsc::Receiver<(Instant, Value)>,
    /// Every message so far, in order, with its arrival time.
    pub seen: Vec<(Instant, Value)>,
}

impl Observer {
    /// Joins `room` on the server at `port` with `token`.
    pub fn join(port: u16, room: &str, token: &str, name: &str) -> Observer {
        let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}/v1/rtc")).expect("WebSocket connects");
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let (out, out_rx) = mpsc::channel::<String>();
        let (in_tx, incoming) = mpsc::channel();
        out.send(json!({"type": "join", "room": room, "token": token, "name": name}).to_string()).unwrap();
        std::thread::spawn(move || run(ws, out_rx, in_tx));
        let mut o = Observer { id: String::new(), out, incoming, seen: Vec::new() };
        let joined = o.wait("joined", Duration::from_secs(10), |m| m["type"] == "joined");
        o.id = joined["participant_id"].as_str().unwrap().to_owned();
        o
    }

    pub fn send(&self, msg: Value) {
        self.out.send(msg.to_string()).expect("the observer's socket is open");
    }

    fn pull(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(m) => {
                self.seen.push(m);
                true
            }
            Err(_) => false,
        }
    }

    /// The first message so far (or within `timeout`) that `pred` accepts.
    pub fn wait(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        let mut from = 0;
        loop {
            if let Some((_, m)) = self.seen[from..].iter().find(|(_, m)| pred(m)) {
                return m.clone();
            }
            from = self.seen.len();
            assert!(Instant::now() < end, "no {what} within {timeout:?}; got {:#?}", self.types());
            self.pull(end);
        }
    }

    /// The first `n` messages of one `type`, waiting up to `timeout` for them.
    pub fn wait_count(&mut self, t: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let end = Instant::now() + timeout;
        loop {
            let found: Vec<Value> = self.of_type(t).into_iter().map(|(_, m)| m).take(n).collect();
            if found.len() == n {
                return found;
            }
            assert!(Instant::now() < end, "{} of {n} {t} within {timeout:?}; got {:#?}", found.len(), self.types());
            self.pull(end);
        }
    }

    /// Collects messages for `d`.
    pub fn listen(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.pull(end);
        }
    }

    /// Messages of one `type`, with arrival times.
    pub fn of_type(&self, t: &str) -> Vec<(Instant, Value)> {
        self.seen.iter().filter(|(_, m)| m["type"] == t).cloned().collect()
    }

    fn types(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|(_, m)| {
                let mut m = m.clone();
                if m.get("sdp").is_some() {
                    m["sdp"] = json!("…");
                }
                m.to_string()
            })
            .collect()
    }
}

fn run(
    mut ws: tungstenite::WebSocket<MaybeTlsStream<TcpStream>>,
    out: mpsc::Receiver<String>,
    incoming: mpsc::Sender<(Instant, Value)>,
) {
    loop {
        while let Ok(text) = out.try_recv() {
            if ws.send(Message::text(text)).is_err() {
                return;
            }
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                if let Ok(v) = serde_json::from_str::<Value>(&t)
                    && incoming.send((Instant::now(), v)).is_err()
                {
                    return;
                }
            }
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
