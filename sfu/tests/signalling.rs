//! Malformed SDP and signalling: each bad message gets an `error` to the client that sent it,
//! which stays in the room, and the call goes on for a Chromium participant.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tessera_testkit::chromium::Browser;
use tessera_testkit::poll::wait_until;
use tokio_tungstenite::tungstenite::Message;

/// Structurally an SDP offer (passes the quick checks) but no ICE credentials or fingerprint.
const NO_ICE: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sdp_gets_an_error_and_the_room_goes_on() {
    let server = start(None).await;
    let _alice = Browser::open(&format!("http://{}/rooms/sdp?token={TOKEN}&name=alice", server.addr), &[]);
    let sfu = server.sfu.clone();
    let alice_sends = || {
        participants(&sfu, "sdp")
            .iter()
            .find(|p| p.name == "alice")
            .map_or(0, |p| p.tracks().iter().map(|t| t.forwarder.received()).sum::<u64>())
    };
    assert!(wait_until(Duration::from_secs(30), || alice_sends() > 100).await, "alice publishes");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/rtc", server.addr)).await.expect("ws");
    ws.send(Message::text(format!(r#"{{"type":"join","room":"sdp","token":"{TOKEN}","name":"mallory"}}"#)))
        .await
        .unwrap();
    let bad = [
        (
            "publish_offer without ICE credentials",
            serde_json::json!({"type": "publish_offer", "sdp": NO_ICE, "tracks": []}),
        ),
        ("publish_offer that is no SDP", serde_json::json!({"type": "publish_offer", "sdp": "hello", "tracks": []})),
        (
            "subscribe_answer that is no answer",
            serde_json::json!({"type": "subscribe_answer", "sdp": "v=0\r\nm=audio"}),
        ),
        ("mute of a track that is not ours", serde_json::json!({"type": "mute", "track_id": "TR_nope", "muted": true})),
    ];
    for (what, msg) in &bad {
        ws.send(Message::text(msg.to_string())).await.unwrap();
        let err = loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer")
                .expect("open")
                .expect("frame");
            let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap_or("null")).unwrap_or_default();
            if v["type"] == "error" {
                break v;
            }
        };
        assert_eq!(err["fatal"], false, "{what}: {err}");
        assert!(
            err["code"].as_str().is_some_and(|c| !c.is_empty()) && !err["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {err}"
        );
        eprintln!("{what}: {} {}", err["code"], err["message"]);
    }
    // Still connected and in the room; alice goes on publishing.
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    let pong = loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("pong")
            .expect("open")
            .expect("frame");
        if m.to_text().unwrap_or("").contains("pong") {
            break true;
        }
    };
    assert!(pong);
    assert!(participants(&sfu, "sdp").iter().any(|p| p.name == "mallory"));
    let before = alice_sends();
    assert!(wait_until(Duration::from_secs(10), || alice_sends() > before + 100).await, "alice stopped");
}
