//! Codecs: a camera offered only in VP9 is refused, and the call and the program go on.

use std::time::Duration;

use tessera_compositor::ProgramConfig;
use tessera_compositor::layout::Layout;
use tessera_testkit::bot::Bot;
use tessera_testkit::poll::wait;

use super::{KEY, frames_of, get, open, page_stats};
use crate::common::app::App;
use crate::common::{BIN, participants};

/// `(track id, MIME type)` of what the participant named `name` publishes.
fn published(sfu: &tessera_sfu::Sfu, room: &str, name: &str) -> Vec<(String, String)> {
    participants(sfu, room)
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.tracks().iter().map(|t| (t.id.clone(), t.codec.mime_type.clone())).collect())
        .unwrap_or_default()
}

/// The SFU negotiates Opus, VP8 and H.264 only (what the program decodes and every browser
/// receives): a camera offered only in VP9 is refused, its audio still flows, and the call
/// and the program go on with everyone else.
#[test]
fn a_camera_only_in_vp9_is_refused_and_the_call_goes_on() {
    let app = App::start(KEY);
    let (port, sfu) = (app.port, app.sfu.clone());
    let _guard = app.rt.enter();
    let program = app.hub.start_program("codecs", ProgramConfig::default(), Layout::builtin("grid").unwrap()).unwrap();
    let viewer = open(port, "codecs", "viewer", "&publish=0", &[]);
    let _pub = open(port, "codecs", "pub", "&codec=vp9", &[]);
    let mut red = Bot::start(BIN, port, KEY, "codecs", "red", &["--color", "#ff0000", "--size", "320x180", "--silent"]);
    red.wait_for("published", Duration::from_secs(20));

    // pub is in the call with its microphone only; red's VP8 camera is there.
    wait("pub's audio", Duration::from_secs(30), || {
        published(&sfu, "codecs", "pub").iter().any(|(_, mime)| mime.eq_ignore_ascii_case("audio/opus"))
    });
    std::thread::sleep(Duration::from_secs(1));
    let pub_tracks = published(&sfu, "codecs", "pub");
    assert!(pub_tracks.iter().all(|(_, mime)| !mime.to_ascii_lowercase().starts_with("video/")), "{pub_tracks:?}");
    let listed = get(port, "/v1/rooms/codecs").to_string().to_ascii_lowercase();
    assert!(!listed.contains("video/vp9") && listed.contains("video/vp8"), "{listed}");

    // The viewer decodes red's camera and receives pub's audio.
    let red_video = published(&sfu, "codecs", "red")
        .into_iter()
        .find(|(_, m)| m.eq_ignore_ascii_case("video/VP8"))
        .expect("red's camera")
        .0;
    let pub_audio =
        pub_tracks.iter().find(|(_, m)| m.eq_ignore_ascii_case("audio/opus")).expect("pub's audio").0.clone();
    wait("the viewer to decode red and hear pub", Duration::from_secs(40), || {
        let s = page_stats(&sfu, "codecs", "viewer");
        frames_of(&s, &red_video) > 30.0 && s["tracks"][&pub_audio]["packetsReceived"].as_f64().unwrap_or(0.0) > 50.0
    });
    drop(viewer);

    // The program shows red's camera and pub's name card, and runs on.
    let frames0 = program.stats().frames;
    std::thread::sleep(Duration::from_secs(2));
    assert!(program.stats().frames >= frames0 + 40, "the program stalled");
    let people = program.participants();
    assert!(people.iter().any(|p| p.name == "red" && p.camera.is_some_and(|c| c.width > 0)), "{people:?}");
    assert!(people.iter().any(|p| p.name == "pub" && p.camera.is_none()), "{people:?}");
    app.hub.stop_program("codecs");
}
