//! Janus's plain HTTP API (the Janus protocol over `janus.transport.http`), as much of it as the
//! VideoRoom mode needs: a session (`create`), a handle on a plugin (`attach`), messages to
//! the handle with an optional JSEP, the session's events by long poll (`GET /janus/SESSION`),
//! keepalives, and `destroy`.
//!
//! A message is answered either at once (`success` with the plugin's data, e.g.
//! `listparticipants`) or with an `ack` and later an `event` of the same transaction (e.g.
//! `join`, `publish`, `start`); [`JanusSession::message`] waits for whichever comes. Events of no
//! transaction (`webrtcup`, `media`, `hangup`, …) are kept for [`JanusSession::next_event`].
//! Nothing Janus sends is trusted: a reply without the field we need is an error naming it,
//! and Janus's own errors (`janus: error`, a plugin's `error_code`) come back as
//! [`BotError::Refused`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bot::{BotError, HTTP_TIMEOUT};
use crate::http_client::HttpsClient;

/// Janus answers a long poll after at most 30 s (with a `keepalive` when nothing happened).
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(45);
/// Janus ends a session after 60 s without a request (its default `session_timeout`).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(20);
/// How long a message's `event` may take after its `ack` (a `join`, a `publish`, a `start`).
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Events one long poll may bring back at once (`?maxev=`).
const MAX_EVENTS: u32 = 16;

/// A JSEP: an SDP offer or answer.
#[derive(Debug, Clone)]
pub struct Jsep {
    /// `offer` or `answer`.
    pub kind: String,
    pub sdp: String,
}

/// A plugin's reply to a message: its `plugindata.data`, and the JSEP it carried, if any.
#[derive(Debug)]
pub struct PluginReply {
    pub data: Value,
    pub jsep: Option<Jsep>,
}

/// A Janus session: its id, the long poll and keepalive tasks, and the events not yet taken.
pub struct JanusSession {
    http: HttpsClient,
    /// `http://host:port/janus/SESSION`.
    url: String,
    events: mpsc::UnboundedReceiver<Result<Value, BotError>>,
    /// Events read while waiting for a transaction, for [`JanusSession::next_event`].
    pending: VecDeque<Value>,
    tasks: [JoinHandle<()>; 2],
    next_transaction: u64,
}

impl JanusSession {
    /// Creates a session at `base` (`http://host:port/janus`) and starts its long poll and
    /// keepalives.
    pub async fn create(base: &str) -> Result<Self, BotError> {
        let http = crate::http_client::https_client()?;
        let reply = post(&http, base, &json!({ "janus": "create", "transaction": "create" })).await?;
        let id = success_id(&reply, "create")?;
        let url = format!("{base}/{id}");
        let (tx, events) = mpsc::unbounded_channel();
        let tasks = [
            tokio::spawn(long_poll(http.clone(), url.clone(), tx)),
            tokio::spawn(keepalive(http.clone(), url.clone())),
        ];
        Ok(JanusSession { http, url, events, pending: VecDeque::new(), tasks, next_transaction: 1 })
    }

    fn transaction(&mut self) -> String {
        self.next_transaction += 1;
        format!("tessera-bot-{}", self.next_transaction)
    }

    /// Attaches a handle to `plugin` (e.g. `janus.plugin.videoroom`); returns its id.
    pub async fn attach(&mut self, plugin: &str) -> Result<u64, BotError> {
        let transaction = self.transaction();
        let body = json!({ "janus": "attach", "plugin": plugin, "transaction": transaction });
        let reply = post(&self.http, &self.url, &body).await?;
        success_id(&reply, "attach")
    }

    /// Sends `body` to the plugin through `handle`, with `jsep` if given, and returns the
    /// plugin's reply: at once (`success`) or from the event of the same transaction.
    pub async fn message(&mut self, handle: u64, body: Value, jsep: Option<Jsep>) -> Result<PluginReply, BotError> {
        let transaction = self.transaction();
        let mut request = json!({ "janus": "message", "body": body, "transaction": transaction });
        if let Some(j) = jsep {
            // Our SDP carries every candidate: no trickle.
            request["jsep"] = json!({ "type": j.kind, "sdp": j.sdp, "trickle": false });
        }
        let what = body_request(&request);
        let reply = post(&self.http, &format!("{}/{handle}", self.url), &request).await?;
        match reply["janus"].as_str() {
            Some("success") => plugin_reply(&reply, &what),
            Some("ack") => {
                let event = self.event_of(&transaction, &what).await?;
                plugin_reply(&event, &what)
            }
            Some("error") => Err(janus_error(&reply)),
            other => Err(BotError::Signalling(format!("Janus answered `{what}` with {other:?}, not success or ack"))),
        }
    }

    /// The event answering `transaction`; other events wait in `pending`.
    async fn event_of(&mut self, transaction: &str, what: &str) -> Result<Value, BotError> {
        let wait = async {
            loop {
                let event = self.receive().await?;
                if event["transaction"].as_str() == Some(transaction) {
                    match event["janus"].as_str() {
                        Some("error") => return Err(janus_error(&event)),
                        Some("event") => return Ok(event),
                        // Another `ack` (Janus sends one per transaction at most) or the like.
                        _ => continue,
                    }
                }
                self.pending.push_back(event);
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait)
            .await
            .map_err(|_| BotError::Signalling(format!("Janus did not answer `{what}` within {EVENT_TIMEOUT:?}")))?
    }

    /// The next event from the long poll (never a `keepalive`).
    async fn receive(&mut self) -> Result<Value, BotError> {
        self.events.recv().await.unwrap_or_else(|| Err(BotError::Signalling("Janus's long poll stopped".into())))
    }

    /// The session's next event that answers no message of ours (`webrtcup`, `media`,
    /// `slowlink`, `hangup`, `detached`, a plugin's own `event`, …).
    pub async fn next_event(&mut self) -> Result<Value, BotError> {
        match self.pending.pop_front() {
            Some(event) => Ok(event),
            None => self.receive().await,
        }
    }

    /// Ends the session (its handles with it) and stops polling.
    pub async fn destroy(mut self) {
        let transaction = self.transaction();
        let _ = post(&self.http, &self.url, &json!({ "janus": "destroy", "transaction": transaction })).await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for JanusSession {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Janus's `GET /info`: its version and settings, among them `local-ip`, the address its ICE
/// candidates are on.
pub async fn server_info(base: &str) -> Result<Value, BotError> {
    let http = crate::http_client::https_client()?;
    let request = hyper::Request::get(format!("{base}/info"))
        .body(Full::new(Bytes::new()))
        .map_err(BotError::signalling("info"))?;
    let info = send(&http, request, HTTP_TIMEOUT).await?;
    match info["janus"].as_str() {
        Some("server_info") => Ok(info),
        Some("error") => Err(janus_error(&info)),
        other => Err(BotError::Signalling(format!("Janus answered `info` with {other:?}, not server_info"))),
    }
}

/// The request a message carries (`join`, `publish`, …), for errors.
fn body_request(request: &Value) -> String {
    request["body"]["request"].as_str().unwrap_or("message").to_owned()
}

/// The `data.id` of a `success` (a new session's or handle's id).
fn success_id(reply: &Value, what: &str) -> Result<u64, BotError> {
    match reply["janus"].as_str() {
        Some("success") => reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| BotError::Signalling(format!("Janus's answer to `{what}` has no numeric data.id"))),
        Some("error") => Err(janus_error(reply)),
        other => Err(BotError::Signalling(format!("Janus answered `{what}` with {other:?}, not success"))),
    }
}

/// `plugindata.data` and `jsep` of a `success` or `event`; a plugin error is an error.
fn plugin_reply(reply: &Value, what: &str) -> Result<PluginReply, BotError> {
    let data = reply
        .pointer("/plugindata/data")
        .filter(|d| d.is_object())
        .cloned()
        .ok_or_else(|| BotError::Signalling(format!("Janus's answer to `{what}` has no plugindata.data")))?;
    if let Some(code) = data.get("error_code") {
        return Err(BotError::Refused {
            code: code.to_string(),
            message: data["error"].as_str().unwrap_or("no details").to_owned(),
        });
    }
    let jsep = match reply.get("jsep") {
        None | Some(Value::Null) => None,
        Some(j) => match (j["type"].as_str(), j["sdp"].as_str()) {
            (Some(kind), Some(sdp)) => Some(Jsep { kind: kind.to_owned(), sdp: sdp.to_owned() }),
            _ => {
                return Err(BotError::Signalling(format!("Janus's answer to `{what}` has a JSEP without type or sdp")));
            }
        },
    };
    Ok(PluginReply { data, jsep })
}

/// A `janus: error` reply as a refusal.
fn janus_error(reply: &Value) -> BotError {
    BotError::Refused {
        code: reply["error"]["code"].as_i64().map_or_else(|| "janus".to_owned(), |c| c.to_string()),
        message: reply["error"]["reason"].as_str().unwrap_or("no reason given").to_owned(),
    }
}

/// POSTs `body` as JSON to `url` and parses the JSON reply.
async fn post(http: &HttpsClient, url: &str, body: &Value) -> Result<Value, BotError> {
    let request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(BotError::signalling("a Janus request"))?;
    send(http, request, HTTP_TIMEOUT).await
}

/// Sends `request` and parses the JSON reply (any HTTP status but 200 is an error).
async fn send(http: &HttpsClient, request: hyper::Request<Full<Bytes>>, timeout: Duration) -> Result<Value, BotError> {
    let url = request.uri().to_string();
    let response = tokio::time::timeout(timeout, http.request(request))
        .await
        .map_err(|_| BotError::Signalling(format!("Janus at {url} did not answer within {timeout:?}")))?
        .map_err(BotError::signalling(format!("Janus at {url}")))?;
    let status = response.status();
    let bytes =
        response.into_body().collect().await.map_err(BotError::signalling(format!("Janus at {url}")))?.to_bytes();
    if status != hyper::StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes);
        return Err(BotError::Signalling(format!("Janus at {url}: HTTP {status}: {}", text.trim())));
    }
    serde_json::from_slice(&bytes).map_err(BotError::signalling(format!("Janus at {url}: not JSON")))
}

/// Polls the session's events and passes them on until the receiver is gone; an error ends
/// the poll (and is passed on).
async fn long_poll(http: HttpsClient, url: String, tx: mpsc::UnboundedSender<Result<Value, BotError>>) {
    let poll_url = format!("{url}?maxev={MAX_EVENTS}");
    loop {
        let request = match hyper::Request::get(&poll_url).body(Full::new(Bytes::new())) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(BotError::signalling("Janus's long poll")(e)));
                return;
            }
        };
        let events = match send(&http, request, LONG_POLL_TIMEOUT).await {
            Ok(Value::Array(events)) => events,
            Ok(event) => vec![event],
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        for event in events {
            if event["janus"].as_str() == Some("keepalive") {
                continue;
            }
            if tx.send(Ok(event)).is_err() {
                return;
            }
        }
    }
}

/// Keeps the session alive (a long poll does not count as activity).
async fn keepalive(http: HttpsClient, url: String) {
    let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
    tick.tick().await;
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let body = json!({ "janus": "keepalive", "transaction": format!("keepalive-{n}") });
        if let Err(e) = post(&http, &url, &body).await {
            tracing::warn!(%e, "Janus keepalive failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_errors() {
        let ok = json!({ "janus": "success", "data": { "id": 42 } });
        assert_eq!(success_id(&ok, "create").unwrap(), 42);
        assert!(success_id(&json!({ "janus": "success", "data": {} }), "create").is_err());
        let err = json!({ "janus": "error", "error": { "code": 458, "reason": "Session not found" } });
        let Err(BotError::Refused { code, message }) = success_id(&err, "attach") else { panic!("not refused") };
        assert_eq!((code.as_str(), message.as_str()), ("458", "Session not found"));

        let event = json!({
            "janus": "event",
            "plugindata": { "plugin": "janus.plugin.videoroom", "data": { "videoroom": "attached", "id": 7 } },
            "jsep": { "type": "offer", "sdp": "v=0" }
        });
        let reply = plugin_reply(&event, "join").unwrap();
        assert_eq!(reply.data["videoroom"], "attached");
        let jsep = reply.jsep.unwrap();
        assert_eq!((jsep.kind.as_str(), jsep.sdp.as_str()), ("offer", "v=0"));
        let refused =
            json!({ "janus": "event", "plugindata": { "data": { "error_code": 426, "error": "No such room" } } });
        let Err(BotError::Refused { code, message }) = plugin_reply(&refused, "join") else { panic!("not refused") };
        assert_eq!((code.as_str(), message.as_str()), ("426", "No such room"));
        assert!(plugin_reply(&json!({ "janus": "event" }), "join").is_err());
        assert!(plugin_reply(&json!({ "plugindata": { "data": {} }, "jsep": { "type": "offer" } }), "x").is_err());
    }
}
