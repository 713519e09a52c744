//! One room over three nodes (cascaded SFUs), end to end: three `tessera serve` processes on
//! one `redis-server`. A recording places the room's home; a green bot joins through the home,
//! a blue bot through a second node, a red bot and three receive-only subscribers (one
//! `tessera bot --subscribers` process) through the third. Every participant is hosted where
//! it joined; the subscribers receive both other nodes' publishers over relay links; the
//! recording shows all three colours. Then the blue bot's node is SIGKILLed: the others keep
//! their call (the subscribers' green and red tracks go on without freezing), the room drops
//! the dead node's participant, and the recording goes on, blue's tile a placeholder (their
//! name card) while the others stay in place. Blue joins again through the third node and
//! takes its tile back; the recording ends cleanly with all three.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::analysis::{BLUE, GREEN, RED, assert_color, decode_frames};
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::Node;

mod common;
use common::cluster::{IDS, get, index, post};

const W: u32 = 640;
const H: u32 = 360;
const SUBSCRIBERS: usize = 3;

/// The centre of each named participant's tile in the grid, in join order.
fn grid_centres(names: &[&str]) -> Vec<(f64, f64)> {
    tessera_compositor::harness::grid_centres(names, (W, H), (320, 180))
}

/// Node `i`, while it runs.
fn node(nodes: &[Option<Node>], i: usize) -> &Node {
    nodes[i].as_ref().expect("a running node")
}

/// `tessera bot` flags for a small camera of `color`.
fn camera(color: &str) -> [&str; 6] {
    ["--color", color, "--size", "320x180", "--fps", "15"]
}

/// The blue bot: a blue camera, always the identity `blue` (so that joining again is a return).
const BLUE_BOT: [&str; 8] = ["--color", "#0000ff", "--size", "320x180", "--fps", "15", "--identity", "blue"];

/// A name card's background (the compositor's placeholder tile).
const CARD: u32 = 0x2d3440;

/// Room `name` as its home describes it, through `node`.
fn room_of(node: &Node, name: &str) -> Value {
    get(node, &format!("/v1/rooms/{name}"))
}

/// The room `mesh`, through `node`.
fn room(node: &Node) -> Value {
    room_of(node, "mesh")
}

/// The names of the room's publishing participants (bots) and their nodes.
fn publishers(room: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = room["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["tracks"].as_array().is_some_and(|t| t.len() == 2))
        .map(|p| (p["name"].as_str().unwrap_or("").to_owned(), p["node"].as_str().unwrap_or("").to_owned()))
        .collect();
    found.sort();
    found
}

#[test]
fn a_room_over_three_nodes_survives_one_of_them_dying() {
    let redis = Redis::start();
    let mut nodes: Vec<Option<Node>> =
        common::cluster::start(|id| common::cluster::node(&redis, id)).into_iter().map(Some).collect();

    // The recording places the room: its home runs the program.
    let rec = post(node(&nodes, 0), "/v1/rooms/mesh/recordings", json!({"video": {"width": W, "height": H}}));
    let rec_id = rec["id"].as_str().expect("a recording id").to_owned();
    let recording_started = Instant::now();
    let home = rec["node"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| room(node(&nodes, 0))["node"].as_str().expect("the room's node").to_owned());
    let h = index(&home);
    let (victim, third) = ((h + 1) % 3, (h + 2) % 3);
    eprintln!("home {home}; blue on {}, red and the subscribers on {}", IDS[victim], IDS[third]);

    let mut green = node(&nodes, h).bot("mesh", "green", &camera("#00ff00"));
    green.wait_for("published", Duration::from_secs(30));
    let mut blue = node(&nodes, victim).bot("mesh", "blue", &BLUE_BOT);
    blue.wait_for("published", Duration::from_secs(30));
    let mut red = node(&nodes, third).bot("mesh", "red", &camera("#ff0000"));
    red.wait_for("published", Duration::from_secs(30));

    // Three subscribers through the third node, for 16 s (across the kill).
    let load = node(&nodes, third).subscribers("mesh", "viewer", SUBSCRIBERS, 16, &["--report-every", "4"]);

    // Seen through any node: the whole room, each publisher on the node it joined through.
    let expected = vec![
        ("blue".to_owned(), IDS[victim].to_owned()),
        ("green".to_owned(), home.clone()),
        ("red".to_owned(), IDS[third].to_owned()),
    ];
    let whole = wait_for("the three publishers, each on its node", Duration::from_secs(20), || {
        let seen = room(node(&nodes, victim));
        (publishers(&seen) == expected).then_some(seen)
    });
    assert_eq!(whole["node"], home.as_str(), "{whole}");
    assert_eq!(whole["nodes"], json!(IDS), "{whole}");
    let blue_tracks: Vec<String> = whole["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "blue")
        .flat_map(|p| p["tracks"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    std::thread::sleep(Duration::from_secs(5));

    // The blue bot's node dies.
    let killed_at = recording_started.elapsed().as_secs_f64();
    let status = nodes[victim].take().expect("the victim").stop_with("KILL");
    assert!(!status.success());
    drop(blue);
    let dropped = Instant::now();
    wait_for("the dead node's participant gone from the room", Duration::from_secs(15), || {
        let seen = room(node(&nodes, third));
        let left = publishers(&seen);
        (left.len() == 2 && left.iter().all(|(n, _)| n != "blue")).then_some(())
    });
    eprintln!("blue dropped {:?} after the kill", dropped.elapsed());
    let lost_at = recording_started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(4));

    // The subscribers kept green and red all along.
    let (report, _) = load.finish(Duration::from_secs(30));
    assert_eq!(report["totals"]["connected"], SUBSCRIBERS, "{}", report["totals"]);
    for s in report["subscribers"].as_array().unwrap() {
        let tracks = s["tracks"].as_array().unwrap();
        let alive: Vec<&Value> =
            tracks.iter().filter(|t| !blue_tracks.contains(&t["track_id"].as_str().unwrap_or("").to_owned())).collect();
        assert_eq!(alive.len(), 4, "green's and red's audio and video: {s}");
        for t in alive {
            assert!(t["packets"].as_u64().unwrap_or(0) > 100, "{t}");
            let lost = t["lost"].as_u64().unwrap_or(0) as f64 / t["packets"].as_u64().unwrap_or(1) as f64;
            assert!(lost < 0.01, "loss on a track of a live node: {t}");
            if t["kind"] == "video" {
                assert_eq!(t["freezes"], 0, "a freeze on a live node's video: {t}");
            }
        }
        assert!(tracks.iter().any(|t| blue_tracks.contains(&t["track_id"].as_str().unwrap_or("").to_owned())), "{s}");
    }

    // Blue joins again, through the third node: the tile kept for them is theirs again.
    let mut back = node(&nodes, third).bot("mesh", "blue", &BLUE_BOT);
    back.wait_for("published", Duration::from_secs(30));
    let returned_at = recording_started.elapsed().as_secs_f64();
    wait_for("blue back, on the third node", Duration::from_secs(15), || {
        let seen = room(node(&nodes, h));
        (publishers(&seen).contains(&("blue".to_owned(), IDS[third].to_owned()))).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));

    // The recording goes on to a clean end, through the third node.
    post(node(&nodes, third), &format!("/v1/recordings/{rec_id}/stop"), json!({}));
    let done = node(&nodes, third).wait_recording_ended(&rec_id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    let path = done["location"]["path"].as_str().expect("a local recording");
    let path = if Path::new(path).is_absolute() {
        Path::new(path).to_path_buf()
    } else {
        node(&nodes, h).dir.path().join(path)
    };
    let frames = decode_frames(&path, 160, 90);
    let end = frames.last().expect("frames").pts;
    eprintln!(
        "recording {end:.1} s, killed at about {killed_at:.1} s, blue lost at {lost_at:.1} s, back at {returned_at:.1} s"
    );
    let three = grid_centres(&["green", "blue", "red"]);
    let before = (killed_at - 4.0, killed_at - 0.5);
    assert_color(&frames, before.0, before.1, three[0], (W, H), GREEN, "green (hosted by the home node)");
    assert_color(&frames, before.0, before.1, three[1], (W, H), BLUE, "blue (relayed from the node that dies)");
    assert_color(&frames, before.0, before.1, three[2], (W, H), RED, "red (relayed from the third node)");
    // Lost: blue's tile shows their name card (away from the centred name); nobody moved.
    let lost = (lost_at + 1.0, returned_at - 0.5);
    assert!(lost.1 - lost.0 > 2.0, "the placeholder was on for {:.1} s only", lost.1 - lost.0);
    let card = (three[1].0 - 100.0, three[1].1 - 50.0);
    assert_color(&frames, lost.0, lost.1, card, (W, H), CARD, "blue's placeholder while blue is lost");
    assert_color(&frames, lost.0, lost.1, three[0], (W, H), GREEN, "green in place while blue is lost");
    assert_color(&frames, lost.0, lost.1, three[2], (W, H), RED, "red in place while blue is lost");
    // Back: in the same tile.
    let after = (end - 3.0, end - 0.3);
    assert_color(&frames, after.0, after.1, three[0], (W, H), GREEN, "green at the end");
    assert_color(&frames, after.0, after.1, three[1], (W, H), BLUE, "blue back in their tile");
    assert_color(&frames, after.0, after.1, three[2], (W, H), RED, "red at the end");
    let _ = green.stop();
    let _ = red.stop();
    let _ = back.stop();
}

#[test]
fn a_draining_node_sends_its_participants_to_another_node() {
    let redis = Redis::start();
    let mut nodes: Vec<Option<Node>> =
        common::cluster::start(|id| common::cluster::node(&redis, id)).into_iter().map(Some).collect();
    let mut green = node(&nodes, 0).bot("drain", "green", &camera("#00ff00"));
    green.wait_for("published", Duration::from_secs(30));
    let mut yellow = node(&nodes, 1).bot("drain", "yellow", &camera("#ffff00"));
    yellow.wait_for("published", Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("temp dir");
    let token = post(node(&nodes, 1), "/v1/rooms/drain/tokens", json!({"identity": "red", "name": "red"}));
    let page = format!("{}/rooms/drain?token={}&name=red", node(&nodes, 1).url(), token["token"].as_str().unwrap());
    let _browser =
        tessera_testkit::chromium::Browser::open(&page, &[&tessera_testkit::chromium::red_camera(dir.path())]);
    // The node publishing participant `name` is hosted by, as seen through node `seen_through`.
    let hosted_on = |nodes: &[Option<Node>], seen_through: usize, name: &str| -> Option<String> {
        let r = get(node(nodes, seen_through), "/v1/rooms/drain");
        let found = r["participants"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name && p["tracks"].as_array().is_some_and(|t| t.len() == 2))?
            .clone();
        found["node"].as_str().map(str::to_owned)
    };
    let red_on = |nodes: &[Option<Node>], seen_through: usize| hosted_on(nodes, seen_through, "red");
    let first = wait_for("Chromium publishing through n2", Duration::from_secs(30), || red_on(&nodes, 0));
    assert_eq!(first, "n2");

    // n2 drains: it asks Chromium to join again elsewhere, then exits.
    let drained = Instant::now();
    let (status, log) = nodes[1].take().expect("n2").stop_with_log("TERM");
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("participants asked to join again"), "{log}");
    let moved = wait_for("Chromium publishing through another node", Duration::from_secs(30), || {
        red_on(&nodes, 0).filter(|n| n != "n2")
    });
    eprintln!("red moved to {moved} {:?} after the SIGTERM", drained.elapsed());
    assert!(["n1", "n3"].contains(&moved.as_str()));
    // Seen the same through the other node; green is still there.
    assert_eq!(red_on(&nodes, 2).as_deref(), Some(moved.as_str()));
    let r = get(node(&nodes, 2), "/v1/rooms/drain");
    assert!(r["participants"].as_array().unwrap().iter().any(|p| p["name"] == "green" && p["node"] == "n1"), "{r}");
    // The bot followed too: it joined again through the node it was sent to, and publishes.
    let sent_to = yellow.wait_for("reconnecting", Duration::from_secs(10));
    yellow.wait_for_nth("published", 2, Duration::from_secs(30));
    let yellow_on = wait_for("the bot publishing through another node", Duration::from_secs(10), || {
        hosted_on(&nodes, 2, "yellow").filter(|n| n != "n2")
    });
    let url = sent_to["url"].as_str().unwrap_or_default();
    assert_eq!(url, node(&nodes, index(&yellow_on)).url(), "sent to {url}, hosted by {yellow_on}");
    let _ = green.stop();
    let (status, left) = yellow.stop();
    assert!(status.success(), "{status}: {left}");
}

/// Lip sync across a relay link: a bot whose picture flashes white while its tone beeps,
/// hosted by a node that is not the room's home; the home's recording keeps each flash with
/// its beep (sender reports cross the link). The links run through loopback twins that hold
/// the video back by `video_delay`, so the path is uneven unless that is zero.
fn relayed_lip_sync(room: &str, video_delay: Duration) {
    use tessera_testkit::analysis::decode_audio;
    use tessera_testkit::lossy_relay::{NodeRelays, RELAY_IP};
    use tessera_testkit::sync_marks::{IN_SYNC, av_offsets, beep_onsets, flash_onsets};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // Every RTP packet but Opus's (payload type 111, sfu/src/codecs.rs) is held back.
    let relays = runtime.block_on(NodeRelays::start_with_delay(
        3,
        0,
        |_, _| 0.0,
        move |_, _, pt| if pt == 111 { Duration::ZERO } else { video_delay },
    ));
    let redis = Redis::start();
    let nodes: Vec<Option<Node>> = common::cluster::start(|id| {
        let port = relays.ports[index(id)];
        common::cluster::node(&redis, id).args([
            "--relay-port".to_owned(),
            port.to_string(),
            "--relay-public-addr".to_owned(),
            format!("{RELAY_IP}:{port}"),
        ])
    })
    .into_iter()
    .map(Some)
    .collect();
    let rec =
        post(node(&nodes, 0), &format!("/v1/rooms/{room}/recordings"), json!({"video": {"width": W, "height": H}}));
    let rec_id = rec["id"].as_str().expect("a recording id").to_owned();
    let home = index(room_of(node(&nodes, 0), room)["node"].as_str().expect("the home"));
    let away = (home + 1) % 3;
    let marks = ["--sync-marks", "--tone", "1000", "--color", "#202020", "--size", "320x180", "--fps", "30"];
    let mut alice = node(&nodes, away).bot(room, "alice", &marks);
    alice.wait_for("published", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(10));
    post(node(&nodes, 0), &format!("/v1/recordings/{rec_id}/stop"), json!({}));
    let done = node(&nodes, 0).wait_recording_ended(&rec_id, Duration::from_secs(30));
    assert_eq!(done["status"], "completed", "{done}");
    let path = done["location"]["path"].as_str().expect("a local recording");
    let path = if Path::new(path).is_absolute() {
        Path::new(path).to_path_buf()
    } else {
        node(&nodes, home).dir.path().join(path)
    };
    let frames = decode_frames(&path, 160, 90);
    let flashes = flash_onsets(&frames, (f64::from(W) / 2.0, f64::from(H) / 2.0), (W, H));
    let beeps = beep_onsets(&decode_audio(&path));
    assert!(flashes.len() >= 6 && beeps.len() >= 6, "flashes {flashes:?}, beeps {beeps:?}");
    // From 3.5 s after the first flash: the first sender reports have crossed the link.
    let first = flashes[0];
    let offsets = av_offsets(&flashes, &beeps, first + 3.5);
    let delayed = relays.delayed(away, home);
    eprintln!(
        "A/V offsets of a participant relayed from {}, video {video_delay:?} late ({delayed} packets): {offsets:?}",
        IDS[away]
    );
    if !video_delay.is_zero() {
        assert!(delayed > 100, "the link held back {delayed} packets");
    }
    assert!(offsets.len() >= 3, "matched marks: {offsets:?}");
    for o in &offsets {
        assert!(IN_SYNC.contains(o), "A/V offset {:.0} ms (all: {offsets:?})", o * 1000.0);
    }
    let _ = alice.stop();
}

#[test]
fn a_relayed_participant_is_lip_synced_in_the_homes_recording() {
    relayed_lip_sync("sync", Duration::ZERO);
}

/// The link delays the video by 200 ms more than the audio: the home's program holds the
/// audio back to match, from the sender reports that crossed the link.
#[test]
fn a_relayed_participant_stays_lip_synced_when_the_link_delays_its_video() {
    relayed_lip_sync("skew", Duration::from_millis(200));
}
