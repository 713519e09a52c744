//! A browser in a call appears in the room's program: headless Chromium joins through the web
//! client with a token minted by the REST API, the SFU hands its tracks to the compositor in
//! process, and the recorded program shows its camera (a solid red test video) in its tile.

mod common;

use std::time::{Duration, Instant};

use common::app::App;
use common::participants;
use tessera_compositor::harness::tile_center;
use tessera_compositor::layout::Layout;
use tessera_compositor::{OutputSpec, ProgramConfig};
use tessera_testkit::analysis::{RED, assert_color, assert_continuous, decode_frames};
use tessera_testkit::chromium::{Browser, red_camera};
use tessera_testkit::http;

const KEY: &str = "rtc-test-api-key-0123456789";

#[test]
fn a_browser_in_a_call_appears_in_the_room_program() {
    let dir = tempfile::tempdir().unwrap();
    let camera = red_camera(dir.path());
    let app = App::start(KEY);
    let (port, hub, sfu) = (app.port, app.hub.clone(), app.sfu.clone());
    let _guard = app.rt.enter();

    // The application mints a participant token with its API key.
    let resp = http::post_json(
        port,
        "/v1/rooms/demo/tokens",
        Some(KEY),
        br#"{"identity":"alice","name":"Alice","ttl_s":600}"#,
    );
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let token = resp.json()["token"].as_str().unwrap().to_string();
    // A token for another room does not open this one.
    let other = http::post_json(port, "/v1/rooms/other/tokens", Some(KEY), br#"{"identity":"x"}"#);
    assert_eq!(other.status, 201);

    // The room's program runs and records while Alice joins from a browser.
    let program =
        hub.start_program("demo", ProgramConfig::default(), Layout::builtin("grid").unwrap()).expect("program starts");
    let path = dir.path().join("program.mp4");
    let rec = program.attach_output(OutputSpec::mp4_file(&path)).unwrap();
    let url = format!("http://127.0.0.1:{port}/rooms/demo?token={token}&name=Alice");
    let _alice = Browser::open(&url, &[&camera]);

    // Both of her tracks reach the program, and her video decodes there.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tracks = program.stats().tracks;
        let decoding = program.participants().iter().any(|p| p.camera.is_some_and(|c| c.width > 0));
        if tracks >= 2 && decoding {
            break;
        }
        assert!(Instant::now() < deadline, "the browser's tracks never reached the program: {:?}", program.stats());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(4));
    let tiles = program.tiles();
    let alice = program.participants().into_iter().find(|p| p.name == "Alice").expect("Alice is in the program");
    let stats = program.detach_output(rec).unwrap();

    let frames = decode_frames(&path, 160, 90);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames);
    let end = frames.last().unwrap().pts;
    let at = tile_center(&tiles, &alice.id).expect("Alice has a tile");
    assert_color(&frames, end - 2.0, end, at, (1280, 720), RED, "Alice's camera");

    // A wrong token never joins: the WebSocket join is refused and the room keeps one person.
    let forged = format!("http://127.0.0.1:{port}/rooms/demo?token={}x&name=Mallory", &token[..token.len() - 1]);
    let _mallory = Browser::open(&forged, &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(participants(&sfu, "demo").len(), 1);
    hub.stop_program("demo");
}
