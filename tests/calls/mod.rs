//! The calls of `sfu_calls.rs`, one module per concern, and what they share: Chromium on the
//! web client, its DevTools page, the REST API.

mod codecs;
mod events;
mod screen_share;
mod subscription;

use std::time::Duration;

use serde_json::Value;
use tessera_testkit::cdp::Page;
use tessera_testkit::chromium::Browser;
use tessera_testkit::http;
use tessera_testkit::tessera::TEST_KEY as KEY;

use crate::common::{participants, token};

/// Chromium on the web client in `room` as `name`, with extra page options and flags.
fn open(port: u16, room: &str, name: &str, options: &str, flags: &[&str]) -> Browser {
    let url =
        format!("http://127.0.0.1:{port}/rooms/{room}?token={}&name={name}{options}", token(port, KEY, room, name));
    Browser::open(&url, flags)
}

/// The page of `room` in `b`, once its web client has joined.
fn devtools(b: &Browser, room: &str) -> Page {
    let mut page = b.page(&format!("/rooms/{room}"));
    page.wait_for("typeof tesseraClient === 'object' && !!tesseraClient.me", Duration::from_secs(30));
    page
}

fn get(port: u16, path: &str) -> Value {
    let r = http::get(port, path, Some(KEY));
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The latest `getStats` summary a participant's page sent (JSON null until one came).
fn page_stats(sfu: &tessera_sfu::Sfu, room: &str, name: &str) -> Value {
    participants(sfu, room)
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.stats.lock().unwrap().clone())
        .unwrap_or(Value::Null)
}

fn frames_of(stats: &Value, track: &str) -> f64 {
    stats["tracks"][track]["framesDecoded"].as_f64().unwrap_or(0.0)
}
