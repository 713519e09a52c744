//! Room webhooks of a room spread over nodes: three `tessera serve` nodes on one
//! `redis-server`, every node's webhooks to one receiver. Participants join through two
//! nodes: `room.started` is sent once, no later than any `participant.joined`; each participant's
//! `participant.joined`/`left` once (by the node hosting it); `room.ended` once, after the
//! last participant left, whichever node it was on.

use std::time::Duration;

use serde_json::Value;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;
use tessera_testkit::webhook;

mod common;

/// The events delivered for `room`, in order.
fn events(delivered: &webhook::Deliveries, room: &str) -> Vec<(String, Value)> {
    let delivered = delivered.lock().unwrap_or_else(|e| e.into_inner());
    delivered
        .iter()
        .filter_map(|(event, _, body)| {
            let body: Value = serde_json::from_slice(body).ok()?;
            (body["room"] == room).then(|| (event.clone(), body))
        })
        .collect()
}

fn count(events: &[(String, Value)], name: &str) -> usize {
    events.iter().filter(|(e, _)| e == name).count()
}

#[test]
fn a_room_over_two_nodes_starts_and_ends_once() {
    let redis = Redis::start();
    let (hooks, delivered) = webhook::receiver();
    let nodes = common::cluster::start(|id| {
        common::cluster::node(&redis, id).env("TESSERA_WEBHOOK_URL", format!("http://127.0.0.1:{hooks}/hooks"))
    });
    let mut a = nodes[0].bot("hooked", "a", &["--color", "#00ff00", "--size", "320x180"]);
    a.wait_for("published", Duration::from_secs(30));
    let mut b = nodes[2].bot("hooked", "b", &["--color", "#0000ff", "--size", "320x180"]);
    b.wait_for("published", Duration::from_secs(30));
    wait_for("two participant.joined", Duration::from_secs(15), || {
        (count(&events(&delivered, "hooked"), "participant.joined") == 2).then_some(())
    });
    // The first participant leaves: the room goes on.
    let _ = a.stop();
    wait_for("a participant.left", Duration::from_secs(15), || {
        (count(&events(&delivered, "hooked"), "participant.left") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&events(&delivered, "hooked"), "room.ended"), 0, "{:?}", events(&delivered, "hooked"));
    // The last one leaves, on the other node: the room ends, once.
    let _ = b.stop();
    wait_for("room.ended", Duration::from_secs(15), || {
        (count(&events(&delivered, "hooked"), "room.ended") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let seen = events(&delivered, "hooked");
    let names: Vec<&str> = seen.iter().map(|(e, _)| e.as_str()).collect();
    eprintln!("{names:?}");
    assert_eq!(count(&seen, "room.started"), 1, "{names:?}");
    assert_eq!(count(&seen, "room.ended"), 1, "{names:?}");
    assert_eq!(count(&seen, "participant.joined"), 2, "{names:?}");
    assert_eq!(count(&seen, "participant.left"), 2, "{names:?}");
    // In event time (the receiver refuses its first delivery, so that one arrives late).
    let at = |name: &str| -> Vec<String> {
        seen.iter().filter(|(e, _)| e == name).filter_map(|(_, b)| b["at"].as_str().map(str::to_owned)).collect()
    };
    let (started, ended) = (at("room.started")[0].clone(), at("room.ended")[0].clone());
    assert!(at("participant.joined").iter().all(|t| *t >= started), "{seen:?}");
    assert!(at("participant.left").iter().all(|t| *t <= ended), "{seen:?}");
}
