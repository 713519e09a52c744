//! Three `tessera serve` nodes on one `redis-server`, for the cluster tests
//! (`tests/cluster*.rs`), and the requests they make of any node.

use std::time::Duration;

use serde_json::Value;
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::{Node, NodeBuilder, TEST_KEY};

pub const KEY: Option<&str> = Some(TEST_KEY);
/// The nodes' ids, in the order [`start`] returns them.
pub const IDS: [&str; 3] = ["n1", "n2", "n3"];

/// A node of the cluster on `redis`, to configure further. `--max-cpu 1.0`: the nodes share
/// one machine, so its CPU use says nothing about which of them is busier (placement goes by
/// programs and rooms).
pub fn node(redis: &Redis, id: &str) -> NodeBuilder {
    super::node().name(id).rtc_ports().args(["--redis-url", &redis.url(), "--node-id", id, "--max-cpu", "1.0"])
}

/// The three nodes made by `node(id)`, once the first lists all three `serving`.
pub fn start(node: impl Fn(&str) -> NodeBuilder) -> Vec<Node> {
    let nodes: Vec<Node> = IDS.iter().map(|id| node(id).start()).collect();
    wait_for("three serving nodes", Duration::from_secs(15), || {
        let listed = http::get(nodes[0].port, "/v1/nodes", KEY).json();
        let serving = listed["nodes"].as_array()?.iter().filter(|n| n["status"] == "serving").count();
        (serving == 3).then_some(())
    });
    nodes
}

/// The index in [`IDS`] of node `id`.
pub fn index(id: &str) -> usize {
    IDS.iter().position(|n| *n == id).unwrap_or_else(|| panic!("{id} is not a node of the cluster"))
}

/// `GET path` with the API key; must answer 200.
pub fn get(node: &Node, path: &str) -> Value {
    let r = http::get(node.port, path, KEY);
    assert_eq!(r.status, 200, "GET {path} on {}: {}", node.url(), String::from_utf8_lossy(&r.body));
    r.json()
}

/// `GET /v1/rooms/{room}` through `node` once it lists a participant named `name` (a bot's
/// name; its identity has a random suffix): a participant hosted by
/// another node than the room's home reaches the home's description within a sync round.
pub fn room_with(node: &Node, room: &str, name: &str) -> Value {
    wait_for(&format!("{name} in room {room}"), Duration::from_secs(10), || {
        let r = http::get(node.port, &format!("/v1/rooms/{room}"), KEY);
        let listed = r.status == 200 && r.json()["participants"].as_array()?.iter().any(|p| p["name"] == name);
        listed.then(|| r.json())
    })
}

/// `POST path` with a JSON body and the API key; must answer 200 or 201.
pub fn post(node: &Node, path: &str, body: Value) -> Value {
    let r = http::post_json(node.port, path, KEY, body.to_string().as_bytes());
    assert!(r.status == 200 || r.status == 201, "POST {path}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}
