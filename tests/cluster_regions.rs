//! Regions in a cluster: three `tessera serve` processes on one `redis-server`, two labelled
//! `eu` and one `us`. A participant token asked for with `"region"` carries a join URL on a
//! node of that region, and the join works through it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tessera_testkit::http;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::Node;

mod common;
use common::cluster::{IDS, KEY, get, index, post};

const REGIONS: [&str; 3] = ["eu", "eu", "us"];

/// A token for `identity` in `room`, asked through `node` with `body`'s extra fields.
fn token(node: &Node, room: &str, extra: Value) -> Value {
    let mut body = json!({"identity": "alice"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    post(node, &format!("/v1/rooms/{room}/tokens"), body)
}

/// The node whose URL starts `join_url`, checking the response names the same node.
fn joined_node<'a>(nodes: &'a [Node], answer: &Value) -> &'a Node {
    let url = answer["join_url"].as_str().unwrap_or_else(|| panic!("a join_url: {answer}"));
    let id = answer["node"].as_str().unwrap_or_else(|| panic!("a node: {answer}"));
    let node = &nodes[index(id)];
    assert!(url.starts_with(&format!("{}/rooms/", node.url())), "{url} is on {id}");
    node
}

#[test]
fn tokens_with_a_region_join_through_a_node_of_that_region() {
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id).args(["--region", REGIONS[index(id)]]));
    let listed = get(&nodes[1], "/v1/nodes");
    for n in listed["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap();
        assert_eq!(n["region"], REGIONS[index(id)], "{n}");
    }

    // Asked through an `eu` node, a `us` token names the `us` node; and the other way round.
    let us = token(&nodes[0], "r1", json!({"region": "us"}));
    assert_eq!(us["region"], "us", "{us}");
    assert_eq!(joined_node(&nodes, &us).port, nodes[2].port);
    for through in &nodes {
        let eu = token(through, "r1", json!({"region": "eu"}));
        assert_eq!(eu["region"], "eu", "{eu}");
        assert_ne!(joined_node(&nodes, &eu).port, nodes[2].port, "{eu}");
    }
    // No region, or one no node has: the least loaded node anywhere (all are idle here).
    for extra in [json!({}), json!({"region": "ap-south"})] {
        let any = token(&nodes[2], "r1", extra);
        assert!(IDS.contains(&any["node"].as_str().unwrap()), "{any}");
        joined_node(&nodes, &any);
    }
    // A region that is not a label is refused, naming the field.
    let r = http::post_json(nodes[0].port, "/v1/rooms/r1/tokens", KEY, br#"{"identity":"a","region":"eu west"}"#);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["field"], "/region", "{}", String::from_utf8_lossy(&r.body));

    // The join URL works as given: its page loads, and its node takes the token's join.
    let url = us["join_url"].as_str().unwrap();
    let path = url.strip_prefix(&nodes[2].url()).unwrap();
    let page = http::get(nodes[2].port, path, None);
    assert_eq!(page.status, 200, "GET {url}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = runtime.block_on(async {
        let ws = format!("ws://127.0.0.1:{}/v1/rtc", nodes[2].port);
        let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.expect("WebSocket");
        let hello = json!({"type": "join", "room": "r1", "token": us["token"]});
        socket.send(tokio_tungstenite::tungstenite::Message::text(hello.to_string())).await.expect("send join");
        let answer = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("an answer");
        let text = answer.expect("a message").expect("a message").into_text().expect("text");
        serde_json::from_str::<Value>(&text).expect("JSON")
    });
    assert_eq!(answer["type"], "joined", "{answer}");
}
