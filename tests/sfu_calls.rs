//! What the signalling protocol and the SFU do for the others in a call, end to end with
//! headless Chromium on the built-in web client and `tessera bot`s, against the whole app in
//! process: events (joined, published, mute from the page's button, active speaker, left),
//! active speaker smoothing with two browsers talking in turns, selective subscription, a
//! screen share reaching a subscriber and the room's program (from the API and from the page's
//! share button through `getDisplayMedia`), and VP9 passing through to a browser while the
//! program carries on without it.

#[path = "support/app.rs"]
mod app;
#[path = "../sfu/tests/common/mod.rs"]
mod browser;
#[path = "support/cdp.rs"]
mod cdp;
mod common;
#[path = "support/observer.rs"]
mod observer;
#[path = "../compositor/tests/common/mod.rs"]
mod room;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::bot::Bot;
use common::camera::red_camera;
use common::http;
use common::poll::wait;
use common::server::TEST_KEY as KEY;
use observer::Observer;
use room::analysis::decode_frames;
use room::{GREEN, RED, assert_color, tile_center};
use serde_json::{Value, json};
use tessera_compositor::layout::{Layout, TileSource};
use tessera_compositor::{OutputSpec, ProgramConfig};

fn token(port: u16, room: &str, identity: &str) -> String {
    let body = json!({ "identity": identity, "name": identity }).to_string();
    let r = http::post_json(port, &format!("/v1/rooms/{room}/tokens"), Some(KEY), body.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().unwrap().to_owned()
}

/// Chromium on the web client in `room` as `name`, with extra page options and flags.
fn open(port: u16, room: &str, name: &str, options: &str, flags: &[&str]) -> browser::Browser {
    let url = format!("http://127.0.0.1:{port}/rooms/{room}?token={}&name={name}{options}", token(port, room, name));
    browser::Browser::open(&url, flags)
}

fn devtools(b: &browser::Browser, room: &str) -> cdp::Page {
    let port = b.devtools_port(Duration::from_secs(20)).expect("Chromium's DevTools port");
    let mut page = cdp::Page::attach(port, &format!("/rooms/{room}"), Duration::from_secs(20));
    page.wait_for("typeof tesseraClient === 'object' && !!tesseraClient.me", Duration::from_secs(30));
    page
}

/// An audio file for Chromium's fake microphone (it loops it): ffmpeg's `source` filter
/// graph, 48 kHz mono.
fn audio_file(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", source, "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg made no {name}");
    path
}

fn fake_mic(path: &Path) -> String {
    format!("--use-file-for-fake-audio-capture={}", path.display())
}

fn get(port: u16, path: &str) -> Value {
    let r = http::get(port, path, Some(KEY));
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The latest `getStats` summary a participant's page sent (JSON null until one came).
fn page_stats(sfu: &tessera_sfu::Sfu, room: &str, name: &str) -> Value {
    browser::participants(sfu, room)
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.stats.lock().unwrap().clone())
        .unwrap_or(Value::Null)
}

fn frames_of(stats: &Value, track: &str) -> f64 {
    stats["tracks"][track]["framesDecoded"].as_f64().unwrap_or(0.0)
}

/// A participant's published track ids, by source.
fn tracks_of(sfu: &tessera_sfu::Sfu, room: &str, participant: &str) -> Vec<(String, String)> {
    let p = browser::participants(sfu, room).into_iter().find(|p| p.id == participant).expect("participant");
    p.tracks()
        .iter()
        .map(|t| (serde_json::to_value(t.source).unwrap().as_str().unwrap().to_owned(), t.id.clone()))
        .collect()
}

#[test]
fn events_reach_the_others_mute_from_the_page_and_the_speaker() {
    let app = app::App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let tone = audio_file(dir.path(), "tone.wav", "sine=f=440:d=5,volume=0.5");

    let mut obs = Observer::join(port, "ev", &token(port, "ev", "observer"), "observer");
    let alice = open(port, "ev", "alice", "&audio=raw", &[&fake_mic(&tone)]);

    // participant_joined, then track_published for her microphone and camera.
    let joined = obs.wait("participant_joined", Duration::from_secs(30), |m| m["type"] == "participant_joined");
    assert_eq!(joined["participant"]["name"], "alice", "{joined}");
    let alice_id = joined["participant"]["id"].as_str().unwrap().to_owned();
    let published = |m: &Value, source: &str| m["type"] == "track_published" && m["track"]["source"] == source;
    let audio = obs.wait("audio track_published", Duration::from_secs(30), |m| published(m, "audio"));
    let camera = obs.wait("camera track_published", Duration::from_secs(30), |m| published(m, "camera"));
    assert_eq!(
        (audio["track"]["participant_id"].as_str(), audio["track"]["mime_type"].as_str()),
        (Some(alice_id.as_str()), Some("audio/opus"))
    );
    assert_eq!(camera["track"]["mime_type"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("video/vp8"));
    let audio_id = audio["track"]["track_id"].as_str().unwrap().to_owned();
    let camera_id = camera["track"]["track_id"].as_str().unwrap().to_owned();

    // Her steady tone makes her the active speaker, for the others and in the REST API.
    let speaker = obs.wait("active_speaker", Duration::from_secs(20), |m| m["type"] == "active_speaker");
    assert_eq!(speaker["participant_id"].as_str(), Some(alice_id.as_str()));
    let listed = |port| {
        let room = get(port, "/v1/rooms/ev");
        room["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "alice")
            .cloned()
            .expect("alice is listed")
    };
    assert_eq!(listed(port)["speaking"], true);

    // She mutes her microphone, then her camera, with the page's buttons.
    let mut page = devtools(&alice, "ev");
    page.wait_for(
        "!document.getElementById('mute-audio').disabled && tesseraClient.tracks.filter((t) => t.participant_id === tesseraClient.me).length === 2",
        Duration::from_secs(20),
    );
    let muted = |m: &Value, id: &str, on: bool| m["type"] == "mute" && m["track_id"] == id && m["muted"] == on;
    page.click("#mute-audio");
    let m = obs.wait("mute of the microphone", Duration::from_secs(10), |m| muted(m, &audio_id, true));
    assert_eq!(m["participant_id"].as_str(), Some(alice_id.as_str()));
    page.click("#mute-video");
    obs.wait("mute of the camera", Duration::from_secs(10), |m| muted(m, &camera_id, true));
    let track_muted = |p: &Value, id: &str| {
        p["tracks"].as_array().unwrap().iter().find(|t| t["id"] == id).map(|t| t["muted"].clone())
    };
    let p = listed(port);
    assert_eq!(
        (track_muted(&p, &audio_id), track_muted(&p, &camera_id)),
        (Some(json!(true)), Some(json!(true))),
        "{p}"
    );
    assert_eq!(page.eval("document.getElementById('mute-audio').textContent"), "Unmute mic");
    // Unmuting the microphone is told too; a late joiner sees the camera muted in `joined`.
    page.click("#mute-audio");
    obs.wait("unmute of the microphone", Duration::from_secs(10), |m| muted(m, &audio_id, false));
    assert_eq!(track_muted(&listed(port), &audio_id), Some(json!(false)));
    let late = Observer::join(port, "ev", &token(port, "ev", "late"), "late");
    let joined_late = &late.seen[0].1;
    let alice_seen =
        joined_late["participants"].as_array().unwrap().iter().find(|p| p["id"] == alice_id.as_str()).cloned().unwrap();
    let cam =
        alice_seen["tracks"].as_array().unwrap().iter().find(|t| t["track_id"] == camera_id.as_str()).cloned().unwrap();
    assert_eq!(
        (cam["muted"].as_bool(), joined_late["active_speaker"].as_str()),
        (Some(true), Some(alice_id.as_str())),
        "{joined_late}"
    );

    // She closes her browser: her tracks are unpublished, she leaves, nobody speaks.
    drop(page);
    drop(alice);
    for id in [&audio_id, &camera_id] {
        obs.wait("track_unpublished", Duration::from_secs(30), |m| {
            m["type"] == "track_unpublished" && m["track_id"] == id.as_str()
        });
    }
    obs.wait("participant_left", Duration::from_secs(30), |m| {
        m["type"] == "participant_left" && m["participant_id"] == alice_id.as_str()
    });
    obs.wait("active_speaker null", Duration::from_secs(10), |m| {
        m["type"] == "active_speaker" && m["participant_id"].is_null()
    });
    eprintln!("events seen by the observer: {}", obs.seen.len());
}

#[test]
fn the_active_speaker_does_not_flicker_between_two_people_talking_in_turns() {
    let app = app::App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let dir = tempfile::tempdir().unwrap();
    // Each talks for 0.4 s, then is silent for 0.4 s, in turns: a turn every 0.4 s.
    let a = audio_file(dir.path(), "a.wav", "sine=f=440:d=8,volume='if(lt(mod(t,0.8),0.4),0.5,0)':eval=frame");
    let b = audio_file(dir.path(), "b.wav", "sine=f=660:d=8,volume='if(lt(mod(t,0.8),0.4),0,0.5)':eval=frame");
    let mut obs = Observer::join(port, "turns", &token(port, "turns", "observer"), "observer");
    let _a = open(port, "turns", "a", "&audio=raw&video=0", &[&fake_mic(&a)]);
    let _b = open(port, "turns", "b", "&audio=raw&video=0", &[&fake_mic(&b)]);
    let ids: HashSet<String> = obs
        .wait_count("participant_joined", 2, Duration::from_secs(30))
        .iter()
        .map(|m| m["participant"]["id"].as_str().unwrap().to_owned())
        .collect();
    obs.wait_count("track_published", 2, Duration::from_secs(30));
    obs.wait("a first active speaker", Duration::from_secs(20), |m| {
        m["type"] == "active_speaker" && !m["participant_id"].is_null()
    });
    let window = Duration::from_secs(10);
    let start = Instant::now();
    obs.listen(window);
    let changes: Vec<(Instant, String)> = obs
        .of_type("active_speaker")
        .into_iter()
        .filter(|(t, _)| *t >= start)
        .map(|(t, m)| (t, m["participant_id"].as_str().unwrap_or("null").to_owned()))
        .collect();
    let turns = (window.as_secs_f64() / 0.4) as usize;
    eprintln!(
        "{} active speaker changes in {window:?} of {turns} turns: {:?}",
        changes.len(),
        changes.iter().map(|c| (c.0 - start, &c.1)).collect::<Vec<_>>()
    );
    assert!(changes.iter().all(|(_, id)| ids.contains(id)), "{changes:?}");
    for w in changes.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= Duration::from_millis(900), "the speaker flipped after {gap:?}: {changes:?}");
    }
    // Without the hold time (a challenger must lead for 0.7 s) it flipped about every 1.2 s.
    assert!(changes.len() <= 1, "{} changes for {turns} turns: {changes:?}", changes.len());
}

#[test]
fn selective_subscription_receives_only_the_chosen_participant() {
    let app = app::App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let sfu = app.sfu.clone();
    let mut red = Bot::start(port, "sel", "red", &["--color", "#ff0000", "--size", "320x180", "--silent"]);
    let mut blue = Bot::start(port, "sel", "blue", &["--color", "#0000ff", "--size", "320x180", "--silent"]);
    let (red_id, blue_id) = (red.participant_id(), blue.participant_id());
    red.wait_for("published", Duration::from_secs(20));
    blue.wait_for("published", Duration::from_secs(20));
    wait("four published tracks", Duration::from_secs(20), || {
        tracks_of(&sfu, "sel", &red_id).len() == 2 && tracks_of(&sfu, "sel", &blue_id).len() == 2
    });
    let video = |id: &str| tracks_of(&sfu, "sel", id).into_iter().find(|t| t.0 == "camera").unwrap().1;
    let (red_video, blue_video) = (video(&red_id), video(&blue_id));
    let red_tracks: HashSet<String> = tracks_of(&sfu, "sel", &red_id).into_iter().map(|t| t.1).collect();

    let viewer = open(port, "sel", "viewer", "&publish=0", &[]);
    let decodes = |track: &str| frames_of(&page_stats(&sfu, "sel", "viewer"), track);
    wait("the viewer decoding both bots", Duration::from_secs(30), || {
        decodes(&red_video) > 20.0 && decodes(&blue_video) > 20.0
    });

    // Only red, please.
    let mut page = devtools(&viewer, "sel");
    page.eval(&format!("tesseraClient.send({{type: 'subscribe', participants: ['{red_id}']}})"));
    let me = browser::participants(&sfu, "sel").into_iter().find(|p| p.name == "viewer").unwrap();
    wait("the SFU to forward only red's tracks", Duration::from_secs(10), || {
        me.down_tracks().into_iter().map(|(id, _)| id).collect::<HashSet<_>>() == red_tracks
    });
    // The renegotiated offer sends only red's tracks (the other m-sections are inactive).
    let sending = |page: &mut cdp::Page| -> HashSet<String> {
        let sdp = page.eval("tesseraClient.sub.remoteDescription.sdp").as_str().unwrap().to_owned();
        sdp.split("\r\nm=")
            .skip(1)
            .filter(|m| m.contains("a=sendonly") || m.contains("a=sendrecv"))
            .filter_map(|m| {
                m.lines().find_map(|l| l.strip_prefix("a=msid:")).map(|l| l.split(' ').next().unwrap().to_owned())
            })
            .collect()
    };
    wait("a subscribe offer with red's tracks only", Duration::from_secs(10), || sending(&mut page) == red_tracks);
    std::thread::sleep(Duration::from_secs(1));
    let (red0, blue0) = (decodes(&red_video), decodes(&blue_video));
    std::thread::sleep(Duration::from_secs(3));
    let (red1, blue1) = (decodes(&red_video), decodes(&blue_video));
    eprintln!("filtered: red {red0} -> {red1} frames, blue {blue0} -> {blue1}");
    assert!(red1 - red0 >= 30.0, "red stopped: {red0} -> {red1}");
    assert!(blue1 - blue0 <= 2.0, "blue still decodes: {blue0} -> {blue1}");

    // Everyone again.
    page.eval("tesseraClient.send({type: 'subscribe', participants: null})");
    wait("blue's video again", Duration::from_secs(15), || decodes(&blue_video) >= blue1 + 30.0);
    assert_eq!(me.down_tracks().len(), 4);
    let both: HashSet<String> =
        red_tracks.iter().cloned().chain(tracks_of(&sfu, "sel", &blue_id).into_iter().map(|t| t.1)).collect();
    wait("an offer with everyone's tracks", Duration::from_secs(10), || sending(&mut page) == both);
    // A filter naming nobody in the room receives nothing, without an error.
    page.eval("tesseraClient.send({type: 'subscribe', participants: ['PA_nobody']})");
    wait("nothing forwarded", Duration::from_secs(10), || me.down_tracks().is_empty());
    assert!(page_stats(&sfu, "sel", "viewer")["errors"].as_array().is_some_and(|e| e.is_empty()));
}

#[test]
fn a_screen_share_reaches_the_others_and_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let app = app::App::start(KEY);
    let (port, sfu) = (app.port, app.sfu.clone());
    let _guard = app.rt.enter();
    let program =
        app.hub.start_program("share", ProgramConfig::default(), Layout::builtin("active-speaker").unwrap()).unwrap();
    let path = dir.path().join("program.mp4");
    let rec = program.attach_output(OutputSpec::mp4_file(&path)).unwrap();

    let mut obs = Observer::join(port, "share", &token(port, "share", "observer"), "observer");
    // A second participant (so the layout has a main picture and a strip) who receives.
    let mut viewer =
        Bot::start(port, "share", "viewer", &["--color", "#0000ff", "--size", "320x180", "--silent", "--subscribe"]);
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
    let bot = browser::participants(&sfu, "share").into_iter().find(|p| p.id == viewer_id).unwrap();
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
    let metrics = String::from_utf8_lossy(&common::http::get(port, "/metrics", None).body).to_string();
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

/// `(track id, MIME type)` of what the participant named `name` publishes.
fn published(sfu: &tessera_sfu::Sfu, room: &str, name: &str) -> Vec<(String, String)> {
    browser::participants(sfu, room)
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
    let app = app::App::start(KEY);
    let (port, sfu) = (app.port, app.sfu.clone());
    let _guard = app.rt.enter();
    let program = app.hub.start_program("codecs", ProgramConfig::default(), Layout::builtin("grid").unwrap()).unwrap();
    let viewer = open(port, "codecs", "viewer", "&publish=0", &[]);
    let _pub = open(port, "codecs", "pub", "&codec=vp9", &[]);
    let mut red = Bot::start(port, "codecs", "red", &["--color", "#ff0000", "--size", "320x180", "--silent"]);
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

/// Chromium's fake screen (`--use-fake-device-for-media-stream`): green, with a pacman and
/// counters down its middle.
const FAKE_SCREEN_GREEN: u32 = 0x008300;

/// The web client's share button, pressed with the mouse as a user does: `getDisplayMedia`
/// (the real browser API, answered by Chromium's fake screen) publishes a screen share that
/// the program shows as the main picture, with the camera beside it.
#[test]
fn the_share_button_captures_the_screen_into_the_program() {
    let app = app::App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let program =
        app.hub.start_program("gdm", ProgramConfig::default(), Layout::builtin("active-speaker").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("program.mp4");
    let rec = program.attach_output(OutputSpec::mp4_file(&path)).unwrap();
    let _viewer =
        Bot::start(port, "gdm", "viewer", &["--color", "#0000ff", "--size", "320x180", "--silent", "--subscribe"]);
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
