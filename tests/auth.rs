//! Authorisation against the real `tessera serve`: the REST API takes only the API key, and
//! joining a call (WebSocket signalling at `/v1/rtc`, WHIP at `/whip/{room}`) only a valid,
//! unexpired participant token signed by this server for that room. Every refusal is the
//! documented one: 401 `unauthorized` JSON over HTTP, a fatal `unauthorized` error message
//! (then the socket closes) over the WebSocket. A token's `publish`/`subscribe` grants hold:
//! 403 `forbidden` over WHIP, a `forbidden` error (the participant stays) over the WebSocket.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tessera::time::unix_now;
use tessera::tokens::{Claims, TokenSigner};
use tessera_testkit::http::{self, Body};
use tessera_testkit::tessera::TEST_KEY;
use tokio_tungstenite::tungstenite::Message;

const ROOM: &str = "auth";

fn mint(port: u16, room: &str, body: &str) -> String {
    let resp = http::post_json(port, &format!("/v1/rooms/{room}/tokens"), Some(TEST_KEY), body.as_bytes());
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["token"].as_str().unwrap().to_string()
}

fn assert_unauthorized(resp: &http::Response, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", String::from_utf8_lossy(&resp.body));
    assert!(
        resp.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: {:?}",
        resp.headers
    );
    let v = resp.json();
    assert_eq!(v["error"]["code"], "unauthorized", "{what}: {v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Joins `room` over the WebSocket with `token`; returns the first message and the socket.
async fn ws_join(port: u16, room: &str, token: &str) -> (Value, Ws) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/v1/rtc")).await.expect("WebSocket connects");
    let join = json!({"type": "join", "room": room, "token": token, "name": "Eve"}).to_string();
    ws.send(Message::Text(join.into())).await.expect("send join");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an answer within 10 s") {
            Some(Ok(Message::Text(t))) => return (serde_json::from_str(&t).expect("JSON message"), ws),
            Some(Ok(_)) => continue,
            other => panic!("no answer to join: {other:?}"),
        }
    }
}

/// Whether the server closes the socket within 5 s.
async fn closes(mut ws: Ws) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
            Err(_) => return false,
        }
    }
}

/// The next `error` message (other messages are skipped).
async fn next_error(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("JSON message");
                if v["type"] == "error" {
                    return v;
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("no error message: {other:?}"),
        }
    }
}

/// Whether a message of `kind` arrives within 10 s.
async fn next_of(ws: &mut Ws, kind: &str) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                if serde_json::from_str::<Value>(&t).is_ok_and(|v| v["type"] == kind) {
                    return true;
                }
            }
            Ok(Some(Ok(_))) => continue,
            _ => return false,
        }
    }
}

fn whip_post(port: u16, room: &str, bearer: Option<&str>) -> http::Response {
    let mut headers = http::auth(bearer);
    headers.push(("Content-Type".into(), "application/sdp".into()));
    http::send(port, "POST", &format!("/whip/{room}"), &headers, Body::Sized(b"v=0\r\n")).expect("WHIP POST")
}

#[test]
fn only_valid_tokens_for_the_room_join_a_call_and_only_the_api_key_opens_the_api() {
    let server = common::node().start();
    let port = server.port;

    // The API key mints tokens; nothing else does.
    let body = br#"{"identity":"eve"}"#;
    let tokens = format!("/v1/rooms/{ROOM}/tokens");
    assert_unauthorized(&http::post_json(port, &tokens, None, body), "no key");
    assert_unauthorized(&http::post_json(port, &tokens, Some("wrong-key-0123456789abcdef"), body), "wrong key");
    let good = mint(port, ROOM, r#"{"identity":"eve"}"#);
    let short = mint(port, ROOM, r#"{"identity":"eve","ttl_s":1}"#);
    let minted_at = Instant::now();
    let other_room = mint(port, "elsewhere", r#"{"identity":"eve"}"#);
    // A participant token is not an API key.
    assert_unauthorized(&http::post_json(port, &tokens, Some(&good), body), "participant token on the API");
    assert_unauthorized(&http::get(port, "/v1/recordings", Some(&good)), "participant token on the API");

    // Forgeries: signed with another key, or claims changed after signing (another room,
    // a later expiry), or no signature at all.
    let claims = Claims {
        room: ROOM.into(),
        identity: "eve".into(),
        name: "Eve".into(),
        publish: true,
        subscribe: true,
        exp: unix_now() + 3600,
        jti: String::new(),
    };
    let foreign = TokenSigner::from_key([42; 32]).mint(&claims);
    let mut parts: Vec<String> = other_room.split('.').map(str::to_string).collect();
    let mut edited: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
    edited["room"] = json!(ROOM);
    parts[1] = B64.encode(edited.to_string());
    let re_roomed = parts.join(".");
    let unsigned = format!("{}.{}.", parts[0], parts[1]);

    // Expiry: the shortest token the API mints (1 s) has run out.
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(minted_at.elapsed()));
    let refused: [(&str, &str); 8] = [
        ("empty token", ""),
        ("API key as token", TEST_KEY),
        ("garbage", "tt1.garbage.garbage"),
        ("expired", &short),
        ("signed with another key", &foreign),
        ("claims edited after signing", &re_roomed),
        ("no signature", &unsigned),
        ("token for another room", &other_room),
    ];

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for (what, token) in refused {
            let (msg, ws) = ws_join(port, ROOM, token).await;
            assert_eq!(msg["type"], "error", "{what}: {msg}");
            assert_eq!(msg["code"], "unauthorized", "{what}: {msg}");
            assert_eq!(msg["fatal"], true, "{what}: {msg}");
            assert!(closes(ws).await, "{what}: the socket stays open after a fatal error");
        }
        // The valid token joins its room (and only its room: see above).
        let (msg, _) = ws_join(port, ROOM, &good).await;
        assert_eq!(msg["type"], "joined", "{msg}");
        assert_eq!(msg["room"], ROOM, "{msg}");

        // Grants: a watch-only token may not publish, a publish-only one may not subscribe.
        let viewer = mint(port, ROOM, r#"{"identity":"viewer","publish":false}"#);
        let (msg, mut ws) = ws_join(port, ROOM, &viewer).await;
        assert_eq!(msg["type"], "joined", "{msg}");
        let offer = json!({"type": "publish_offer", "sdp": "v=0\r\n", "tracks": []}).to_string();
        ws.send(Message::Text(offer.into())).await.unwrap();
        let refusal = next_error(&mut ws).await;
        assert_eq!(
            (refusal["code"].as_str(), refusal["fatal"].as_bool()),
            (Some("forbidden"), Some(false)),
            "{refusal}"
        );
        ws.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
        assert!(next_of(&mut ws, "pong").await, "the viewer stays in the call");
        let sender = mint(port, ROOM, r#"{"identity":"sender","subscribe":false}"#);
        let (_, mut ws) = ws_join(port, ROOM, &sender).await;
        ws.send(Message::Text(json!({"type": "subscribe", "participants": null}).to_string().into())).await.unwrap();
        assert_eq!(next_error(&mut ws).await["code"], "forbidden");
    });
    let viewer = mint(port, ROOM, r#"{"identity":"viewer2","publish":false}"#);
    let refused_whip = whip_post(port, ROOM, Some(&viewer));
    assert_eq!(refused_whip.status, 403, "{}", String::from_utf8_lossy(&refused_whip.body));
    assert_eq!(refused_whip.json()["error"]["code"], "forbidden");

    // WHIP: no bearer, then every refused token, 401 JSON before the offer is looked at.
    assert_unauthorized(&whip_post(port, ROOM, None), "WHIP without a token");
    for (what, token) in refused.iter().filter(|(_, t)| !t.is_empty()) {
        assert_unauthorized(&whip_post(port, ROOM, Some(token)), &format!("WHIP, {what}"));
    }
    let delete =
        http::send(port, "DELETE", &format!("/whip/{ROOM}/PA_1"), &http::auth(Some(&other_room)), Body::None).unwrap();
    assert_unauthorized(&delete, "WHIP DELETE, token for another room");
    // The valid token gets past authorisation (to the offer, which is not real SDP).
    let accepted = whip_post(port, ROOM, Some(&good));
    assert_ne!(accepted.status, 401, "{}", String::from_utf8_lossy(&accepted.body));
    assert_ne!(accepted.json()["error"]["code"], "unauthorized");

    // Tokens never reach the logs.
    let log = server.stderr();
    for (what, token) in refused.iter().copied().filter(|(_, t)| t.len() > 20).chain([("valid", good.as_str())]) {
        assert!(!log.contains(token), "{what} token in the logs");
    }
}
