//! A client sending garbage is dropped while the others carry on; a published track reaches a
//! recording hand-off consumer; WHIP rejects bad requests with JSON errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tessera_sfu::{KeyframeRequester, MediaHandoff, SenderReportInfo, TrackInfo};
use tessera_testkit::chromium::Browser;
use tessera_testkit::poll::wait_until;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Recorder {
    published: Mutex<Vec<TrackInfo>>,
    unpublished: Mutex<Vec<String>>,
    packets: Mutex<Vec<(String, u16, u32, u32)>>,
    reports: Mutex<u32>,
    keyframes: Mutex<Vec<KeyframeRequester>>,
}

impl MediaHandoff for Recorder {
    fn track_published(&self, track: &TrackInfo, keyframes: KeyframeRequester) {
        self.published.lock().unwrap().push(track.clone());
        keyframes.request();
        self.keyframes.lock().unwrap().push(keyframes);
    }
    fn track_unpublished(&self, track: &TrackInfo) {
        self.unpublished.lock().unwrap().push(track.track_id.clone());
    }
    fn rtp(&self, track_id: &str, packet: &[u8]) {
        if packet.len() >= 12 {
            let seq = u16::from_be_bytes([packet[2], packet[3]]);
            let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
            let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
            self.packets.lock().unwrap().push((track_id.to_owned(), seq, ts, ssrc));
        }
    }
    fn sender_report(&self, _track_id: &str, _report: &SenderReportInfo) {
        *self.reports.lock().unwrap() += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_client_is_dropped_and_the_call_goes_on_into_the_handoff() {
    let rec = Arc::new(Recorder::default());
    let server = start(Some(rec.clone() as Arc<dyn MediaHandoff>)).await;
    let url = |name: &str| format!("http://{}/rooms/robust?token={TOKEN}&name={name}", server.addr);
    let _a = Browser::open(&url("alice"), &[]);
    let _b = Browser::open(&url("bob"), &[]);
    let sfu = server.sfu.clone();
    assert!(wait_until(Duration::from_secs(60), || participants(&sfu, "robust").len() == 2).await);

    // Wrong token: refused with a fatal error.
    let ws_url = format!("ws://{}/v1/rtc", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("ws");
    ws.send(Message::text(r#"{"type":"join","room":"robust","token":"wrong"}"#)).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(reply.contains("unauthorized") && reply.contains("\"fatal\":true"), "{reply}");

    // A joined client that sends garbage: errors, then dropped.
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("ws");
    ws.send(Message::text(format!(r#"{{"type":"join","room":"robust","token":"{TOKEN}","name":"evil"}}"#)))
        .await
        .unwrap();
    let joined = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(joined.contains("\"joined\""), "{joined}");
    let garbage = [
        "not json at all".to_string(),
        r#"{"type":"publish_offer","sdp":"v=0 garbage"}"#.to_string(),
        r#"{"type":"publish_offer","sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=garbage\r\n"}"#.to_string(),
        r#"{"type":"subscribe_answer","sdp":"v=0\r\nm=audio"}"#.to_string(),
        "\u{0}\u{1}{{{{".repeat(100),
        r#"{"type":"candidate","target":"publish","candidate":{"candidate":"candidate:x"}}"#.to_string(),
    ];
    let mut errors = 0;
    let mut closed = false;
    for g in &garbage {
        if ws.send(Message::text(g.clone())).await.is_err() {
            closed = true;
            break;
        }
    }
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match msg {
            Ok(Message::Text(t)) if t.contains("\"error\"") => errors += 1,
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(errors >= 1, "garbage got no error");
    assert!(closed || errors >= 5, "garbage client was not dropped");
    assert!(
        wait_until(Duration::from_secs(10), || participants(&sfu, "robust").iter().all(|p| p.name != "evil")).await,
        "garbage client still in the room"
    );

    // The two browsers carry on decoding each other.
    let before: Vec<f64> = participants(&sfu, "robust").iter().map(|p| inbound(p, "video", "framesDecoded")).collect();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let ps = participants(&sfu, "robust");
            ps.len() == 2
                && ps.iter().all(|p| {
                    inbound(p, "video", "framesDecoded") >= 60.0 && inbound(p, "audio", "packetsReceived") >= 100.0
                })
        })
        .await,
        "browsers stopped"
    );
    let after: Vec<f64> = participants(&sfu, "robust").iter().map(|p| inbound(p, "video", "framesDecoded")).collect();
    eprintln!("frames decoded before/after the garbage client: {before:?} {after:?}");

    // Hand-off: four tracks (2 x audio + video) with continuous numbering per track.
    assert!(wait_until(Duration::from_secs(20), || rec.published.lock().unwrap().len() == 4).await);
    let published = rec.published.lock().unwrap().clone();
    for t in &published {
        let pkts: Vec<_> = rec.packets.lock().unwrap().iter().filter(|p| p.0 == t.track_id).cloned().collect();
        assert!(pkts.len() > 50, "{}: only {} packets handed over", t.track_id, pkts.len());
        assert!(pkts.iter().all(|p| p.3 == t.ssrc), "hand-off SSRC");
        // One continuous sequence space: every number from the first to the last arrives
        // (retransmissions may come out of order).
        let first = pkts[0].1;
        let span = pkts.iter().map(|p| p.1.wrapping_sub(first)).filter(|d| *d < 0x8000).max().unwrap_or(0) as usize + 1;
        let distinct: std::collections::HashSet<u16> = pkts.iter().map(|p| p.1).collect();
        let missing = span.saturating_sub(distinct.len());
        assert!(missing * 100 <= span, "{}: {missing} of {span} sequence numbers missing", t.track_id);
        assert!(
            t.mime_type.eq_ignore_ascii_case("audio/opus") || t.mime_type.eq_ignore_ascii_case("video/vp8"),
            "{}",
            t.mime_type
        );
    }
    drop(_a);
    assert!(
        wait_until(Duration::from_secs(30), || rec.unpublished.lock().unwrap().len() >= 2).await,
        "tracks of a closed browser were not unpublished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_rejects_bad_requests_with_json_errors() {
    let server = start(None).await;
    let client = |path: &str| format!("http://{}{path}", server.addr);
    let post = |auth: Option<&str>, ct: &str, body: &str| {
        let mut req = format!(
            "POST /whip/room1 HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(a) = auth {
            req.push_str(&format!("Authorization: Bearer {a}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        req
    };
    let _ = client;
    for (req, status, code) in [
        (post(None, "application/sdp", "v=0"), "401", "unauthorized"),
        (post(Some("nope"), "application/sdp", "v=0"), "401", "unauthorized"),
        (post(Some(TOKEN), "text/plain", "v=0"), "415", "unsupported_media_type"),
        (post(Some(TOKEN), "application/sdp", "hello"), "400", "bad_request"),
        (post(Some(TOKEN), "application/sdp", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\n"), "400", "bad_request"),
    ] {
        let resp = raw_http(server.addr, &req).await;
        assert!(resp.starts_with(&format!("HTTP/1.1 {status}")), "{resp}");
        assert!(resp.contains(&format!("\"code\":\"{code}\"")), "{resp}");
    }
    let resp = raw_http(server.addr, "PATCH /whip/room1/PA_1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    let resp = raw_http(server.addr, "GET /rooms/room1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 200") && resp.contains("/sfu/client.js"), "{resp}");
    // The room is empty again: failed WHIP sessions left nothing behind.
    assert!(participants(&server.sfu, "room1").is_empty());
}

async fn raw_http(addr: std::net::SocketAddr, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
