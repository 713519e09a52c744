//! WHIP in cluster mode, end to end: three `tessera serve` nodes on one real `redis-server`, a
//! room placed by a recording, and GStreamer's `webrtcbin` (a WebRTC stack we did not write)
//! publishing a solid red VP8 camera and an Opus tone through a node that is not the room's
//! home. The publisher is hosted where its POST landed: the answer's candidates are that
//! node's, the third node lists the participant on it with both tracks, the program on the
//! home node shows it (its media crossing a relay link: the preview through the third node,
//! the recording on the home node's disk), and a DELETE of the `Location` on the node that
//! answered ends the session. A token of another room is refused (401) and places nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::analysis::{RED, close, decode_frames, decode_jpeg};
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::Node;

mod common;
use common::cluster::{IDS, KEY, get, post};
use tessera_testkit::whip::{self, Publisher, candidate, candidates};

const ROOM: &str = "whipcall";
const OTHER: &str = "whipother";
/// The program's size: the publisher's video is the only tile, its centre the canvas's.
const W: u32 = 320;
const H: u32 = 180;

/// The room's participant with `identity`, as `node` describes the room.
fn participant(node: &Node, identity: &str) -> Option<Value> {
    let room = get(node, &format!("/v1/rooms/{ROOM}"));
    room["participants"].as_array()?.iter().find(|p| p["identity"] == identity).cloned()
}

fn mime_types(participant: &Value) -> Vec<String> {
    let mut mimes: Vec<String> = participant["tracks"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["mime_type"].as_str()).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    mimes.sort();
    mimes
}

#[test]
fn whip_through_a_node_that_does_not_host_the_room() {
    let started = Instant::now();
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id));
    eprintln!("cluster serving after {:?}", started.elapsed());

    // The room is placed by a recording started through the first node.
    let rec = post(&nodes[0], &format!("/v1/rooms/{ROOM}/recordings"), json!({"video": {"width": W, "height": H}}));
    let rec_id = rec["id"].as_str().expect("recording id").to_owned();
    let host_id = get(&nodes[0], &format!("/v1/rooms/{ROOM}"))["node"].as_str().expect("the room's node").to_owned();
    let h = IDS.iter().position(|id| *id == host_id).expect("a node of the cluster");
    let (host, receiver, third) = (&nodes[h], &nodes[(h + 1) % 3], &nodes[(h + 2) % 3]);
    eprintln!("room on {host_id}; WHIP through {}, checked through {}", IDS[(h + 1) % 3], IDS[(h + 2) % 3]);

    let token = post(third, &format!("/v1/rooms/{ROOM}/tokens"), json!({"identity": "whip-pub"}));
    let token = token["token"].as_str().expect("a token").to_owned();
    let publisher = Publisher::solid(whip::VP8, RED);
    let offer = publisher.offer();
    assert!(!candidates(&offer).is_empty(), "the offer carries no candidates:\n{offer}");

    // A token of another room, through a node that is not the host: refused, nothing placed.
    let refused = whip::post(receiver.port, OTHER, &token, &offer);
    assert_eq!(refused.status, 401, "WHIP POST to {OTHER} with a token of {ROOM}: {}", refused.sdp);
    assert_eq!(refused.response.json()["error"]["code"], "unauthorized", "{}", refused.sdp);
    assert_eq!(refused.location, None);
    for n in &nodes {
        let r = http::get(n.port, &format!("/v1/rooms/{OTHER}"), KEY);
        assert_eq!(r.status, 404, "{OTHER} seen from {}: {}", n.url(), String::from_utf8_lossy(&r.body));
    }
    let listed = get(third, "/v1/rooms");
    assert!(listed["rooms"].as_array().unwrap().iter().all(|r| r["name"] != OTHER), "{listed}");

    // The WHIP POST through a node that is not the room's home is answered there.
    let answer = whip::post(receiver.port, ROOM, &token, &offer);
    assert_eq!(answer.status, 201, "WHIP POST through {}: {}", receiver.url(), answer.sdp);
    assert!(
        answer.response.header("content-type").is_some_and(|c| c.starts_with("application/sdp")),
        "{:?}",
        answer.response.headers
    );
    let location = answer.location.clone().expect("a Location header");
    assert!(location.starts_with(&format!("/whip/{ROOM}/")), "{location}");
    let theirs: Vec<_> = candidates(&answer.sdp).into_iter().map(|l| candidate(l).expect("a candidate line")).collect();
    eprintln!("answer candidates: {theirs:?}");
    let udp: Vec<_> = theirs.iter().filter(|c| c.transport == "udp").collect();
    assert!(!udp.is_empty(), "no UDP candidate in the answer (non-trickle WHIP):\n{}", answer.sdp);
    let receiver_udp = receiver.rtc_udp_port.expect("rtc ports");
    assert!(
        udp.iter().all(|c| c.addr == "127.0.0.1" && c.port == receiver_udp),
        "UDP candidates are not the receiving node's 127.0.0.1:{receiver_udp} (the home's is {:?}): {udp:?}",
        host.rtc_udp_port
    );
    for c in theirs.iter().filter(|c| c.transport == "tcp") {
        assert_eq!(Some(c.port), receiver.rtc_tcp_port, "ICE-TCP candidate not the receiving node's: {c:?}");
    }
    publisher.set_answer(&answer.sdp);
    let took = publisher.wait_connected(Duration::from_secs(15));
    eprintln!("webrtcbin connected to {} {took:?} after the answer", IDS[(h + 1) % 3]);

    // The third node lists the WHIP participant, on the receiving node, with its video and
    // audio.
    let whip_pub =
        wait_for("the WHIP participant with two tracks, through the third node", Duration::from_secs(15), || {
            publisher.check_bus();
            participant(third, "whip-pub").filter(|p| mime_types(p).len() == 2)
        });
    assert_eq!(mime_types(&whip_pub), ["audio/opus", "video/vp8"], "{whip_pub}");
    let pid = whip_pub["id"].as_str().expect("participant id");
    assert!(location.ends_with(&format!("/{pid}")), "{location} vs {whip_pub}");
    assert_eq!(get(third, &format!("/v1/rooms/{ROOM}"))["node"], host_id.as_str());
    assert_eq!(whip_pub["node"], IDS[(h + 1) % 3], "{whip_pub}");

    // The program shows it: its preview, through the third node, turns red in the middle.
    let shown = Instant::now();
    wait_for("the WHIP video in the program's preview", Duration::from_secs(20), || {
        publisher.check_bus();
        let r = http::get(third.port, &format!("/v1/rooms/{ROOM}/preview.jpg"), KEY);
        if r.status != 200 {
            return None;
        }
        let still = decode_jpeg(&r.body, W, H);
        close(still.color_at(f64::from(W) / 2.0, f64::from(H) / 2.0, W, H), RED).then_some(())
    });
    eprintln!("red in the preview {:?} after the participant was listed", shown.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(publisher.connection_state(), whip::ConnectionState::Connected);

    // DELETE of the Location on the node that answered ends the session.
    let refused = whip::delete(receiver.port, &location, "nope");
    assert_eq!(refused.status, 401, "{}", String::from_utf8_lossy(&refused.body));
    let deleted = whip::delete(receiver.port, &location, &token);
    assert_eq!(deleted.status, 200, "DELETE {location}: {}", String::from_utf8_lossy(&deleted.body));
    wait_for("the WHIP participant gone", Duration::from_secs(10), || {
        participant(third, "whip-pub").is_none().then_some(())
    });
    let again = whip::delete(receiver.port, &location, &token);
    assert_eq!(again.status, 404, "a second DELETE: {}", String::from_utf8_lossy(&again.body));
    std::thread::sleep(Duration::from_secs(2));

    // The recording, stopped through the receiving node, has the red camera on the host's disk.
    post(receiver, &format!("/v1/recordings/{rec_id}/stop"), json!({}));
    let done = receiver.wait_recording_ended(&rec_id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["node"], host_id.as_str(), "{done}");
    let path = done["location"]["path"].as_str().expect("a local recording");
    let path = if Path::new(path).is_absolute() { Path::new(path).to_path_buf() } else { host.dir.path().join(path) };
    let frames = decode_frames(&path, 160, 90);
    let red: Vec<bool> =
        frames.iter().map(|f| close(f.color_at(f64::from(W) / 2.0, f64::from(H) / 2.0, W, H), RED)).collect();
    let longest = red.split(|r| !r).map(<[bool]>::len).max().unwrap_or(0);
    let end = frames.last().expect("frames").pts;
    eprintln!(
        "recording: {} frames, {end:.2} s, {} red, the longest red run {longest}",
        frames.len(),
        red.iter().filter(|r| **r).count()
    );
    let fps = frames.len() as f64 / end.max(0.1);
    // Shown for the 2 s after the preview turned red at least (and until the DELETE).
    assert!(longest as f64 >= fps, "the WHIP camera is red for only {longest} frames at {fps:.1} fps");
    assert!(!red.last().unwrap(), "the program still shows the WHIP camera after DELETE ({end:.2} s)");
    drop(publisher);
    eprintln!("done in {:?}", started.elapsed());
}
