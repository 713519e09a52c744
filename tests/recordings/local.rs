//! A local recording started, its layout swapped, stopped, and its file played; and one
//! that survives a kill of the server (SIGKILL), finished by the next start's recovery.

use std::time::{Duration, Instant};

use tessera_testkit::analysis::ffprobe;
use tessera_testkit::http;
use tessera_testkit::tessera::TEST_KEY;

use super::{error, patch_json};
use crate::common;

#[test]
fn record_a_room_swap_its_layout_and_stop() {
    let server = common::node().start();
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
    // Another size for a room whose program runs is a second rendition of it; it ends with
    // its recording, and the first one goes on.
    let other =
        http::post_json(port, "/v1/rooms/demo/recordings", Some(TEST_KEY), br#"{"video":{"width":1280,"height":720}}"#);
    assert_eq!(other.status, 201, "{}", String::from_utf8_lossy(&other.body));
    let other = other.json()["id"].as_str().expect("id").to_owned();
    let room = http::get(port, "/v1/rooms/demo", Some(TEST_KEY)).json();
    assert_eq!(room["program"]["renditions"].as_array().map(Vec::len), Some(2), "{room}");
    let stopped = http::post_json(port, &format!("/v1/recordings/{other}/stop"), Some(TEST_KEY), b"");
    assert_eq!(stopped.status, 200, "{}", String::from_utf8_lossy(&stopped.body));
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
    let done = server.wait_recording_ended(&id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["bytes"].as_u64().unwrap() > 10_000, "{done}");
    assert!(done.get("download_url").is_none(), "local recordings have no download_url: {done}");
    assert!(done["ended_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{done}");
    // Stopping twice is a conflict.
    let again = http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(error(&again).0, 409);

    // The file is where the resource says, and it plays.
    let info = ffprobe(path.to_str().unwrap());
    let video = info.video.expect("video");
    assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", Some(640), Some(360)));
    assert_eq!(info.audio.map(|a| a.codec), Some("aac".into()));
    assert!(info.duration > 3.5, "{} s", info.duration);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), done["bytes"].as_u64().unwrap());
    let list = http::get(port, "/v1/recordings?room=demo", Some(TEST_KEY)).json();
    assert_eq!(list["recordings"].as_array().map(Vec::len), Some(2), "this one and the rendition's");
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
    let with_data = common::node().data_dir(data.path());
    let first = with_data.clone().start();
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

    let second = with_data.start();
    // `stopping` while start-up recovery finishes the file, then `completed` up to the kill.
    let rec = http::get(second.port, &format!("/v1/recordings/{id}"), Some(TEST_KEY)).json();
    assert!(matches!(rec["status"].as_str(), Some("stopping" | "completed")), "{rec}");
    assert!(rec["error"].as_str().is_some_and(|e| e.contains("server stopped")), "{rec}");
    let rec = second.wait_recording_ended(&id, Duration::from_secs(30));
    assert_eq!(rec["status"], "completed", "{rec}");
    assert!(rec["error"].as_str().is_some_and(|e| e.contains("completed up to that moment")), "{rec}");
    assert!(path.exists(), "recovery finished the file before saying so");
    assert_eq!(rec["bytes"].as_u64(), Some(std::fs::metadata(&path).unwrap().len()), "{rec}");
    let info = ffprobe(path.to_str().unwrap());
    assert_eq!(info.video.map(|v| v.codec), Some("h264".into()));
    // Up to the last whole fragment before the kill (the program starts ~0.3 s after the
    // request, fragments are 0.5 s).
    assert!(
        info.duration > recorded - 1.6 && info.duration <= recorded + 0.1,
        "{} s of {recorded:.1} s",
        info.duration
    );
}
