//! A node dies mid-recording to S3 (SIGKILL): another node completes the recording from what
//! is in the bucket, and the room's next use places it on a node that is up. Three
//! `tessera serve` processes, a real `redis-server` and an S3-compatible store (SeaweedFS).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::analysis::{RED, assert_color, decode_frames};
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;
use tessera_testkit::s3::Weed;
use tessera_testkit::tessera::Node;
use tessera_testkit::webhook;

mod common;
use common::cluster::{IDS, KEY, get, room_with};

#[test]
fn a_killed_nodes_s3_recording_is_completed_by_another_node() {
    let weed = Weed::start();
    weed.create_bucket("calls");
    let redis = Redis::start();
    // Every node sends its webhooks to one application.
    let (hooks, delivered) = webhook::receiver();
    let nodes = common::cluster::start(|id| {
        common::cluster::node(&redis, id)
            .env("TESSERA_WEBHOOK_URL", format!("http://127.0.0.1:{hooks}/hooks"))
            .env("TESSERA_S3_BUCKET", "calls")
            .env("TESSERA_S3_PREFIX", "cluster/")
            .envs(weed.aws_env())
    });
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();

    // A participant, and a recording started through another node than the room's.
    let n1 = nodes[0].as_ref().unwrap();
    let mut red = n1.bot("lost", "red", &["--color", "#ff0000", "--size", "640x360"]);
    red.wait_for("published", Duration::from_secs(30));
    let host = room_with(n1, "lost", "red")["node"].as_str().unwrap().to_owned();
    let host_index = IDS.iter().position(|id| *id == host).unwrap();
    let other = nodes[(host_index + 1) % 3].as_ref().unwrap();
    let body = json!({"video": {"width": 640, "height": 360}}).to_string();
    let created = http::post_json(other.port, "/v1/rooms/lost/recordings", KEY, body.as_bytes());
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let started = Instant::now();
    let rec = created.json();
    let id = rec["id"].as_str().unwrap().to_owned();
    let key = rec["location"]["key"].as_str().unwrap().to_owned();
    wait_for("the recording running", Duration::from_secs(10), || {
        (get(other, &format!("/v1/recordings/{id}"))["status"] == "recording").then_some(())
    });
    std::thread::sleep(Duration::from_secs(8));

    // The host dies without warning.
    let host_node = nodes[host_index].take().unwrap();
    assert!(tessera_testkit::process::signal(host_node.pid(), "KILL"));
    let killed_at = started.elapsed().as_secs_f64();
    let killed = Instant::now();
    let survivor = nodes[(host_index + 2) % 3].as_ref().unwrap();

    // Declared down after 5 s; completed within 15 s of that.
    let done = wait_for("the recording completed by a survivor", Duration::from_secs(25), || {
        let r = get(survivor, &format!("/v1/recordings/{id}"));
        (r["status"] == "completed" || r["status"] == "failed").then_some(r)
    });
    let took = killed.elapsed();
    assert_eq!(done["status"], "completed", "{done}\n{}", survivor.stderr());
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("node {host} was lost")), "{done}");
    assert!(took < Duration::from_secs(20), "completed {took:?} after the kill");
    let nodes_view = get(survivor, "/v1/nodes");
    let lost = nodes_view["nodes"].as_array().unwrap().iter().find(|n| n["id"] == host.as_str()).cloned().unwrap();
    assert_eq!(lost["status"], "down", "{lost}");

    // The object plays, red, up to at most 2 s before the kill.
    assert!(weed.uploads("calls").is_empty(), "no upload left open: {:?}", weed.uploads("calls"));
    let (object, _) = weed.get("calls", &key);
    assert_eq!(object.len() as u64, done["bytes"].as_u64().unwrap(), "{done}");
    let file = survivor.dir.path().join("taken-over.mp4");
    std::fs::write(&file, &object).unwrap();
    let frames = decode_frames(&file, 160, 90);
    let end = frames.last().expect("frames").pts;
    assert!(end > killed_at - 2.0 && end < killed_at + 0.5, "plays {end:.2} s; killed at {killed_at:.2} s");
    eprintln!("killed at {killed_at:.2} s; the object plays {end:.2} s; completed {took:.1?} after the kill");
    let reported = done["duration_s"].as_f64().unwrap();
    assert!((reported - end).abs() < 0.5, "the API says {reported:.2} s, the file plays {end:.2} s");
    assert_color(&frames, 1.0, end - 0.2, (320.0, 180.0), (640, 360), RED, "red");

    // The application heard of the recording once: started by its node, completed by the
    // one survivor that took it over (the others saw it done under the lock).
    std::thread::sleep(Duration::from_secs(3));
    let events = |name: &str| -> Vec<Value> {
        let delivered = delivered.lock().unwrap();
        delivered
            .iter()
            .filter_map(|(_, _, body)| serde_json::from_slice::<Value>(body).ok())
            .filter(|v| v["event"] == name && v["data"]["id"] == id.as_str())
            .collect()
    };
    assert_eq!(events("recording.started").len(), 1, "recording.started");
    let completed = events("recording.completed");
    assert_eq!(completed.len(), 1, "recording.completed once: {completed:?}");
    assert!(completed[0]["data"]["error"].as_str().unwrap_or_default().contains("was lost"), "{completed:?}");

    // The room's next use places it on a node that is up.
    // Its signalling went through the node that died: it is gone from the call.
    drop(red);
    let mut again = survivor.bot("lost", "red-again", &["--color", "#ff0000"]);
    again.wait_for("published", Duration::from_secs(30));
    let placed = room_with(survivor, "lost", "red-again")["node"].as_str().unwrap().to_owned();
    assert_ne!(placed, host, "the room moved off the dead node");
    let _ = again.stop();
}
