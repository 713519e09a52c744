//! Live streaming a room through the REST API of the real `tessera serve` to a real RTMP
//! server (nginx with its RTMP module): start, add and remove destinations while live, stop.
//! Stream keys never come back; bad URLs and presets get the documented errors.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::analysis::{assert_no_frame_lost, ffprobe, video_packet_times};
use tessera_testkit::http::{self, Body};
use tessera_testkit::rtmp::NginxRtmp;
use tessera_testkit::tessera::TEST_KEY;

fn patch_json(port: u16, path: &str, body: &str) -> http::Response {
    let mut headers = http::auth(Some(TEST_KEY));
    headers.push(("Content-Type".into(), "application/json".into()));
    http::send(port, "PATCH", path, &headers, Body::Sized(body.as_bytes())).expect("PATCH")
}

fn field_error(resp: &http::Response) -> (u16, String) {
    (resp.status, resp.json()["error"]["field"].as_str().unwrap_or("").to_string())
}

/// Polls the stream until every destination is live.
fn wait_all_live(port: u16, id: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = http::get(port, &format!("/v1/streams/{id}"), Some(TEST_KEY)).json();
        let dests = s["destinations"].as_array().cloned().unwrap_or_default();
        if dests.len() == n && dests.iter().all(|d| d["status"] == "live") {
            return s;
        }
        assert!(Instant::now() < deadline, "destinations never went live: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn stream_a_room_to_rtmp_and_change_destinations_while_live() {
    let nginx = NginxRtmp::start();
    let server = common::node().start();
    let port = server.port;
    let mut bodies = Vec::new();

    let body = format!(
        r#"{{"destinations":["{}"],"preset":"youtube","layout":"grid","video":{{"width":1280,"height":720,"bitrate_kbps":2500}}}}"#,
        nginx.url("first-SECRET1")
    );
    let created = http::post_json(port, "/v1/rooms/live/streams", Some(TEST_KEY), body.as_bytes());
    assert_eq!(created.status, 201, "{}\n{}", String::from_utf8_lossy(&created.body), server.stderr());
    bodies.push(String::from_utf8_lossy(&created.body).to_string());
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(created.json()["preset"], "youtube");
    let live = wait_all_live(port, &id, 1);
    assert_eq!(live["destinations"][0]["url"], format!("rtmp://127.0.0.1:{}/live/****", nginx.port));

    // Bad requests name the field; nothing else changes.
    let post = |b: &str| field_error(&http::post_json(port, "/v1/rooms/live/streams", Some(TEST_KEY), b.as_bytes()));
    assert_eq!(post(r#"{"destinations":["file:///etc/passwd"]}"#), (422, "/destinations/0".into()));
    assert_eq!(post(r#"{"destinations":["http://x/app/key"]}"#), (422, "/destinations/0".into()));
    assert_eq!(
        post(&format!(r#"{{"destinations":["{}"],"preset":"twitch"}}"#, nginx.url("x"))),
        (422, "/preset".into())
    );
    // The running 720p program is too big for IVS BASIC: refused before anything connects.
    let basic = format!(r#"{{"destinations":["{}"],"preset":"ivs-basic"}}"#, nginx.url("basic-SECRET3"));
    assert_eq!(post(&basic), (422, "/video/width".into()));
    assert!(nginx.recordings("basic-SECRET3").is_empty());

    // Add a second destination while live, then remove the first.
    let added = patch_json(
        port,
        &format!("/v1/streams/{id}"),
        &format!(r#"{{"add_destinations":["{}"]}}"#, nginx.url("second-SECRET2")),
    );
    assert_eq!(added.status, 200, "{}", String::from_utf8_lossy(&added.body));
    bodies.push(String::from_utf8_lossy(&added.body).to_string());
    let both = wait_all_live(port, &id, 2);
    let first_id = both["destinations"][0]["id"].as_u64().unwrap();
    // Prometheus sees them (no key needed on /metrics).
    let metrics = http::get(port, "/metrics", None);
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("tessera_destinations{status=\"live\"} 2"), "{text}");
    let fps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tessera_program_fps{room=\"live\"} "))
        .and_then(|v| v.parse().ok())
        .expect("program fps");
    assert!((fps - 30.0).abs() < 1.5, "program fps {fps}");
    assert!(!text.contains("SECRET"));
    let probe = ffprobe(&nginx.url("second-SECRET2"));
    let video = probe.video.expect("video on the second ingest");
    assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", Some(1280), Some(720)));
    std::thread::sleep(Duration::from_secs(2));
    let removed = patch_json(port, &format!("/v1/streams/{id}"), &format!(r#"{{"remove_destinations":[{first_id}]}}"#));
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json()["destinations"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        field_error(&patch_json(port, &format!("/v1/streams/{id}"), r#"{"remove_destinations":[999999]}"#)).0,
        422
    );
    std::thread::sleep(Duration::from_secs(2));

    let stopped = http::post_json(port, &format!("/v1/streams/{id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(stopped.status, 200);
    bodies.push(String::from_utf8_lossy(&stopped.body).to_string());
    assert_eq!(stopped.json()["status"], "stopped");
    assert_eq!(http::post_json(port, &format!("/v1/streams/{id}/stop"), Some(TEST_KEY), b"").status, 409);
    bodies.push(String::from_utf8_lossy(&http::get(port, "/v1/streams", Some(TEST_KEY)).body).to_string());

    // Both ingests received a gapless stream; the first stopped earlier.
    let first = nginx.recordings("first-SECRET1");
    let second = nginx.recordings("second-SECRET2");
    assert_eq!((first.len(), second.len()), (1, 1));
    let n1 = assert_no_frame_lost(&video_packet_times(&first[0]), 30.0, "first");
    let n2 = assert_no_frame_lost(&video_packet_times(&second[0]), 30.0, "second");
    assert!(n1 > 90 && n2 > 90, "{n1} and {n2} frames");
    for b in &bodies {
        assert!(!b.contains("SECRET"), "a stream key leaked: {b}");
    }
    assert!(!server.stderr().contains("SECRET"), "a stream key is in the logs");
}

/// Streams survive a restart of the server, SIGKILL included: one stopped before and one
/// still live at the kill are both listed afterwards, the live one as stopped by the crash;
/// only masked URLs were ever written to disk.
#[test]
fn streams_survive_a_server_kill() {
    let nginx = NginxRtmp::start();
    let data = tempfile::tempdir().unwrap();
    let with_data = common::node().data_dir(data.path());
    let first = with_data.clone().start();
    let start = |key: &str| {
        let body = format!(r#"{{"destinations":["{}"],"video":{{"width":640,"height":360}}}}"#, nginx.url(key));
        let created = http::post_json(first.port, "/v1/rooms/keep/streams", Some(TEST_KEY), body.as_bytes());
        assert_eq!(created.status, 201, "{}\n{}", String::from_utf8_lossy(&created.body), first.stderr());
        created.json()["id"].as_str().unwrap().to_string()
    };
    let stopped_id = start("stopped-SECRET1");
    let live_id = start("killed-SECRET2");
    wait_all_live(first.port, &stopped_id, 1);
    wait_all_live(first.port, &live_id, 1);
    let stopped = http::post_json(first.port, &format!("/v1/streams/{stopped_id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(stopped.status, 200);
    let stopped_before = stopped.json();
    // Long enough for a snapshot of the live stream's figures.
    std::thread::sleep(Duration::from_millis(2500));
    let before_kill = http::get(first.port, &format!("/v1/streams/{live_id}"), Some(TEST_KEY)).json();
    assert_eq!(before_kill["status"], "active", "{before_kill}");
    first.stop_with("KILL");

    let second = with_data.clone().start();
    let port = second.port;
    let killed = http::get(port, &format!("/v1/streams/{live_id}"), Some(TEST_KEY));
    assert_eq!(killed.status, 200, "{}", String::from_utf8_lossy(&killed.body));
    let killed = killed.json();
    assert_eq!(killed["status"], "stopped", "{killed}");
    assert!(killed["error"].as_str().is_some_and(|e| e.contains("server stopped")), "{killed}");
    assert!(
        killed["ended_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t >= before_kill["started_at"].as_str().unwrap()),
        "{killed}"
    );
    assert_eq!((&killed["room"], &killed["started_at"]), (&before_kill["room"], &before_kill["started_at"]));
    let dest = &killed["destinations"][0];
    assert_eq!(dest["url"], format!("rtmp://127.0.0.1:{}/live/****", nginx.port), "{killed}");
    assert_eq!(dest["id"], before_kill["destinations"][0]["id"]);
    // Figures from the last snapshot, at most a couple of seconds before the kill.
    assert!(dest["bytes_sent"].as_u64().unwrap() > 0, "{killed}");

    // The stream stopped before the kill is as it was.
    let kept = http::get(port, &format!("/v1/streams/{stopped_id}"), Some(TEST_KEY)).json();
    for field in ["status", "started_at", "ended_at", "destinations"] {
        let mut a = kept[field].clone();
        let mut b = stopped_before[field].clone();
        if field == "destinations" {
            // `live_for` was the connection's age when the answer was made.
            a[0]["live_for"] = Value::Null;
            b[0]["live_for"] = Value::Null;
        }
        assert_eq!(a, b, "{field}: {kept} vs {stopped_before}");
    }
    assert!(kept["error"].is_null(), "{kept}");
    let list = http::get(port, "/v1/streams?room=keep", Some(TEST_KEY)).json();
    assert_eq!(list["streams"].as_array().map(Vec::len), Some(2), "{list}");
    // Ended streams cannot be changed or stopped again.
    assert_eq!(http::post_json(port, &format!("/v1/streams/{live_id}/stop"), Some(TEST_KEY), b"").status, 409);
    assert_eq!(field_error(&patch_json(port, &format!("/v1/streams/{live_id}"), r#"{"layout":"pip"}"#)).0, 409);

    // Stream keys were never written to disk, and the data survives a clean restart too.
    for file in std::fs::read_dir(data.path().join("state/streams")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!text.contains("SECRET"), "a stream key on disk: {text}");
    }
    assert!(second.stop_with("TERM").success());
    let third = with_data.start();
    let again = http::get(third.port, &format!("/v1/streams/{live_id}"), Some(TEST_KEY)).json();
    assert_eq!(again["ended_at"], killed["ended_at"], "{again}");
}
