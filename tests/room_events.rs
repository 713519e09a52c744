//! Room and participant webhooks come from the SFU's joins and leaves, not from published
//! media: a participant that only subscribes is reported, `room.started` comes at the first
//! join, and `room.ended` only once the last participant has left and nothing records the
//! room any more.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::http;
use tessera_testkit::tessera::TEST_KEY;
use tessera_testkit::webhook::{self, Deliveries};

/// The events delivered so far, as (event, data).
fn events(seen: &Deliveries) -> Vec<(String, Value)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(event, _, body)| {
            let v: Value = serde_json::from_slice(body).unwrap();
            (event.clone(), v["data"].clone())
        })
        .collect()
}

fn wait_for(seen: &Deliveries, what: &str, check: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = events(seen);
        if check(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "never saw {what}; events: {got:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(events: &[(String, Value)], name: &str) -> usize {
    events.iter().filter(|(e, _)| e == name).count()
}

#[test]
fn a_subscriber_is_reported_and_a_recording_keeps_the_room_going() {
    let (hook_port, seen) = webhook::receiver();
    let server = common::node().env("TESSERA_WEBHOOK_URL", format!("http://127.0.0.1:{hook_port}/hooks")).start();
    let port = server.port;

    // A participant that publishes nothing: the room starts and they are reported.
    let mut viewer = server.bot("events", "viewer", &["--identity", "viewer", "--subscribe", "--no-publish"]);
    let viewer_id = viewer.participant_id();
    let got = wait_for(&seen, "the viewer's join", |e| count(e, "participant.joined") == 1);
    assert_eq!(got[0].0, "room.started", "the room starts at its first join: {got:?}");
    let joined = &got.iter().find(|(e, _)| e == "participant.joined").unwrap().1;
    assert_eq!(joined["participant_id"], viewer_id.as_str(), "{joined}");
    assert_eq!(joined["identity"], "viewer", "{joined}");

    // A second participant, and a recording of the room.
    let mut red = server.bot("events", "red", &["--color", "#ff0000", "--size", "320x180", "--fps", "15", "--silent"]);
    red.wait_for("published", Duration::from_secs(30));
    let rec = http::post_json(
        port,
        "/v1/rooms/events/recordings",
        Some(TEST_KEY),
        br#"{"video":{"width":320,"height":180,"fps":15}}"#,
    );
    assert_eq!(rec.status, 201, "{}", String::from_utf8_lossy(&rec.body));
    let rec_id = rec.json()["id"].as_str().unwrap().to_owned();

    // Everyone leaves while the recording goes on: both leave, the room does not end.
    viewer.stop();
    red.stop();
    let got = wait_for(&seen, "both leaving", |e| count(e, "participant.left") == 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&events(&seen), "room.ended"), 0, "the recording still runs: {got:?}");

    // The recording ends: now the room does, once.
    let stop = http::post_json(port, &format!("/v1/recordings/{rec_id}/stop"), Some(TEST_KEY), b"");
    assert_eq!(stop.status, 200, "{}", String::from_utf8_lossy(&stop.body));
    let got = wait_for(&seen, "the room's end", |e| count(e, "room.ended") == 1);
    let order: Vec<&str> = got
        .iter()
        .map(|(e, _)| e.as_str())
        .filter(|e| e.starts_with("room.") || e.starts_with("participant."))
        .collect();
    assert_eq!(
        order,
        [
            "room.started",
            "participant.joined",
            "participant.joined",
            "participant.left",
            "participant.left",
            "room.ended"
        ],
        "{got:?}"
    );
    assert_eq!(count(&got, "room.started"), 1);
}
