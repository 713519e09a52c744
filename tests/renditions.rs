//! Renditions through the REST API: two bots publish red (VP8) and blue (H.264); a 1280x720
//! grid recording and a 720x1280 portrait recording of the room run at once. Each file has
//! its own size and layout (red and blue side by side, then one above the other), the room
//! shows both renditions sharing one decoder per camera, a layout swap of the portrait
//! recording leaves the grid alone, and the second rendition goes with its recording.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_testkit::analysis::{BLUE, RED, assert_color, decode_frames, ffprobe};
use tessera_testkit::http::{self, Body};
use tessera_testkit::poll::wait_for;
use tessera_testkit::tessera::TEST_KEY;

const KEY: Option<&str> = Some(TEST_KEY);

fn post(port: u16, path: &str, body: Value) -> Value {
    let r = http::post_json(port, path, KEY, body.to_string().as_bytes());
    assert!(r.status == 200 || r.status == 201, "POST {path}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

fn get(port: u16, path: &str) -> Value {
    let r = http::get(port, path, KEY);
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Stops a recording and waits for its file; returns the file's path.
fn finish(port: u16, id: &str) -> PathBuf {
    post(port, &format!("/v1/recordings/{id}/stop"), json!({}));
    let done = wait_for("the recording to complete", Duration::from_secs(60), || {
        let r = get(port, &format!("/v1/recordings/{id}"));
        assert_ne!(r["status"], "failed", "{r}");
        (r["status"] == "completed").then_some(r)
    });
    PathBuf::from(done["location"]["path"].as_str().expect("a local recording"))
}

#[test]
fn a_grid_and_a_portrait_recording_of_one_room_share_its_decoders() {
    let node = common::node().start();
    let mut red = node.bot(
        "duo",
        "red",
        &["--color", "#ff0000", "--codec", "vp8", "--size", "320x240", "--fps", "15", "--silent"],
    );
    red.wait_for("published", Duration::from_secs(30));
    let mut blue =
        node.bot("duo", "blue", &["--color", "#0000ff", "--codec", "h264", "--size", "320x240", "--fps", "15"]);
    blue.wait_for("published", Duration::from_secs(30));

    let grid = post(node.port, "/v1/rooms/duo/recordings", json!({"layout": "grid"}));
    let portrait = post(
        node.port,
        "/v1/rooms/duo/recordings",
        json!({"layout": "portrait-grid", "video": {"width": 720, "height": 1280, "bitrate_kbps": 1500}}),
    );
    let (grid_id, portrait_id) = (grid["id"].as_str().unwrap().to_owned(), portrait["id"].as_str().unwrap().to_owned());

    // One program, two renditions, one decoder per camera.
    let room = wait_for("both renditions composing", Duration::from_secs(15), || {
        let room = get(node.port, "/v1/rooms/duo");
        let renditions = room["program"]["renditions"].as_array()?.clone();
        (renditions.len() == 2 && renditions.iter().all(|r| r["frames"].as_u64() > Some(30))).then_some(room)
    });
    let program = &room["program"];
    assert_eq!((program["width"].as_u64(), program["height"].as_u64()), (Some(1280), Some(720)), "{room}");
    let sizes: Vec<(u64, u64)> = program["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["width"].as_u64().unwrap(), r["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, vec![(1280, 720), (720, 1280)], "{room}");
    assert_eq!(program["decoders"], json!({"video": 2, "audio": 2}), "each input decoded once: {room}");
    std::thread::sleep(Duration::from_secs(3));

    // The portrait recording's layout changes; the grid's stays.
    let mut headers = http::auth(KEY);
    headers.push(("Content-Type".into(), "application/json".into()));
    let swap = http::send(
        node.port,
        "PATCH",
        &format!("/v1/recordings/{portrait_id}"),
        &headers,
        Body::Sized(br#"{"layout":"single"}"#),
    )
    .expect("PATCH");
    assert_eq!(swap.status, 200, "{}", String::from_utf8_lossy(&swap.body));
    let swapped_at = get(node.port, &format!("/v1/recordings/{portrait_id}"))["duration_s"].as_f64().unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let portrait_file = finish(node.port, &portrait_id);
    let room = wait_for("the portrait rendition to go", Duration::from_secs(10), || {
        let room = get(node.port, "/v1/rooms/duo");
        (room["program"]["renditions"].as_array()?.len() == 1).then_some(room)
    });
    assert_eq!(room["program"]["decoders"]["video"], 2, "{room}");
    std::thread::sleep(Duration::from_secs(1));
    let grid_file = finish(node.port, &grid_id);
    red.stop();
    blue.stop();

    let v = ffprobe(grid_file.to_str().unwrap()).video.expect("grid video");
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    let probe = ffprobe(portrait_file.to_str().unwrap());
    let v = probe.video.expect("portrait video");
    assert_eq!((v.width, v.height), (Some(720), Some(1280)));
    assert!(probe.audio.is_some(), "the room's audio is in the portrait file too");

    // Grid at 1280x720: red on the left, blue on the right, all along (4:3 cameras in 16:9
    // cells, so the centres are well inside the pictures).
    let frames = decode_frames(&grid_file, 320, 180);
    let end = frames.last().map(|f| f.pts).unwrap_or_default();
    assert_color(&frames, 1.0, end - 0.5, (320.0, 360.0), (1280, 720), RED, "red in the grid");
    assert_color(&frames, 1.0, end - 0.5, (960.0, 360.0), (1280, 720), BLUE, "blue in the grid");
    // Portrait at 720x1280: red above blue, then `single` shows blue (the one speaking) alone.
    let frames = decode_frames(&portrait_file, 180, 320);
    assert_color(&frames, 1.0, swapped_at - 0.2, (360.0, 320.0), (720, 1280), RED, "red on top");
    assert_color(&frames, 1.0, swapped_at - 0.2, (360.0, 960.0), (720, 1280), BLUE, "blue below");
    assert_color(&frames, swapped_at + 0.2, swapped_at + 1.5, (360.0, 640.0), (720, 1280), BLUE, "blue alone");
}
