//! What the binary's integration tests share beyond the test kit (`tessera-testkit`, where
//! the servers, the bot, Chromium and the media analysis are): this package's `tessera`
//! binary, and helpers that need the crates' own types (the in-process app, the SFU's
//! participants). A synthetic room program, and where a participant's tile is, come from the
//! compositor's test harness (`tessera_compositor::harness`, its feature `test-harness`).
#![allow(dead_code)]

pub mod app;
pub mod cluster;
pub mod observer;
pub mod players;

use std::sync::Arc;

use serde_json::json;
use tessera_sfu::{Participant, Sfu};
use tessera_testkit::http;
use tessera_testkit::tessera::{Node, NodeBuilder};

/// The `tessera` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A `tessera serve` node of this binary (`--api-key TEST_KEY`, its own port and data
/// directory), to configure and start.
pub fn node() -> NodeBuilder {
    Node::builder(BIN)
}

/// A participant token for `identity` (also its name) in `room`, minted with the API key.
pub fn token(port: u16, key: &str, room: &str, identity: &str) -> String {
    let body = json!({ "identity": identity, "name": identity }).to_string();
    let r = http::post_json(port, &format!("/v1/rooms/{room}/tokens"), Some(key), body.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().expect("a token").to_owned()
}

/// The participants of a room of the in-process SFU.
pub fn participants(sfu: &Sfu, room: &str) -> Vec<Arc<Participant>> {
    sfu.get_room(room).map(|r| r.participants()).unwrap_or_default()
}
