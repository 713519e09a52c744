//! The room's program as a participant (MCU mode): `PATCH /v1/rooms/{room}`
//! `{"publish_program": true}` starts the program of a room with two publishing bots and
//! publishes it into the room as the participant `program`. Two subscribers that ask for the
//! program only (`tessera bot --subscribers 2 --program`) each receive exactly its two tracks,
//! one video (the program's H.264) and one audio (the mix in Opus), without loss or freeze,
//! although two people publish in the room. `false` takes it out, and the program, which
//! nothing else uses, stops. Tokens cannot claim the identity `program`.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tessera_testkit::http::{self, Body};
use tessera_testkit::poll::wait_for;
use tessera_testkit::tessera::{Node, TEST_KEY};

const KEY: Option<&str> = Some(TEST_KEY);

fn patch(node: &Node, body: &Value) -> http::Response {
    let mut headers = http::auth(KEY);
    headers.push(("Content-Type".into(), "application/json".into()));
    let body = body.to_string();
    http::send(node.port, "PATCH", "/v1/rooms/mcu", &headers, Body::Sized(body.as_bytes())).expect("PATCH")
}

#[test]
fn the_program_published_into_the_room_reaches_subscribers_that_ask_for_it() {
    let node = common::node().start();
    let mut red = node.bot("mcu", "red", &["--color", "#ff0000", "--size", "320x180", "--fps", "15"]);
    red.wait_for("published", Duration::from_secs(30));
    let mut blue = node.bot("mcu", "blue", &["--color", "#0000ff", "--size", "320x180", "--fps", "15"]);
    blue.wait_for("published", Duration::from_secs(30));

    // `program` is reserved.
    let refused = http::post_json(node.port, "/v1/rooms/mcu/tokens", KEY, br#"{"identity":"program"}"#);
    assert_eq!((refused.status, refused.json()["error"]["field"].as_str()), (422, Some("/identity")));
    // A PATCH that asks for nothing names what it may ask for.
    let empty = patch(&node, &json!({}));
    assert_eq!((empty.status, empty.json()["error"]["field"].as_str()), (422, Some("/")), "{:?}", empty.json());
    let wrong = patch(&node, &json!({"publish_program": "yes"}));
    assert!((400..500).contains(&wrong.status), "{}", wrong.status);

    let published = patch(&node, &json!({"publish_program": true}));
    assert_eq!(published.status, 200, "{}", String::from_utf8_lossy(&published.body));
    let room = published.json();
    assert_eq!(room["publish_program"], true, "{room}");
    assert!(!room["program"].is_null(), "the program runs: {room}");
    let people: Vec<&str> =
        room["participants"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(people.len(), 2, "the program is not one of the people: {room}");
    // Asked again: nothing changes.
    assert_eq!(patch(&node, &json!({"publish_program": true})).status, 200);

    let load = node.subscribers("mcu", "viewer", 2, 6, &["--program", "--report-every", "2"]);
    let (report, stderr) = load.finish(Duration::from_secs(40));
    assert_eq!(report["totals"]["connected"], 2, "{}\n{stderr}", report["totals"]);
    for s in report["subscribers"].as_array().unwrap() {
        let tracks = s["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), 2, "the program's two tracks only: {s}\n{}", node.stderr());
        for kind in ["video", "audio"] {
            let t = tracks.iter().find(|t| t["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {s}"));
            let packets = t["packets"].as_u64().unwrap_or(0);
            // 6 s of 30 fps 720p and of 20 ms Opus frames, less the time to connect.
            assert!(packets > 100, "{kind}: {t}");
            let lost = t["lost"].as_u64().unwrap_or(0) as f64 / packets as f64;
            assert!(lost < 0.01, "{kind}: {t}");
            if kind == "video" {
                assert!(t["frames"].as_u64().unwrap_or(0) > 60, "video frames: {t}");
                assert_eq!(t["freezes"], 0, "{t}");
            }
        }
    }

    // Taken out: the program, which nothing else used, stops.
    let out = patch(&node, &json!({"publish_program": false}));
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    assert_eq!(out.json()["publish_program"], false);
    wait_for("the program to stop", Duration::from_secs(15), || {
        let r = http::get(node.port, "/v1/rooms/mcu", KEY).json();
        r["program"].is_null().then_some(())
    });
    let _ = red.stop();
    let _ = blue.stop();
}
