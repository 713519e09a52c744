//! WHEP playback of a room's program, end to end: two bots publish red and blue in a room;
//! headless Chromium opens the room's watch page (`/rooms/{room}/watch?token=…`), whose
//! script plays the program by WHEP with the browser's own RTCPeerConnection. Nothing
//! records or streams the room: the first viewer starts its program. Chromium decodes the
//! program's H.264 with red and blue in their grid tiles and receives its Opus; a second
//! viewer, joining later, gets a picture at once; when both have left, the program stops.

mod common;

use common::players::{self, is_blue, is_red, whep_leave, whep_playing};

use std::time::Duration;

use serde_json::json;
use tessera_testkit::chromium::Browser;
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::tessera::{Node, TEST_KEY};

const KEY: Option<&str> = Some(TEST_KEY);
/// The program's canvas when WHEP starts it (the default).
const CANVAS: (u32, u32) = (1280, 720);

/// A viewer's token (subscribe only) and the watch page's URL.
fn watch_url(node: &Node, identity: &str) -> String {
    let body = json!({"identity": identity, "publish": false}).to_string();
    let r = http::post_json(node.port, "/v1/rooms/whep/tokens", KEY, body.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    format!("{}/rooms/whep/watch?token={}", node.url(), r.json()["token"].as_str().unwrap())
}

/// The colour of the watch page's picture at canvas point `at`.
fn colour_at(tab: &mut tessera_testkit::cdp::Page, at: (f64, f64)) -> [u8; 3] {
    players::colour_at(tab, "window.tesseraWatch", at, CANVAS)
}

#[test]
fn chromium_plays_the_rooms_program_by_whep() {
    let node = common::node().start();
    let mut red = node.bot("whep", "red", &["--color", "#ff0000", "--size", "320x180", "--fps", "15"]);
    red.wait_for("published", Duration::from_secs(30));
    let mut blue = node.bot("whep", "blue", &["--color", "#0000ff", "--size", "320x180", "--fps", "15"]);
    blue.wait_for("published", Duration::from_secs(30));
    assert!(http::get(node.port, "/v1/rooms/whep", KEY).json()["program"].is_null(), "no program before a viewer");

    let first = Browser::open(&watch_url(&node, "viewer-1"), &[]);
    let mut tab = first.page("/watch");
    let stats = whep_playing(&mut tab);
    assert_eq!(stats["video"]["mimeType"], "video/H264", "{stats}");
    assert_eq!(stats["audio"]["mimeType"], "audio/opus", "{stats}");
    assert_eq!(
        (stats["video"]["frameWidth"].as_u64(), stats["video"]["frameHeight"].as_u64()),
        (Some(1280), Some(720))
    );
    let room = http::get(node.port, "/v1/rooms/whep", KEY).json();
    assert_eq!(room["whep_viewers"], 1, "{room}");
    assert_eq!(room["participants"].as_array().map(Vec::len), Some(2), "viewers are no participants: {room}");

    // Red and blue in their tiles of the grid (the bots joined in that order).
    let tiles = tessera_compositor::harness::grid_centres(&["red", "blue"], CANVAS, (320, 180));
    wait_for("red and blue in their tiles", Duration::from_secs(10), || {
        let (r, b) = (colour_at(&mut tab, tiles[0]), colour_at(&mut tab, tiles[1]));
        (is_red(r) && is_blue(b)).then_some(())
    });

    // A second viewer, later: a picture at once (a keyframe forced for it).
    let second = Browser::open(&watch_url(&node, "viewer-2"), &[]);
    let mut tab2 = second.page("/watch");
    whep_playing(&mut tab2);
    let first_frame = tab2.eval("window.tesseraWatch.firstFrameMs");
    eprintln!("the second viewer's first frame after {first_frame} ms (from the page's start)");
    assert!(first_frame.as_f64().is_some_and(|ms| ms < 3000.0), "first frame after {first_frame} ms");
    assert_eq!(http::get(node.port, "/v1/rooms/whep", KEY).json()["whep_viewers"], 2);

    // Both leave (the page's DELETE): nothing else uses the program, so it stops.
    for t in [&mut tab, &mut tab2] {
        let status = whep_leave(t);
        assert!(status.as_u64().is_some_and(|s| (200..300).contains(&s)), "DELETE answered {status}");
    }
    wait_for("the program to stop", Duration::from_secs(15), || {
        let room = http::get(node.port, "/v1/rooms/whep", KEY).json();
        (room["program"].is_null() && room["whep_viewers"] == 0).then_some(())
    });
    drop((first, second));
    let _ = red.stop();
    let _ = blue.stop();
}
