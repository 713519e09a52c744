//! Recording a room through the REST API of the real `tessera serve` (local storage, the
//! embedded default): start, swap the layout, stop, and the file plays. Bad requests get the
//! documented errors while the recording goes on.

#[allow(dead_code)]
#[path = "../compositor/tests/common/analysis.rs"]
mod analysis;
mod common;
#[path = "../plugins/tests/common/mod.rs"]
mod s3;

use std::time::{Duration, Instant};

use common::http::{self, Body};
use common::server::{Server, TEST_KEY};
use serde_json::Value;

fn patch_json(port: u16, path: &str, body: &[u8]) -> http::Response {
    let mut headers = http::auth(Some(TEST_KEY));
    headers.push(("Content-Type".into(), "application/json".into()));
    http::send(port, "PATCH", path, &headers, Body::Sized(body)).expect("PATCH")
}

/// Polls the recording until it is `completed` or `failed` (30 s at most).
fn wait_ended(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http::get(server.port, &format!("/v1/recordings/{id}"), Some(TEST_KEY)).json();
        if r["status"] == "completed" || r["status"] == "failed" {
            return r;
        }
        assert!(Instant::now() < deadline, "never completed: {r}\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn error(resp: &http::Response) -> (u16, String, String) {
    let v = resp.json();
    (
        resp.status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["field"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn record_a_room_swap_its_layout_and_stop() {
    let server = Server::start();
    let port = server.port;
    let start = http::post_json(
        port,
        "/v1/rooms/demo/recordings",
        Some(TEST_KEY),
        br#"{"layout":"grid","video":{"width":640,"height":360,"fps":30,"bitrate_kbps":1000},"audio":{"bitrate_kbps":96}}"#,
    );
    assert_eq!(start.status, 201, "{}\n{}", String::from_utf8_lossy(&start.body), server.stderr());
    let rec = start.json();
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["room"], "demo");
    assert_eq!(rec["layout"], "grid");
    assert!(matches!(rec["status"].as_str(), Some("starting" | "recording")), "{rec}");
    assert_eq!(rec["location"]["type"], "local");
    let path = std::path::PathBuf::from(rec["location"]["path"].as_str().unwrap());

    // Bad requests are refused with the documented errors; the recording goes on.
    let bad = |body: &[u8]| error(&http::post_json(port, "/v1/rooms/demo/recordings", Some(TEST_KEY), body));
    assert_eq!(bad(br#"{"layout":"nope"}"#), (422, "unknown_layout".into(), "/layout".into()));
    assert_eq!(bad(br#"{"layout":{"regions":[{"x":1.5}]}}"#).0, 422);
    assert_eq!(bad(br#"{"video":{"width":641}}"#), (422, "invalid_field".into(), "/video/width".into()));
    assert_eq!(bad(br#"{"colour":"red"}"#).1, "invalid_body");
    assert_eq!(bad(br#"{"layout":"grid""#).1, "malformed_json");
    // Another size for a room whose program runs is a conflict.
    assert_eq!(bad(br#"{"video":{"width":1280,"height":720}}"#).0, 409);
    assert_eq!(http::post_json(port, "/v1/rooms/demo/recordings", None, b"{}").status, 401);
    assert_eq!(error(&http::get(port, "/v1/recordings/rec_nothing", Some(TEST_KEY))).0, 404);

    std::thread::sleep(Duration::from_secs(2));
    // The layout swap answers once the program shows it.
    let swapped = patch_json(port, &format!("/v1/recordings/{id}"), br#"{"layout":"pip"}"#);
    assert_eq!(swapped.status, 200, "{}", String::from_utf8_lossy(&swapped.body));
    assert_eq!(swapped.json()["layout"], "pip");
    assert_eq!(error(&patch_json(port, &format!("/v1/recordings/{id}"), br#"{"layout":7}"#)).0, 422);
    std::thread::sleep(Duration::from_secs(2));
    let running = http::get(port, &format!("/v1/recordings/{id}"), Some(TEST_KEY)).json();
    assert_eq!(running["status"], "recording", "{running}");
    assert!(running["duration_s"].as_f64().unwrap() > 3.0, "{running}");

    let stopped = http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(stopped.status, 200, "{}", String::from_utf8_lossy(&stopped.body));
    let done = wait_ended(&server, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["bytes"].as_u64().unwrap() > 10_000, "{done}");
    assert!(done.get("download_url").is_none(), "local recordings have no download_url: {done}");
    assert!(done["ended_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{done}");
    // Stopping twice is a conflict.
    let again = http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(error(&again).0, 409);

    // The file is where the resource says, and it plays.
    let info = analysis::ffprobe(path.to_str().unwrap());
    let video = info.video.expect("video");
    assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", Some(640), Some(360)));
    assert_eq!(info.audio.map(|a| a.codec), Some("aac".into()));
    assert!(info.duration > 3.5, "{} s", info.duration);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), done["bytes"].as_u64().unwrap());
    let list = http::get(port, "/v1/recordings?room=demo", Some(TEST_KEY)).json();
    assert_eq!(list["recordings"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        http::get(port, "/v1/recordings?room=other", Some(TEST_KEY)).json()["recordings"],
        serde_json::json!([])
    );
}

/// The server killed (SIGKILL) mid-recording and started again on the same data directory:
/// the recording is still listed, marked as ended by the crash, and its file is recovered up
/// to the moment of the kill.
#[test]
fn a_recording_survives_a_server_kill() {
    let data = tempfile::tempdir().unwrap();
    let with_data = |cmd: &mut std::process::Command, _: &std::path::Path| {
        cmd.args(["--api-key", TEST_KEY, "--data-dir"]).arg(data.path());
    };
    let first = Server::start_with(with_data);
    let created = http::post_json(
        first.port,
        "/v1/rooms/crash/recordings",
        Some(TEST_KEY),
        br#"{"video":{"width":640,"height":360}}"#,
    );
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let id = created.json()["id"].as_str().unwrap().to_string();
    let path = std::path::PathBuf::from(created.json()["location"]["path"].as_str().unwrap());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let recorded = started.elapsed().as_secs_f64();
    first.stop_with("KILL");
    assert!(!path.exists(), "nothing is complete before recovery");

    let second = Server::start_with(with_data);
    // `stopping` while start-up recovery finishes the file, then `completed` up to the kill.
    let rec = http::get(second.port, &format!("/v1/recordings/{id}"), Some(TEST_KEY)).json();
    assert!(matches!(rec["status"].as_str(), Some("stopping" | "completed")), "{rec}");
    assert!(rec["error"].as_str().is_some_and(|e| e.contains("server stopped")), "{rec}");
    let rec = wait_ended(&second, &id);
    assert_eq!(rec["status"], "completed", "{rec}");
    assert!(rec["error"].as_str().is_some_and(|e| e.contains("completed up to that moment")), "{rec}");
    assert!(path.exists(), "recovery finished the file before saying so");
    assert_eq!(rec["bytes"].as_u64(), Some(std::fs::metadata(&path).unwrap().len()), "{rec}");
    let info = analysis::ffprobe(path.to_str().unwrap());
    assert_eq!(info.video.map(|v| v.codec), Some("h264".into()));
    // Up to the last whole fragment before the kill (the program starts ~0.3 s after the
    // request, fragments are 0.5 s).
    assert!(
        info.duration > recorded - 1.6 && info.duration <= recorded + 0.1,
        "{} s of {recorded:.1} s",
        info.duration
    );
}

#[test]
fn webhooks_report_a_recording_signed_and_retried() {
    let (hook_port, seen) = common::webhooks::receiver();
    let server = Server::start_with(|cmd, dir| {
        cmd.args(["--api-key", TEST_KEY, "--data-dir"])
            .arg(dir.join("data"))
            .env("TESSERA_WEBHOOK_URL", format!("http://127.0.0.1:{hook_port}/hooks"));
    });
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

/// Recording into S3 (SeaweedFS): once completed, the recording has a presigned
/// `download_url`, fresh on every GET, that a plain HTTP client can fetch without credentials.
#[test]
fn a_completed_s3_recording_has_a_presigned_download_url() {
    let weed = s3::Weed::start();
    weed.create_bucket("calls");
    let endpoint = weed.endpoint();
    let server = Server::start_with(|cmd, dir| {
        cmd.args(["--api-key", TEST_KEY, "--data-dir"])
            .arg(dir.join("data"))
            .env("TESSERA_S3_BUCKET", "calls")
            .env("TESSERA_S3_PREFIX", "dl/")
            .env("TESSERA_DOWNLOAD_URL_TTL_S", "120")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
    });
    let port = server.port;
    let created =
        http::post_json(port, "/v1/rooms/dl/recordings", Some(TEST_KEY), br#"{"video":{"width":320,"height":180}}"#);
    assert_eq!(created.status, 201, "{}\n{}", String::from_utf8_lossy(&created.body), server.stderr());
    let id = created.json()["id"].as_str().unwrap().to_string();
    let key = created.json()["location"]["key"].as_str().unwrap().to_string();
    assert_eq!(key, format!("dl/dl/{id}.mp4"));
    std::thread::sleep(Duration::from_secs(3));
    let running = http::get(port, &format!("/v1/recordings/{id}"), Some(TEST_KEY)).json();
    assert!(running.get("download_url").is_none(), "no URL before the object is whole: {running}");
    assert_eq!(http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"").status, 200);
    let done = wait_ended(&server, &id);
    assert_eq!(done["status"], "completed", "{done}");
    let url = done["download_url"].as_str().unwrap_or_else(|| panic!("no download_url: {done}")).to_string();
    // Nothing is left open in the bucket: the program stopping right after the recording
    // once started its sink again, and with it a second, empty upload.
    assert!(weed.uploads("calls").is_empty(), "{:?}", weed.uploads("calls"));
    // Path-style on the configured endpoint, valid for the configured time.
    let rest = url.strip_prefix(&format!("{endpoint}/calls/{key}?")).unwrap_or_else(|| panic!("{url}"));
    assert!(rest.contains("X-Amz-Expires=120"), "{url}");
    assert!(rest.contains("X-Amz-Signature="), "{url}");

    // A plain GET (no credentials) returns exactly the object: an MP4 that plays.
    let weed_port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let target = &url[endpoint.len()..];
    let got = http::send(weed_port, "GET", target, &[], Body::None).expect("GET download_url");
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let (object, _) = weed.get("calls", &key);
    assert_eq!(got.body.len() as u64, done["bytes"].as_u64().unwrap());
    assert!(got.body == object, "the download is the object");
    assert_eq!(&got.body[4..8], b"ftyp");
    let file = server.dir.path().join("downloaded.mp4");
    std::fs::write(&file, &got.body).unwrap();
    let info = analysis::ffprobe(file.to_str().unwrap());
    assert_eq!(info.video.map(|v| (v.codec, v.width, v.height)), Some(("h264".into(), Some(320), Some(180))));
    assert!(info.duration > 2.0, "{} s", info.duration);

    // The signature is checked: a tampered one is refused by the store.
    let forged = target.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(http::send(weed_port, "GET", &forged, &[], Body::None).unwrap().status, 403);
    // Signed afresh on every answer, in lists too; never for local recordings, never logged.
    std::thread::sleep(Duration::from_millis(1100));
    let again = http::get(port, &format!("/v1/recordings/{id}"), Some(TEST_KEY)).json();
    assert_ne!(again["download_url"].as_str().unwrap(), url, "a new signature");
    let list = http::get(port, "/v1/recordings?room=dl", Some(TEST_KEY)).json();
    assert!(list["recordings"][0]["download_url"].as_str().is_some(), "{list}");
    assert!(!server.stderr().contains("X-Amz-Signature"), "a presigned URL is in the logs");
    let state = std::fs::read_to_string(server.data_dir().join(format!("state/recordings/{id}.json"))).unwrap();
    assert!(!state.contains("download_url"), "{state}");
}

/// Bad requests of every documented kind while a recording runs (malformed or unknown
/// layouts, `file://` destinations, an oversized body, malformed JSON, a stream to an ingest
/// that refuses connections) are answered with the documented errors, and the recording goes
/// on: completed, continuous, as long as it ran.
#[test]
fn bad_requests_while_recording_leave_the_recording_whole() {
    let server = Server::start();
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
    let refused =
        format!(r#"{{"destinations":["rtmp://127.0.0.1:{}/live/key"],"layout":"grid"}}"#, common::server::free_port());
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
    let done = wait_ended(&server, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["error"].is_null(), "{done}");
    let p = s3::probe(&path);
    eprintln!("ran {wall:.2} s; recorded {p:?}");
    assert_eq!(p.video_codec, "h264");
    assert!((p.duration - wall).abs() < 1.0, "{} s recorded of {wall:.2} s", p.duration);
    assert!(p.max_gap < 0.05, "a gap of {} s", p.max_gap);
    assert!((p.video_frames as f64 - p.duration * 30.0).abs() <= 3.0, "{} frames in {} s", p.video_frames, p.duration);
}

/// SIGTERM mid-recording into S3 (SeaweedFS): the server stops taking requests, ends the
/// recording properly and only then exits. Before the process is gone the object is complete
/// (no multipart upload left open), it plays up to within 1 s of the signal, and the
/// recording is `completed` without needing the next start's recovery.
#[test]
fn sigterm_completes_a_recording_into_s3_before_exiting() {
    let weed = s3::Weed::start();
    weed.create_bucket("calls");
    let endpoint = weed.endpoint();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(|cmd, _| {
        cmd.args(["--api-key", TEST_KEY, "--shutdown-grace-s", "20", "--data-dir"])
            .arg(data.path())
            .env("TESSERA_S3_BUCKET", "calls")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
    });
    let created = http::post_json(
        server.port,
        "/v1/rooms/term/recordings",
        Some(TEST_KEY),
        br#"{"video":{"width":640,"height":360}}"#,
    );
    assert_eq!(created.status, 201, "{}\n{}", String::from_utf8_lossy(&created.body), server.stderr());
    let started = Instant::now();
    let id = created.json()["id"].as_str().unwrap().to_string();
    let key = created.json()["location"]["key"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(5));
    let ran = started.elapsed().as_secs_f64();
    let (status, log) = server.stop_with_log("TERM");
    let stopped_in = started.elapsed().as_secs_f64() - ran;
    assert_eq!(status.code(), Some(0), "{status}\n{log}");
    assert!(log.contains("recordings: 1 completed, 0 failed, 0 unfinished"), "{log}");

    // The object was completed before the exit: whole, and no upload left open.
    assert!(weed.uploads("calls").is_empty(), "an unfinished multipart upload: {:?}\n{log}", weed.uploads("calls"));
    let (body, _) = weed.get("calls", &key);
    let file = data.path().join("downloaded.mp4");
    std::fs::write(&file, &body).unwrap();
    let p = s3::probe(&file);
    eprintln!("ran {ran:.2} s, exited {stopped_in:.2} s after SIGTERM; the object holds {p:?}");
    assert_eq!(p.video_codec, "h264");
    assert_eq!(p.audio_codec.as_deref(), Some("aac"));
    // Within 1 s of the signal: the program starts about 0.3 s after the request, and the
    // recording goes on until the stop has reached it (a moment after the signal).
    assert!((p.duration - ran).abs() < 1.0, "{} s recorded, signalled after {ran:.2} s", p.duration);
    assert!(p.max_gap < 0.05, "a gap of {} s", p.max_gap);
    // Its metadata says so, with the object's size: nothing is left for a recovery.
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.path().join(format!("state/recordings/{id}.json"))).unwrap())
            .unwrap();
    assert_eq!(state["status"], "completed", "{state}");
    assert!(state["error"].is_null(), "{state}");
    assert_eq!(state["bytes"].as_u64(), Some(body.len() as u64), "{state}");
    assert!(!data.path().join("spool").read_dir().is_ok_and(|mut d| d.next().is_some()), "spool left behind");
}
