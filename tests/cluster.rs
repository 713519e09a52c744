//! Cluster mode end to end: three `tessera serve` processes on 127.0.0.1 sharing a real
//! `redis-server`. Any node answers any call; a room lives on one node; rooms spread; a Redis
//! outage leaves the calls and recordings running.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_testkit::analysis::{BLUE, GREEN, RED, assert_color, decode_frames};
use tessera_testkit::chromium::{Browser, red_camera};
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::{Persistence, Redis};
use tessera_testkit::tessera::Node;

mod common;
use common::cluster::{KEY, get, index, post};

const W: u32 = 1280;
const H: u32 = 720;

/// The centre of each named participant's tile in the grid, in join order.
fn grid_centres(names: &[&str]) -> Vec<(f64, f64)> {
    tessera_compositor::harness::grid_centres(names, (W, H), (640, 360))
}

#[test]
fn any_node_answers_for_a_room_that_lives_on_one() {
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id));

    // Two bots and a browser join one room, each through a different node.
    let mut green = nodes[0].bot("call", "green", &["--color", "#00ff00", "--size", "640x360"]);
    green.wait_for("published", Duration::from_secs(30));
    let mut blue = nodes[1].bot("call", "blue", &["--color", "#0000ff", "--size", "640x360"]);
    blue.wait_for("published", Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let camera = red_camera(dir.path());
    let token = post(&nodes[2], "/v1/rooms/call/tokens", json!({"identity": "red", "name": "red"}));
    let page = format!("{}/rooms/call?token={}&name=red", nodes[2].url(), token["token"].as_str().unwrap());
    let browser = Browser::open(&page, &[&camera]);

    // Every node describes the same room, on the same node, with the three participants.
    let host = wait_for("the room with all participants, seen from every node", Duration::from_secs(60), || {
        let seen: Vec<Value> = nodes.iter().map(|n| get(n, "/v1/rooms/call")).collect();
        let host = seen[0]["node"].as_str()?.to_owned();
        let whole = seen.iter().all(|room| {
            room["node"] == host.as_str()
                && room["participants"].as_array().is_some_and(|p| {
                    p.len() == 3 && p.iter().all(|p| p["tracks"].as_array().is_some_and(|t| t.len() == 2))
                })
        });
        whole.then_some(host)
    });
    let host_index = index(&host);
    // Chromium, hosted by the third node, decodes both bots' video (relayed from the others).
    let mut tab = browser.page("name=red");
    wait_for("Chromium decoding two videos", Duration::from_secs(30), || {
        let tracks = tab.eval("JSON.stringify(window.tesseraStats && window.tesseraStats.tracks || {})");
        let tracks: Value = serde_json::from_str(tracks.as_str()?).ok()?;
        let decoding = tracks
            .as_object()?
            .values()
            .filter(|t| t["kind"] == "video" && t["framesDecoded"].as_f64() > Some(30.0))
            .count();
        (decoding == 2).then_some(())
    });
    let listed = get(&nodes[2], "/v1/rooms");
    let rooms: Vec<&Value> = listed["rooms"].as_array().unwrap().iter().filter(|r| r["name"] == "call").collect();
    assert_eq!(rooms.len(), 1, "one room in the cluster-wide list: {listed}");

    // A recording started through a node that does not host the room, stopped and listed
    // through the third.
    let second = (host_index + 1) % 3;
    let third = (host_index + 2) % 3;
    let rec = post(&nodes[second], "/v1/rooms/call/recordings", json!({"video": {"width": W, "height": H}}));
    let id = rec["id"].as_str().expect("recording id").to_owned();
    assert_eq!(rec["room"], "call");
    std::thread::sleep(Duration::from_secs(5));
    let listed = get(&nodes[third], "/v1/recordings?room=call");
    let mine = listed["recordings"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).cloned();
    let mine = mine.unwrap_or_else(|| panic!("recording {id} listed through the third node: {listed}"));
    assert_eq!(mine["node"], host.as_str(), "{mine}");
    post(&nodes[third], &format!("/v1/recordings/{id}/stop"), json!({}));
    let done = nodes[third].wait_recording_ended(&id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["node"], host.as_str(), "{done}");

    // An LL-HLS output started through one node that does not host the room, its playlist
    // read and the output stopped through the other: the host runs and serves it.
    let hls = post(&nodes[second], "/v1/rooms/call/hls", json!({"video": {"width": W, "height": H}}));
    let hls_id = hls["id"].as_str().expect("HLS id").to_owned();
    assert_eq!(hls["node"], host.as_str(), "{hls}");
    let playlist = http::get(nodes[third].port, hls["playlist_path"].as_str().expect("playlist_path"), None);
    assert_eq!(playlist.status, 200);
    let playlist = String::from_utf8_lossy(&playlist.body).into_owned();
    assert!(playlist.starts_with("#EXTM3U") && playlist.contains("#EXT-X-PART:"), "{playlist}");
    assert_eq!(get(&nodes[third], &format!("/v1/hls/{hls_id}"))["node"], host.as_str());
    assert_eq!(post(&nodes[third], &format!("/v1/hls/{hls_id}/stop"), json!({}))["status"], "stopped");

    // The file is on the host; both colours in their tiles.
    let path = done["location"]["path"].as_str().expect("a local recording");
    let path = if Path::new(path).is_absolute() {
        Path::new(path).to_path_buf()
    } else {
        nodes[host_index].dir.path().join(path)
    };
    let frames = decode_frames(&path, 160, 90);
    let end = frames.last().expect("frames").pts;
    assert!(end > 4.0, "{end}");
    let centres = grid_centres(&["green", "blue", "red"]);
    assert_color(&frames, 1.5, end - 0.2, centres[0], (W, H), GREEN, "green (a bot through the first node)");
    assert_color(&frames, 1.5, end - 0.2, centres[1], (W, H), BLUE, "blue (a bot through the second node)");
    assert_color(&frames, 1.5, end - 0.2, centres[2], (W, H), RED, "red (Chromium through the third node)");
    // Each participant is hosted by the node it joined through; their media reached the
    // room's home node over relay links, and the metrics say so.
    let room = get(&nodes[host_index], "/v1/rooms/call");
    for (name, node) in [("green", "n1"), ("blue", "n2"), ("red", "n3")] {
        let p = room["participants"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
        assert_eq!(p.unwrap_or_default()["node"], node, "{name} in {room}");
    }
    assert_eq!(room["nodes"], json!(["n1", "n2", "n3"]), "{room}");
    let metrics = String::from_utf8(http::get(nodes[host_index].port, "/metrics", None).body).unwrap();
    let received: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tessera_relay_packets_received_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(received > 500.0, "relayed packets at the home node: {metrics}");
    assert!(metrics.contains("tessera_relay_link_up{peer="), "{metrics}");
    let metrics = String::from_utf8(http::get(nodes[2].port, "/metrics", None).body).unwrap();
    for id in common::cluster::IDS {
        assert!(metrics.contains(&format!("tessera_cluster_node_up{{node=\"{id}\"}} 1")), "{metrics}");
    }
    let _ = green.stop();
    let _ = blue.stop();
}

/// A participant that only signals: joins `room` over the WebSocket of `node` and stays.
struct Signalling {
    _socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

async fn join(node: &Node, room: &str) -> Signalling {
    use futures_util::{SinkExt, StreamExt};
    let token = post(node, &format!("/v1/rooms/{room}/tokens"), json!({"identity": format!("p-{room}")}));
    let url = format!("ws://127.0.0.1:{}/v1/rtc", node.port);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket");
    let hello = json!({"type": "join", "room": room, "token": token["token"]});
    socket.send(tokio_tungstenite::tungstenite::Message::text(hello.to_string())).await.expect("send join");
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("an answer");
    let answer: Value =
        serde_json::from_str(answer.expect("a message").expect("a message").to_text().unwrap()).unwrap();
    assert_eq!(answer["type"], "joined", "{answer}");
    Signalling { _socket: socket }
}

#[test]
fn rooms_created_through_one_node_spread_over_all() {
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // One after another, as an application creating rooms would.
    let participants: Vec<Signalling> = runtime.block_on(async {
        let mut joined = Vec::new();
        for i in 0..12 {
            joined.push(join(&nodes[0], &format!("room{i}")).await);
        }
        joined
    });
    // Each room is listed by its home node, which learns of a participant hosted elsewhere
    // within a sync round (300 ms); every participant stays hosted where it joined.
    let listed = wait_for("twelve rooms listed by their homes", Duration::from_secs(5), || {
        let listed = get(&nodes[0], "/v1/rooms");
        let rooms = listed["rooms"].as_array()?;
        // Listed as soon as placed; its participant shows once the home has read n1's part.
        let whole =
            rooms.len() == 12 && rooms.iter().all(|r| r["participants"].as_array().is_some_and(|p| p.len() == 1));
        whole.then_some(listed)
    });
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for room in listed["rooms"].as_array().unwrap() {
        *per_node.entry(room["node"].as_str().unwrap().to_owned()).or_default() += 1;
        assert_eq!(room["participants"][0]["node"], "n1", "{room}");
    }
    assert_eq!(per_node.values().sum::<usize>(), 12, "{listed}");
    assert_eq!(per_node.len(), 3, "every node hosts rooms: {per_node:?}");
    assert!(per_node.values().all(|n| *n >= 3), "an even spread: {per_node:?}");
    let nodes_view = get(&nodes[1], "/v1/nodes");
    for n in nodes_view["nodes"].as_array().unwrap() {
        assert_eq!(n["status"], "serving", "{n}");
    }
    drop(participants);
}

#[test]
fn a_redis_outage_leaves_calls_and_recordings_running() {
    // Persistence as docs/cluster.md asks for it: every acknowledged write survives a restart.
    let mut redis = Redis::start_with(Persistence::AppendOnly);
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id));
    let mut red = nodes[0].bot("outage", "red", &["--color", "#ff0000", "--size", "640x360"]);
    red.wait_for("published", Duration::from_secs(30));
    let rec = post(&nodes[0], "/v1/rooms/outage/recordings", json!({"video": {"width": 640, "height": 360}}));
    let id = rec["id"].as_str().unwrap().to_owned();
    let host = get(&nodes[0], "/v1/rooms/outage")["node"].as_str().unwrap().to_owned();
    let host = &nodes[index(&host)];
    std::thread::sleep(Duration::from_secs(2));

    redis.stop();
    // New rooms cannot be placed: 503, with a JSON reason.
    let refused = http::post_json(nodes[1].port, "/v1/rooms/newroom/recordings", KEY, b"{}");
    assert_eq!(refused.status, 503, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(refused.json()["error"]["code"], "cluster_unavailable");
    std::thread::sleep(Duration::from_secs(8));
    // The call and the recording on the host went on.
    let room = get(host, "/v1/rooms/outage");
    assert_eq!(room["participants"].as_array().map(Vec::len), Some(1), "{room}");
    let running = get(host, &format!("/v1/recordings/{id}"));
    assert_eq!(running["status"], "recording", "{running}");
    assert!(running["duration_s"].as_f64().unwrap() > 8.0, "{running}");

    redis.restart();
    // New rooms are placed again once every node is back in the listing.
    wait_for("a room placed after Redis returned", Duration::from_secs(20), || {
        let r = http::post_json(nodes[1].port, "/v1/rooms/after/recordings", KEY, b"{}");
        (r.status == 201).then(|| r.json())
    });
    // The room is still found on its node through the others.
    wait_for("the room found through another node after the outage", Duration::from_secs(20), || {
        let r = http::get(nodes[2].port, "/v1/rooms/outage", KEY);
        (r.status == 200 && r.json()["node"] == room["node"]).then_some(())
    });
    post(host, &format!("/v1/recordings/{id}/stop"), json!({}));
    let done = host.wait_recording_ended(&id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["duration_s"].as_f64().unwrap() > 10.0, "{done}");
    // Its record reached Redis after the outage: every node lists it as completed.
    wait_for("the recording's final record on every node", Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| {
                let listed = get(n, "/v1/recordings?room=outage");
                listed["recordings"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["id"] == id.as_str() && r["status"] == "completed"))
            })
            .then_some(())
    });
    let _ = red.stop();
}

#[test]
fn sigterm_drains_a_node_and_its_rooms_go_elsewhere() {
    let redis = Redis::start();
    let mut nodes = common::cluster::start(|id| common::cluster::node(&redis, id));
    let rec = post(&nodes[0], "/v1/rooms/drained/recordings", json!({"video": {"width": 640, "height": 360}}));
    let id = rec["id"].as_str().unwrap().to_owned();
    let host = get(&nodes[0], "/v1/rooms/drained")["node"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(3));
    let host_node = nodes.remove(index(&host));
    let (status, log) = host_node.stop_with_log("TERM");
    assert!(status.success(), "{status}\n{log}");
    // It said it was draining before it finished its recording, and the recording completed.
    assert!(log.contains("finishing recordings and streams"), "{log}");
    let listed = get(&nodes[0], "/v1/nodes");
    let drained = listed["nodes"].as_array().unwrap().iter().find(|n| n["id"] == host.as_str()).cloned().unwrap();
    assert_eq!(drained["status"], "down", "a node that left says so: {drained}");
    let done = get(&nodes[1], &format!("/v1/recordings/{id}"));
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["duration_s"].as_f64().unwrap() > 2.5, "{done}");
    // New rooms, and the drained room's next use, go to the nodes that are left.
    let left: Vec<&str> = common::cluster::IDS.into_iter().filter(|n| *n != host).collect();
    for room in ["after1", "after2", "drained"] {
        let rec =
            post(&nodes[0], &format!("/v1/rooms/{room}/recordings"), json!({"video": {"width": 320, "height": 180}}));
        let placed = get(&nodes[0], &format!("/v1/rooms/{room}"))["node"].as_str().unwrap().to_owned();
        assert!(left.contains(&placed.as_str()), "{room} on {placed}");
        post(&nodes[1], &format!("/v1/recordings/{}/stop", rec["id"].as_str().unwrap()), json!({}));
    }
}
