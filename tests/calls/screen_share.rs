//! A screen share reaches the others and the room's program: a canvas shared from the page's
//! script, and the share button pressed with the mouse (`getDisplayMedia` on Chromium's fake
//! screen).

use std::time::Duration;

use tessera_compositor::harness::tile_center;
use tessera_compositor::layout::{Layout, TileSource};
use tessera_compositor::{OutputSpec, ProgramConfig};
use tessera_testkit::analysis::{GREEN, RED, assert_color, decode_frames};
use tessera_testkit::bot::Bot;
use tessera_testkit::chromium::red_camera;
use tessera_testkit::http;
use tessera_testkit::poll::wait;

use super::{KEY, devtools, open};
use crate::common::app::App;
use crate::common::observer::Observer;
use crate::common::{BIN, participants, token};

#[test]
fn a_screen_share_reaches_the_others_and_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(KEY);
    let (port, sfu) = (app.port, app.sfu.clone());
    let _guard = app.rt.enter();
    let program =
        app.hub.start_program("share", ProgramConfig::default(), Layout::builtin("active-speaker").unwrap()).unwrap();
    let path = dir.path().join("program.mp4");
    let rec = program.attach_output(OutputSpec::mp4_file(&path)).unwrap();

    let mut obs = Observer::join(port, "share", &token(port, KEY, "share", "observer"), "observer");
    // A second participant (so the layout has a main picture and a strip) who receives.
    let mut viewer = Bot::start(
        BIN,
        port,
        KEY,
        "share",
        "viewer",
        &["--color", "#0000ff", "--size", "320x180", "--silent", "--subscribe"],
    );
    let viewer_id = viewer.participant_id();
    let alice = open(port, "share", "alice", "", &[&red_camera(dir.path())]);
    let mut page = devtools(&alice, "share");
    page.wait_for("!!tesseraClient.pub && !document.getElementById('share').disabled", Duration::from_secs(30));
    wait("alice's camera in the program", Duration::from_secs(30), || {
        program.participants().iter().any(|p| p.name == "alice" && p.camera.is_some_and(|c| c.width > 0))
    });

    // She shares a "screen": a green canvas captured as a video track, declared `screen`.
    page.eval(
        "(async () => { const c = document.createElement('canvas'); c.width = 1280; c.height = 720; \
         const g = c.getContext('2d'); let n = 0; \
         setInterval(() => { g.fillStyle = '#00ff00'; g.fillRect(0, 0, 1280, 720); \
           g.fillStyle = (n++ % 2) ? '#00fe00' : '#00ff00'; g.fillRect(0, 0, 4, 4); }, 50); \
         const s = c.captureStream(20); await tesseraClient.shareTrack(s.getVideoTracks()[0], s); return true; })()",
    );
    let shared = obs.wait("a screen track_published", Duration::from_secs(20), |m| {
        m["type"] == "track_published" && m["track"]["source"] == "screen"
    });
    let screen_id = shared["track"]["track_id"].as_str().unwrap().to_owned();
    // The other participant receives it: the SFU forwards it to the bot.
    let bot = participants(&sfu, "share").into_iter().find(|p| p.id == viewer_id).unwrap();
    wait("the screen share forwarded to the bot", Duration::from_secs(20), || {
        bot.down_tracks().iter().any(|(id, d)| *id == screen_id && d.forwarded() > 50)
    });
    // The program shows it in active-speaker's main picture, the camera in the strip.
    wait("the screen share in the program", Duration::from_secs(30), || {
        program.participants().iter().any(|p| p.screen.is_some_and(|s| s.width > 0))
    });
    std::thread::sleep(Duration::from_secs(3));
    let tiles = program.tiles();
    let alice_p = program.participants().into_iter().find(|p| p.name == "alice").expect("alice in the program");
    let screen = tiles
        .iter()
        .find(|t| t.participant == alice_p.id && t.source == TileSource::Screen)
        .expect("a screen tile")
        .rect;
    let stats = program.detach_output(rec).unwrap();
    assert!(stats.video_frames > 0);
    let frames = decode_frames(&path, 160, 90);
    let end = frames.last().unwrap().pts;
    let at = (screen.x as f64 + screen.width as f64 / 2.0, screen.y as f64 + screen.height as f64 / 2.0);
    assert!(screen.width >= 640, "the screen share is the main picture: {screen:?}");
    assert_color(&frames, end - 2.0, end, at, (1280, 720), GREEN, "alice's screen share");
    let cam = tile_center(&tiles, &alice_p.id).expect("alice's camera tile");
    assert_color(&frames, end - 2.0, end, cam, (1280, 720), RED, "alice's camera");
    let metrics = String::from_utf8_lossy(&http::get(port, "/metrics", None).body).to_string();
    let forwarded: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tessera_sfu_forwarded_bytes ")?.parse().ok())
        .expect("forwarded bytes in /metrics");
    // Over 50 packets reached the viewer by now: their payloads are counted (a canvas share
    // and a small camera make a few tens of kB).
    assert!(forwarded > 10_000.0, "{forwarded} bytes forwarded");
    let (exit, report) = viewer.stop();
    assert!(exit.success() && report["packets_received"].as_u64().unwrap() > 100, "{report}");
    app.hub.stop_program("share");
}

/// Chromium's fake screen (`--use-fake-device-for-media-stream`): green, with a pacman and
/// counters down its middle.
const FAKE_SCREEN_GREEN: u32 = 0x008300;

/// The web client's share button, pressed with the mouse as a user does: `getDisplayMedia`
/// (the real browser API, answered by Chromium's fake screen) publishes a screen share that
/// the program shows as the main picture, with the camera beside it.
#[test]
fn the_share_button_captures_the_screen_into_the_program() {
    let app = App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let program =
        app.hub.start_program("gdm", ProgramConfig::default(), Layout::builtin("active-speaker").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("program.mp4");
    let rec = program.attach_output(OutputSpec::mp4_file(&path)).unwrap();
    let _viewer = Bot::start(
        BIN,
        port,
        KEY,
        "gdm",
        "viewer",
        &["--color", "#0000ff", "--size", "320x180", "--silent", "--subscribe"],
    );
    let alice = open(port, "gdm", "alice", "", &[&red_camera(dir.path())]);
    let mut page = devtools(&alice, "gdm");
    page.wait_for("!!tesseraClient.pub && !document.getElementById('share').disabled", Duration::from_secs(30));
    page.click("#share");
    let surface = page.wait_for(
        "(() => { const s = tesseraClient.pub.getSenders().find(s => s.track && s.track.getSettings().displaySurface); \
         return s ? s.track.getSettings().displaySurface : null; })()",
        Duration::from_secs(20),
    );
    assert_eq!(surface, "monitor", "getDisplayMedia captured the screen");
    wait("the screen share in the program", Duration::from_secs(30), || {
        program.participants().iter().any(|p| p.name == "alice" && p.screen.is_some_and(|s| s.width > 0))
    });
    std::thread::sleep(Duration::from_secs(3));
    let tiles = program.tiles();
    let alice_p = program.participants().into_iter().find(|p| p.name == "alice").expect("alice in the program");
    let screen = tiles
        .iter()
        .find(|t| t.participant == alice_p.id && t.source == TileSource::Screen)
        .expect("a screen tile")
        .rect;
    program.detach_output(rec).unwrap();
    let frames = decode_frames(&path, 160, 90);
    let end = frames.last().unwrap().pts;
    assert!(screen.width >= 640, "the screen share is the main picture: {screen:?}");
    // Chromium's fake screen is green with a pacman and counters down its middle.
    for fx in [0.25, 0.75] {
        let at = (screen.x as f64 + screen.width as f64 * fx, screen.y as f64 + screen.height as f64 / 2.0);
        assert_color(&frames, end - 2.0, end, at, (1280, 720), FAKE_SCREEN_GREEN, "alice's captured screen");
    }
    let cam = tile_center(&tiles, &alice_p.id).expect("alice's camera tile");
    assert_color(&frames, end - 2.0, end, cam, (1280, 720), RED, "alice's camera");
}
