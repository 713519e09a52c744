//! WHEP in cluster mode, end to end: three `tessera serve` nodes on one `redis-server`; two
//! bots publish red and blue; headless Chromium opens the watch page on a node that is not the
//! room's home. The viewer is served by that node: the home publishes the room's program (it
//! hears of the viewer from that node, not from the viewer) and the program reaches the
//! viewer's node through the relay. Chromium decodes the program with red and blue in their
//! tiles; when the viewer leaves, the home hears of it and the program stops.

mod common;

use std::time::Duration;

use serde_json::json;
use tessera_testkit::chromium::Browser;
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;

use common::cluster::{IDS, get, index, post};
use common::players::{self, is_blue, is_red, whep_leave, whep_playing};

const ROOM: &str = "watchparty";
/// The program's canvas when WHEP starts it (the default).
const CANVAS: (u32, u32) = (1280, 720);

fn colour_at(tab: &mut tessera_testkit::cdp::Page, at: (f64, f64)) -> [u8; 3] {
    players::colour_at(tab, "window.tesseraWatch", at, CANVAS)
}

#[test]
fn a_whep_viewer_on_another_node_than_the_home_gets_the_program_through_the_relay() {
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id));
    let mut red = nodes[0].bot(ROOM, "red", &["--color", "#ff0000", "--size", "320x180", "--fps", "15"]);
    red.wait_for("published", Duration::from_secs(30));
    let mut blue = nodes[0].bot(ROOM, "blue", &["--color", "#0000ff", "--size", "320x180", "--fps", "15"]);
    blue.wait_for("published", Duration::from_secs(30));
    let home = common::cluster::room_with(&nodes[0], ROOM, "blue")["node"].as_str().expect("a home").to_owned();
    let viewer_node = IDS.iter().find(|id| **id != home).expect("another node");
    let viewer_at = &nodes[index(viewer_node)];

    let token = post(viewer_at, &format!("/v1/rooms/{ROOM}/tokens"), json!({"identity": "fan", "publish": false}));
    let page = format!("{}/rooms/{ROOM}/watch?token={}", viewer_at.url(), token["token"].as_str().unwrap());
    let browser = Browser::open(&page, &[]);
    let mut tab = browser.page("/watch");
    let stats = whep_playing(&mut tab);
    assert_eq!(stats["video"]["mimeType"], "video/H264", "{stats}");

    // The home counts the viewer as the other node's; the program's media reached that node
    // over the relay.
    let room = get(&nodes[index(&home)], &format!("/v1/rooms/{ROOM}"));
    assert_eq!(room["whep_viewers"], 0, "{room}");
    assert_eq!(room["whep_viewers_elsewhere"], json!({ *viewer_node: 1 }), "{room}");
    assert!(!room["program"].is_null(), "{room}");
    let metrics = String::from_utf8(http::get(viewer_at.port, "/metrics", None).body).unwrap_or_default();
    let relayed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tessera_relay_packets_received_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(relayed > 100.0, "packets relayed to the viewer's node: {metrics}");

    // Red and blue in the grid's two tiles. (Both joined through one node that is not always
    // the home, which then learns of them in one round: their order there is not the test's.)
    let tiles = tessera_compositor::harness::grid_centres(&["red", "blue"], CANVAS, (320, 180));
    wait_for("red and blue in the two tiles", Duration::from_secs(10), || {
        let (a, b) = (colour_at(&mut tab, tiles[0]), colour_at(&mut tab, tiles[1]));
        ((is_red(a) && is_blue(b)) || (is_blue(a) && is_red(b))).then_some(())
    });

    // The viewer leaves (DELETE on the node that answered): the home hears of it, and the
    // program, which nothing else uses, stops.
    let status = whep_leave(&mut tab);
    assert!(status.as_u64().is_some_and(|s| (200..300).contains(&s)), "DELETE answered {status}");
    wait_for("the program to stop", Duration::from_secs(20), || {
        let room = get(&nodes[index(&home)], &format!("/v1/rooms/{ROOM}"));
        (room["program"].is_null() && room["whep_viewers_elsewhere"] == json!({})).then_some(())
    });
    drop(browser);
    let _ = red.stop();
    let _ = blue.stop();
}
