//! Webhooks report a recording, signed with the API key, and a refused delivery is retried.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::http;
use tessera_testkit::tessera::TEST_KEY;
use tessera_testkit::webhook;

use crate::common;

#[test]
fn webhooks_report_a_recording_signed_and_retried() {
    let (hook_port, seen) = webhook::receiver();
    let server = common::node().env("TESSERA_WEBHOOK_URL", format!("http://127.0.0.1:{hook_port}/hooks")).start();
    let created = http::post_json(
        server.port,
        "/v1/rooms/hooked/recordings",
        Some(TEST_KEY),
        br#"{"video":{"width":320,"height":180}}"#,
    );
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(http::post_json(server.port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"").status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events: Vec<String> = seen.lock().unwrap().iter().map(|(e, _, _)| e.clone()).collect();
        if events.contains(&"recording.started".to_string()) && events.contains(&"recording.completed".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "webhooks seen: {events:?}\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    for (event, sig, body) in seen.lock().unwrap().iter() {
        // The signature is HMAC-SHA256 of the body with the API key.
        assert_eq!(sig, &tessera::webhooks::signature(TEST_KEY.as_bytes(), body), "{event}");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], event.as_str());
        assert_eq!(v["room"], "hooked");
        if event == "recording.completed" {
            assert_eq!(v["data"]["id"], id.as_str());
            assert_eq!(v["data"]["status"], "completed");
        }
    }
    // The first delivery was refused (503) and delivered again: started came through.
    assert!(server.stderr().contains("webhook delivery failed; retrying"));
}
