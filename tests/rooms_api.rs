//! `GET /v1/rooms`, `GET /v1/rooms/{room}` and `GET /v1/rooms/{room}/preview.jpg` on the
//! in-process app: participants with their token identity, running recordings, the program's
//! preview as a JPEG, and the documented errors.

mod common;

use std::time::{Duration, Instant};

use common::app::App;
use serde_json::Value;
use tessera_testkit::analysis::{close, decode_jpeg};
use tessera_testkit::http;

const KEY: &str = "rooms-test-api-key-0123456789";

fn error(resp: &http::Response) -> (u16, String) {
    (resp.status, resp.json()["error"]["code"].as_str().unwrap_or("").to_string())
}

#[test]
fn rooms_show_participants_recordings_and_a_preview() {
    let app = App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();

    // The key is required, and nothing is going on yet.
    assert_eq!(error(&http::get(port, "/v1/rooms", None)), (401, "unauthorized".into()));
    assert_eq!(error(&http::get(port, "/v1/rooms/lobby", Some("wrong"))), (401, "unauthorized".into()));
    assert_eq!(http::get(port, "/v1/rooms", Some(KEY)).json(), serde_json::json!({ "rooms": [] }));
    let missing = http::get(port, "/v1/rooms/nobody-here", Some(KEY));
    assert_eq!(error(&missing), (404, "not_found".into()));
    assert!(missing.json()["error"]["message"].as_str().unwrap().contains("nobody-here"));
    assert_eq!(error(&http::get(port, "/v1/rooms/bad%20name", Some(KEY))), (400, "bad_request".into()));
    assert_eq!(error(&http::get(port, "/v1/rooms/nobody-here/preview.jpg", Some(KEY))), (404, "not_found".into()));

    // A participant (as the SFU's signalling makes one) shows with its token's identity.
    let bob = app.sfu.room("lobby").join("Bob".into(), None).unwrap();
    bob.set_identity("bob".into());
    let lobby = http::get(port, "/v1/rooms/lobby", Some(KEY)).json();
    let p = &lobby["participants"][0];
    assert_eq!(
        (p["identity"].as_str(), p["name"].as_str(), p["speaking"].as_bool()),
        (Some("bob"), Some("Bob"), Some(false))
    );
    assert_eq!(p["tracks"], serde_json::json!([]));
    assert!(lobby["program"].is_null() && lobby["recordings"] == serde_json::json!([]));
    // No program runs: the preview says so.
    let no_program = http::get(port, "/v1/rooms/lobby/preview.jpg", Some(KEY));
    assert_eq!(error(&no_program), (409, "no_program".into()));
    assert!(no_program.json()["error"]["message"].as_str().unwrap().contains("start a recording or a stream"));

    // A recording of an empty room: the room is listed with it and its program.
    let rec = http::post_json(port, "/v1/rooms/stage/recordings", Some(KEY), br#"{"layout":"grid"}"#);
    assert_eq!(rec.status, 201, "{}", String::from_utf8_lossy(&rec.body));
    let id = rec.json()["id"].as_str().unwrap().to_string();
    let rooms = http::get(port, "/v1/rooms", Some(KEY)).json();
    let names: Vec<&str> = rooms["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lobby", "stage"]);
    let stage = &rooms["rooms"][1];
    assert_eq!(stage["recordings"][0]["id"].as_str(), Some(id.as_str()));
    assert_eq!((stage["program"]["width"].as_u64(), stage["program"]["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(stage["program"]["preview_url"].as_str(), Some("/v1/rooms/stage/preview.jpg"));

    // The preview: a JPEG of the program (the grid's black background), renewed every second.
    assert_eq!(error(&http::get(port, "/v1/rooms/stage/preview.jpg", None)), (401, "unauthorized".into()));
    let mut sequences = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let still = http::get(port, "/v1/rooms/stage/preview.jpg", Some(KEY));
        assert_eq!(still.status, 200, "{}", String::from_utf8_lossy(&still.body));
        assert_eq!(still.header("content-type"), Some("image/jpeg"));
        assert_eq!(still.header("cache-control"), Some("no-store"));
        let frame = decode_jpeg(&still.body, 64, 36);
        assert!(close(frame.color_at(640.0, 360.0, 1280, 720), 0x000000), "a black program");
        sequences.push(still.header("x-preview-sequence").unwrap().parse::<u64>().unwrap());
        std::thread::sleep(Duration::from_millis(250));
    }
    sequences.dedup();
    assert!(sequences.len() >= 4, "new stills at least every second: {sequences:?}");

    // Stopped: the recording leaves the room, whose program stops; the room goes away.
    let stop = http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(KEY), b"");
    assert_eq!(stop.status, 200, "{}", String::from_utf8_lossy(&stop.body));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http::get(port, "/v1/rooms/stage", Some(KEY));
        if resp.status == 404 {
            break;
        }
        let room: Value = resp.json();
        assert!(Instant::now() < deadline, "the stopped recording's room stayed: {room}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(error(&http::get(port, "/v1/rooms/stage/preview.jpg", Some(KEY))), (404, "not_found".into()));
    let rooms = http::get(port, "/v1/rooms", Some(KEY)).json();
    assert_eq!(rooms["rooms"].as_array().unwrap().len(), 1);
}
