//! Bad requests of every documented kind while a recording runs leave it whole.

use std::time::{Duration, Instant};

use tessera_testkit::analysis::probe;
use tessera_testkit::http::{self, Body};
use tessera_testkit::ports::free_port;
use tessera_testkit::tessera::TEST_KEY;

use super::{error, patch_json};
use crate::common;

/// Bad requests of every documented kind while a recording runs (malformed or unknown
/// layouts, `file://` destinations, an oversized body, malformed JSON, a stream to an ingest
/// that refuses connections) are answered with the documented errors, and the recording goes
/// on: completed, continuous, as long as it ran.
#[test]
fn bad_requests_while_recording_leave_the_recording_whole() {
    let server = common::node().start();
    let port = server.port;
    let created = http::post_json(
        port,
        "/v1/rooms/robust/recordings",
        Some(TEST_KEY),
        br#"{"layout":"grid","video":{"width":640,"height":360}}"#,
    );
    assert_eq!(created.status, 201, "{}\n{}", String::from_utf8_lossy(&created.body), server.stderr());
    let started = Instant::now();
    let id = created.json()["id"].as_str().unwrap().to_string();
    let path = std::path::PathBuf::from(created.json()["location"]["path"].as_str().unwrap());
    let rec_path = format!("/v1/recordings/{id}");
    let full = |resp: &http::Response| {
        let v = resp.json();
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        error(resp)
    };
    let still_recording = |after: &str| {
        let r = http::get(port, &rec_path, Some(TEST_KEY)).json();
        assert!(matches!(r["status"].as_str(), Some("starting" | "recording")), "after {after}: {r}");
    };

    // Layouts: invalid inline (the JSON path of the fault), unknown name, not a layout.
    let bad_layout =
        br#"{"layout":{"name":"bad","regions":[{"select":["rest"],"x":1.5,"y":0,"width":0.5,"height":0.5}]}}"#;
    assert_eq!(
        full(&patch_json(port, &rec_path, bad_layout)),
        (422, "invalid_layout".into(), "/layout/regions/0/x".into())
    );
    still_recording("an invalid layout");
    assert_eq!(
        full(&patch_json(port, &rec_path, br#"{"layout":"no-such-layout"}"#)),
        (422, "unknown_layout".into(), "/layout".into())
    );
    assert_eq!(full(&patch_json(port, &rec_path, br#"{"layout":[1,2]}"#)).0, 422);
    // Malformed JSON, a body over 1 MiB, the wrong media type.
    assert_eq!(full(&patch_json(port, &rec_path, br#"{"layout":"#)).1, "malformed_json");
    assert_eq!(full(&patch_json(port, &rec_path, br#"{"layout":"grid"} trailing"#)).0, 400);
    let mut big = br#"{"layout":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1536 * 1024));
    big.extend(br#""}"#);
    assert_eq!(full(&patch_json(port, &rec_path, &big)), (413, "payload_too_large".into(), String::new()));
    assert_eq!(full(&http::post_json(port, "/v1/rooms/robust/recordings", Some(TEST_KEY), &big)).0, 413);
    let text = vec![
        ("Authorization".to_string(), format!("Bearer {TEST_KEY}")),
        ("Content-Type".to_string(), "text/plain".to_string()),
    ];
    let wrong_type = http::send(port, "PATCH", &rec_path, &text, Body::Sized(br#"{"layout":"pip"}"#)).unwrap();
    assert_eq!(full(&wrong_type).1, "unsupported_media_type");
    still_recording("malformed and oversized bodies");

    // Streams of the same room: `file://` refused where it is given; a stream to an ingest
    // that refuses connections keeps reconnecting beside the recording.
    let file = br#"{"destinations":["rtmp://127.0.0.1:1/live/k","file:///etc/passwd"],"layout":"grid"}"#;
    assert_eq!(
        full(&http::post_json(port, "/v1/rooms/robust/streams", Some(TEST_KEY), file)),
        (422, "invalid_field".into(), "/destinations/1".into())
    );
    let refused = format!(r#"{{"destinations":["rtmp://127.0.0.1:{}/live/key"],"layout":"grid"}}"#, free_port());
    let stream = http::post_json(port, "/v1/rooms/robust/streams", Some(TEST_KEY), refused.as_bytes());
    assert_eq!(stream.status, 201, "{}", String::from_utf8_lossy(&stream.body));
    let stream_path = format!("/v1/streams/{}", stream.json()["id"].as_str().unwrap());
    let add_file = br#"{"add_destinations":["file:///etc/passwd"]}"#;
    assert_eq!(
        full(&patch_json(port, &stream_path, add_file)),
        (422, "invalid_field".into(), "/add_destinations/0".into())
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = http::get(port, &stream_path, Some(TEST_KEY)).json();
    assert!(matches!(s["destinations"][0]["status"].as_str(), Some("connecting" | "reconnecting" | "failed")), "{s}");
    assert_eq!(http::post_json(port, &format!("{stream_path}/stop"), Some(TEST_KEY), b"").status, 200);
    still_recording("a stream that never connected");

    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(http::post_json(port, &format!("{rec_path}/stop"), Some(TEST_KEY), b"").status, 200);
    let done = server.wait_recording_ended(&id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["error"].is_null(), "{done}");
    let p = probe(&path);
    eprintln!("ran {wall:.2} s; recorded {p:?}");
    assert_eq!(p.video_codec, "h264");
    assert!((p.duration - wall).abs() < 1.0, "{} s recorded of {wall:.2} s", p.duration);
    assert!(p.max_gap < 0.05, "a gap of {} s", p.max_gap);
    assert!((p.video_frames as f64 - p.duration * 30.0).abs() <= 3.0, "{} frames in {} s", p.video_frames, p.duration);
}
