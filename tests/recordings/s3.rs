//! Recordings into S3 (SeaweedFS): a presigned `download_url` once completed, and SIGTERM
//! completing the object before the server exits.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::analysis::{ffprobe, probe};
use tessera_testkit::http::{self, Body};
use tessera_testkit::s3::Weed;
use tessera_testkit::tessera::TEST_KEY;

use crate::common;

/// Recording into S3 (SeaweedFS): once completed, the recording has a presigned
/// `download_url`, fresh on every GET, that a plain HTTP client can fetch without credentials.
#[test]
fn a_completed_s3_recording_has_a_presigned_download_url() {
    let weed = Weed::start();
    weed.create_bucket("calls");
    let endpoint = weed.endpoint();
    let server = common::node()
        .env("TESSERA_S3_BUCKET", "calls")
        .env("TESSERA_S3_PREFIX", "dl/")
        .env("TESSERA_DOWNLOAD_URL_TTL_S", "120")
        .envs(weed.aws_env())
        .start();
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
    let done = server.wait_recording_ended(&id, Duration::from_secs(30));
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
    let info = ffprobe(file.to_str().unwrap());
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

/// SIGTERM mid-recording into S3 (SeaweedFS): the server stops taking requests, ends the
/// recording properly and only then exits. Before the process is gone the object is complete
/// (no multipart upload left open), it plays up to within 1 s of the signal, and the
/// recording is `completed` without needing the next start's recovery.
#[test]
fn sigterm_completes_a_recording_into_s3_before_exiting() {
    let weed = Weed::start();
    weed.create_bucket("calls");
    let data = tempfile::tempdir().unwrap();
    let server = common::node()
        .data_dir(data.path())
        .args(["--shutdown-grace-s", "20"])
        .env("TESSERA_S3_BUCKET", "calls")
        .envs(weed.aws_env())
        .start();
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
    let p = probe(&file);
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
