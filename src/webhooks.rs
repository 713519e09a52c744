//! Webhooks: every event is POSTed as JSON to `TESSERA_WEBHOOK_URL`, signed with
//! HMAC-SHA256 over the body (header `X-Tessera-Signature: sha256=<hex>`, keyed with the API
//! key), and retried with backoff until the receiver answers 2xx. Deliveries run on their own
//! task, in order; a slow or dead receiver never holds up the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::time::rfc3339;
use crate::tokens::hmac_sha256;

/// Attempts per event before it is dropped (and logged): about 2 minutes of retrying.
const ATTEMPTS: u32 = 8;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Events waiting for delivery at most; beyond that new events are dropped (and logged), so
/// a receiver that is down for long costs bounded memory.
pub const QUEUE: usize = 10_000;

/// Sends events to the configured URL; cheap to clone. Without a URL, events are dropped.
#[derive(Clone, Default)]
pub struct Webhooks {
    tx: Option<mpsc::Sender<Value>>,
    /// Events queued or being delivered.
    pending: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.tx.is_some() { "Webhooks(on)" } else { "Webhooks(off)" })
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let hex: String = hmac_sha256(key, body).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Webhooks {
    /// Starts delivering to `url` (must run inside a tokio runtime).
    pub fn start(url: String, key: Vec<u8>) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("TESSERA_WEBHOOK_URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err("TESSERA_WEBHOOK_URL: an http:// or https:// URL is needed".into());
        }
        let client = crate::http_client::https_client()?;
        let (tx, mut rx) = mpsc::channel::<Value>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let delivered = pending.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                deliver(&client, &uri, &key, event).await;
                delivered.fetch_sub(1, Ordering::Relaxed);
            }
        });
        Ok(Webhooks { tx: Some(tx), pending })
    }

    /// Queues `event` (e.g. `recording.completed`) about `room` with its `data`; never blocks.
    pub fn send(&self, event: &str, room: &str, data: Value) {
        if let Some(tx) = &self.tx {
            let body = json!({ "event": event, "room": room, "at": rfc3339(SystemTime::now()), "data": data });
            self.pending.fetch_add(1, Ordering::Relaxed);
            if tx.try_send(body).is_err() {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                tracing::error!(event, room, queued = QUEUE, "webhook dropped: the receiver is too far behind");
            }
        }
    }

    /// Waits until every queued event has been delivered (or given up on), or `deadline`.
    /// Returns how many are left.
    pub async fn drained(&self, deadline: Instant) -> usize {
        loop {
            let left = self.pending.load(Ordering::Relaxed);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn deliver<C>(client: &Client<C, Full<Bytes>>, uri: &hyper::Uri, key: &[u8], event: Value)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let body = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
    let name = event["event"].as_str().unwrap_or("").to_string();
    let sig = signature(key, &body);
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let request = hyper::Request::post(uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("X-Tessera-Event", name.as_str())
            .header("X-Tessera-Signature", sig.as_str())
            .body(Full::new(body.clone()));
        let outcome = match request {
            Ok(req) => match tokio::time::timeout(TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) if resp.status().is_success() => return,
                Ok(Ok(resp)) => format!("HTTP {}", resp.status()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".into(),
            },
            Err(e) => {
                tracing::warn!(event = %name, error = %e, "webhook request cannot be built");
                return;
            }
        };
        tracing::warn!(event = %name, attempt, error = %outcome, "webhook delivery failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY);
    }
    tracing::error!(event = %name, "webhook dropped after {ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(s, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[tokio::test]
    async fn only_http_urls() {
        assert!(Webhooks::start("ftp://x/y".into(), vec![1]).is_err());
        assert!(Webhooks::start("not a url".into(), vec![1]).is_err());
        assert!(Webhooks::start("http://127.0.0.1:9/hook".into(), vec![1]).is_ok());
    }
}
