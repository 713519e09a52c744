//! Several rooms recorded at once keep their bookkeeping apart: three rooms, each with its own
//! coloured participant, recorded at 1280x720 at the same time and stopped in another order
//! than they were started, plus a second recording of one of them. Every file holds its own
//! room's colour and nothing of the others, as many frames as its duration, and the bytes its
//! resource reports; the second recording changes nothing of the first; once everything has
//! stopped, no program is left running.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::analysis::{BLUE, Frame, GREEN, RED, close, decode_frames, probe};
use tessera_testkit::http;
use tessera_testkit::tessera::TEST_KEY;

const VIDEO: &str = r#""video":{"width":1280,"height":720,"fps":15,"bitrate_kbps":1500}"#;

fn post(port: u16, path: &str, body: &str) -> Value {
    let r = http::post_json(port, path, Some(TEST_KEY), body.as_bytes());
    assert!(r.status == 200 || r.status == 201, "POST {path}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

fn get(port: u16, path: &str) -> Value {
    let r = http::get(port, path, Some(TEST_KEY));
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A recording as it was started and as it ended.
struct Recorded {
    room: &'static str,
    colour: u32,
    id: String,
    ran: f64,
}

/// Every frame after the first second shows `own` in the middle and none of `others` at any
/// point of a 9x9 grid over the canvas.
fn assert_only_own_colour(frames: &[Frame], own: u32, others: &[u32], what: &str) {
    let settled: Vec<&Frame> = frames.iter().filter(|f| f.pts >= 1.0).collect();
    assert!(!settled.is_empty(), "{what}: no frames after the first second");
    for f in settled {
        let centre = f.color_at(640.0, 360.0, 1280, 720);
        assert!(close(centre, own), "{what} t={:.3}: centre {centre:?}, want #{own:06x}", f.pts);
        for gx in 1..10 {
            for gy in 1..10 {
                let c = f.color_at(gx as f64 * 128.0, gy as f64 * 72.0, 1280, 720);
                for other in others {
                    assert!(!close(c, *other), "{what} t={:.3}: #{other:06x} of another room at ({gx}, {gy})", f.pts);
                }
            }
        }
    }
}

#[test]
fn three_rooms_recorded_at_once_keep_their_recordings_apart() {
    let server = common::node().start();
    let port = server.port;
    let rooms: [(&str, u32, &str); 3] =
        [("alpha", RED, "#ff0000"), ("bravo", GREEN, "#00ff00"), ("charlie", BLUE, "#0000ff")];
    let mut bots = Vec::new();
    for (room, _, hex) in rooms {
        let mut bot = server.bot(room, room, &["--color", hex, "--size", "320x180", "--fps", "15", "--silent"]);
        bot.wait_for("published", Duration::from_secs(30));
        bots.push(bot);
    }

    // Started alpha, bravo, charlie; then a second recording of alpha.
    let start = |room: &str| {
        let rec = post(port, &format!("/v1/rooms/{room}/recordings"), &format!(r#"{{"layout":"grid",{VIDEO}}}"#));
        (rec["id"].as_str().expect("id").to_owned(), Instant::now())
    };
    let mut started = Vec::new();
    for (room, colour, _) in rooms {
        let (id, at) = start(room);
        started.push((room, colour, id, at));
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (second_id, second_at) = start("alpha");
    std::thread::sleep(Duration::from_secs(4));

    // Stopped bravo, then alpha's second, then charlie, then alpha's first.
    let stop = |id: &str, at: Instant| {
        let ran = at.elapsed().as_secs_f64();
        let r = http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        ran
    };
    let mut recorded = Vec::new();
    let by_room = |room: &str| started.iter().find(|s| s.0 == room).cloned().expect("started");
    let (room, colour, id, at) = by_room("bravo");
    recorded.push(Recorded { room, colour, ran: stop(&id, at), id });
    // While alpha's first recording still runs.
    recorded.push(Recorded { room: "alpha", colour: RED, ran: stop(&second_id, second_at), id: second_id.clone() });
    std::thread::sleep(Duration::from_secs(2));
    let first_alpha = get(port, &format!("/v1/recordings/{}", by_room("alpha").2));
    assert_eq!(first_alpha["status"], "recording", "the second recording's end left the first running: {first_alpha}");
    for room in ["charlie", "alpha"] {
        let (room, colour, id, at) = by_room(room);
        recorded.push(Recorded { room, colour, ran: stop(&id, at), id });
    }

    let all_colours: Vec<u32> = rooms.iter().map(|r| r.1).collect();
    for r in &recorded {
        // 60 s at most: three programs share two cores.
        let done = server.wait_recording_ended(&r.id, Duration::from_secs(60));
        let what = format!("{} ({})", r.room, r.id);
        assert_eq!(done["status"], "completed", "{what}: {done}");
        assert_eq!(done["room"], r.room, "{what}: {done}");
        assert!(done["error"].is_null(), "{what}: {done}");
        let path = PathBuf::from(done["location"]["path"].as_str().expect("a local path"));
        // The bytes the resource reports are the file's.
        assert_eq!(done["bytes"].as_u64(), Some(std::fs::metadata(&path).expect("the file").len()), "{what}: {done}");
        // As long as it ran (the program starts within a second of the request), with a
        // frame for every 1/15 s of its duration.
        let p = probe(&path);
        let duration = done["duration_s"].as_f64().expect("duration_s");
        assert!(
            p.duration > r.ran - 1.5 && p.duration < r.ran + 0.5,
            "{what}: {} s in the file, ran {:.2} s",
            p.duration,
            r.ran
        );
        assert!(
            (duration - p.duration).abs() < 0.5,
            "{what}: the resource says {duration} s, the file {} s",
            p.duration
        );
        assert!(
            (p.video_frames as f64 - p.duration * 15.0).abs() <= 3.0,
            "{what}: {} frames in {} s",
            p.video_frames,
            p.duration
        );
        assert!(p.max_gap < 0.1, "{what}: a gap of {} s", p.max_gap);
        let frames = decode_frames(&path, 160, 90);
        let others: Vec<u32> = all_colours.iter().copied().filter(|c| *c != r.colour).collect();
        assert_only_own_colour(&frames, r.colour, &others, &what);
    }
    // Alpha's first recording ran through the whole of the second one.
    let first = recorded.iter().find(|r| r.id == by_room("alpha").2).expect("alpha's first");
    let second = recorded.iter().find(|r| r.id == second_id).expect("alpha's second");
    assert!(first.ran > second.ran + 5.0, "alpha first {:.1} s, second {:.1} s", first.ran, second.ran);

    // Nothing records the rooms any more: their programs are released.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rooms = get(port, "/v1/rooms");
        let running: Vec<&Value> =
            rooms["rooms"].as_array().unwrap().iter().filter(|r| !r["program"].is_null()).collect();
        if running.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "programs still running after every recording ended: {running:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(bots);
}

/// A recording stopped and another started at once, over and over (what an application that
/// rolls its recordings does): each start is accepted, whether it lands on the program the
/// last one used or on a new one while the old one is stopping, and each recording completes.
#[test]
fn recordings_restarted_at_once_are_each_accepted_and_completed() {
    let server = common::node().start();
    let port = server.port;
    let body = r#"{"layout":"grid","video":{"width":320,"height":180,"fps":15,"bitrate_kbps":300}}"#;
    let mut ids = Vec::new();
    for round in 0..8 {
        let rec = http::post_json(port, "/v1/rooms/rolling/recordings", Some(TEST_KEY), body.as_bytes());
        assert_eq!(rec.status, 201, "round {round}: {}\n{}", String::from_utf8_lossy(&rec.body), server.stderr());
        let id = rec.json()["id"].as_str().expect("id").to_owned();
        std::thread::sleep(Duration::from_millis(700 + 150 * (round % 3)));
        let stop = http::post_json(port, &format!("/v1/recordings/{id}/stop"), Some(TEST_KEY), b"");
        assert_eq!(stop.status, 200, "round {round}: {}", String::from_utf8_lossy(&stop.body));
        ids.push(id);
    }
    for id in &ids {
        let done = server.wait_recording_ended(id, Duration::from_secs(60));
        assert_eq!(done["status"], "completed", "{done}");
    }
}
