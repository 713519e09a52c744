//! LL-HLS of a room's program, end to end: two bots publish red and blue; an HLS output is
//! started with a copy in the bucket (SeaweedFS). Tessera serves the playlist with parts of at
//! most 500 ms and blocks a reload until the part it names exists; hls.js in headless Chromium
//! plays it in low-latency mode (red and blue in their grid tiles, audio decoded, its latency
//! behind the live edge measured); ffprobe reads H.264 + AAC from the same playlist; after
//! the stop the playlist ends and the bucket holds it (plain HLS) with the header and segments.

mod common;

use common::players::{self, is_blue, is_red};

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::chromium::{Browser, hlsjs_player};
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::s3::Weed;
use tessera_testkit::tessera::TEST_KEY;

const KEY: Option<&str> = Some(TEST_KEY);
/// The program's canvas when HLS starts it (the default).
const CANVAS: (u32, u32) = (1280, 720);

/// The path (and query) of a URL on the node.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_owned())
}

/// `#EXT-X-PART` durations and URIs of a playlist.
fn parts(playlist: &str) -> Vec<(f64, String)> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .map(|attrs| {
            let duration = attrs.split(',').find_map(|a| a.strip_prefix("DURATION=")).and_then(|d| d.parse().ok());
            let uri = attrs.split("URI=\"").nth(1).and_then(|u| u.split('"').next()).unwrap_or_default();
            (duration.unwrap_or(f64::NAN), uri.to_owned())
        })
        .collect()
}

/// `(msn, part)` of a part's file name `seg{msn}.{part}.m4s`.
fn part_numbers(uri: &str) -> (u64, u32) {
    let stem = uri.trim_start_matches("seg").trim_end_matches(".m4s");
    let (m, p) = stem.split_once('.').expect("a part's name");
    (m.parse().expect("msn"), p.parse().expect("part"))
}

fn colour_at(tab: &mut tessera_testkit::cdp::Page, at: (f64, f64)) -> [u8; 3] {
    players::colour_at(tab, "window.player", at, CANVAS)
}

#[test]
fn hlsjs_plays_the_rooms_program_by_ll_hls_and_the_bucket_keeps_a_copy() {
    let weed = Weed::start();
    weed.create_bucket("live");
    let node =
        common::node().env("TESSERA_S3_BUCKET", "live").env("TESSERA_S3_PREFIX", "cdn/").envs(weed.aws_env()).start();
    let mut red = node.bot("show", "red", &["--color", "#ff0000", "--size", "320x180", "--fps", "15"]);
    red.wait_for("published", Duration::from_secs(30));
    let mut blue = node.bot("show", "blue", &["--color", "#0000ff", "--size", "320x180", "--fps", "15"]);
    blue.wait_for("published", Duration::from_secs(30));

    let r = http::post_json(node.port, "/v1/rooms/show/hls", KEY, json!({"s3": true}).to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let hls = r.json();
    let id = hls["id"].as_str().expect("an id").to_owned();
    assert_eq!(hls["status"], "active", "{hls}");
    let playlist_url = hls["playlist_url"].as_str().expect("playlist_url").to_owned();
    assert_eq!(path_of(&playlist_url), format!("/hls/show/{id}/index.m3u8"));
    let key = format!("cdn/hls/show/{id}/index.m3u8");
    assert_eq!(hls["s3"], json!({"bucket": "live", "playlist_key": key}));

    // The playlist: LL-HLS, parts of at most 500 ms, a hint of the next part.
    let path = path_of(&playlist_url);
    let first = http::get(node.port, &path, None);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/vnd.apple.mpegurl"));
    let text = String::from_utf8_lossy(&first.body).into_owned();
    for tag in [
        "#EXT-X-MAP:URI=\"init.mp4\"",
        "CAN-BLOCK-RELOAD=YES",
        "#EXT-X-PART-INF:PART-TARGET=0.5",
        "#EXT-X-PRELOAD-HINT",
    ] {
        assert!(text.contains(tag), "{tag} missing:\n{text}");
    }
    let listed = parts(&text);
    assert!(!listed.is_empty(), "no parts:\n{text}");
    assert!(listed.iter().all(|(d, _)| *d > 0.0 && *d <= 0.5005), "parts longer than 500 ms:\n{text}");

    // Blocking reload: the part the playlist hints at next is answered once it exists.
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|u| u.strip_suffix('"'))
        .expect("a preload hint");
    let (msn, part) = part_numbers(hint);
    let asked = Instant::now();
    let blocked = http::get(node.port, &format!("{path}?_HLS_msn={msn}&_HLS_part={part}"), None);
    let waited = asked.elapsed();
    assert_eq!(blocked.status, 200);
    let next = String::from_utf8_lossy(&blocked.body).into_owned();
    assert!(parts(&next).iter().any(|(_, u)| u == hint), "the blocking reload answered without {hint}:\n{next}");
    eprintln!("blocking reload for the hinted part {hint} answered after {waited:?}");
    assert!(waited < Duration::from_millis(1500), "blocked {waited:?} for a part of at most 500 ms");
    // The hinted part itself, asked before it exists, is answered once written.
    let (hint2_msn, hint2_part) = {
        let hint2 = next
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .and_then(|u| u.strip_suffix('"'))
            .expect("a preload hint");
        part_numbers(hint2)
    };
    let early = http::get(node.port, &format!("/hls/show/{id}/seg{hint2_msn}.{hint2_part}.m4s"), None);
    assert_eq!(early.status, 200, "the hinted part, asked early");
    assert_eq!(&early.body[4..8], b"moof", "a part is a CMAF fragment");
    let too_far = http::get(node.port, &format!("{path}?_HLS_msn={}", msn + 50), None);
    assert_eq!(too_far.status, 422, "{}", String::from_utf8_lossy(&too_far.body));
    assert_eq!(too_far.json()["error"]["field"], "_HLS_msn", "{}", too_far.json());

    // hls.js in Chromium, low-latency mode.
    let dir = tempfile::tempdir().expect("tempdir");
    let page = hlsjs_player(dir.path());
    let browser = Browser::open(&format!("{page}?src={playlist_url}"), &[]);
    let mut tab = browser.page("player.html");
    let stats: Value = wait_for("hls.js playing the program", Duration::from_secs(40), || {
        let error = tab.eval("window.player && window.player.error");
        assert!(error.is_null(), "hls.js failed: {error}");
        let stats = tab.eval("window.player ? window.player.stats() : {}");
        (stats["frames"].as_f64().unwrap_or(0.0) > 90.0).then_some(stats)
    });
    eprintln!("hls.js: {stats}");
    assert_eq!((stats["width"].as_u64(), stats["height"].as_u64()), (Some(1280), Some(720)), "{stats}");
    assert!(stats["audioBytes"].as_f64().unwrap_or(0.0) > 0.0, "no audio decoded: {stats}");
    assert!(stats["parts"].as_f64().unwrap_or(0.0) > 0.0, "hls.js loaded no parts (not low-latency): {stats}");
    let shown = http::get(node.port, &format!("/v1/hls/{id}"), KEY).json();
    let codecs = shown["codecs"].as_str().unwrap_or_default();
    assert!(codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"), "{shown}");
    assert_eq!((shown["width"].as_u64(), shown["height"].as_u64()), (Some(1280), Some(720)), "{shown}");
    let tiles = tessera_compositor::harness::grid_centres(&["red", "blue"], CANVAS, (320, 180));
    wait_for("red and blue in their tiles", Duration::from_secs(10), || {
        let (r, b) = (colour_at(&mut tab, tiles[0]), colour_at(&mut tab, tiles[1]));
        (is_red(r) && is_blue(b)).then_some(())
    });
    // Latency behind the live edge, as hls.js measures it, after it has settled.
    std::thread::sleep(Duration::from_secs(4));
    let settled = tab.eval("window.player.stats()");
    let latency = settled["latency"].as_f64().expect("hls.js's latency");
    eprintln!("hls.js latency behind the live edge: {latency:.2} s (target {})", settled["targetLatency"]);
    // It settles near the 1.5 s hold-back (1.6 s here); stalls on a loaded machine are caught up at 1.5x.
    assert!(latency > 0.0 && latency < 3.0, "latency {latency} s: {settled}");

    // ffprobe, a plain HLS client, reads the same playlist.
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", &playlist_url])
        .output()
        .expect("ffprobe");
    let probed: Value = serde_json::from_slice(&probe.stdout).unwrap_or_default();
    let names: Vec<&str> =
        probed["streams"].as_array().into_iter().flatten().filter_map(|s| s["codec_name"].as_str()).collect();
    assert!(names.contains(&"h264") && names.contains(&"aac"), "{probed} {}", String::from_utf8_lossy(&probe.stderr));
    drop(browser);

    // Stop: the playlist ends; nothing else uses the program, so it stops.
    let stopped = http::post_json(node.port, &format!("/v1/hls/{id}/stop"), KEY, b"");
    assert_eq!(stopped.status, 200, "{}", String::from_utf8_lossy(&stopped.body));
    let stopped = stopped.json();
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["segments"].as_u64().unwrap_or(0) >= 3, "{stopped}");
    assert_eq!(http::post_json(node.port, &format!("/v1/hls/{id}/stop"), KEY, b"").status, 409);
    let ended = http::get(node.port, &path, None);
    assert!(String::from_utf8_lossy(&ended.body).contains("#EXT-X-ENDLIST"));
    wait_for("the program to stop", Duration::from_secs(15), || {
        http::get(node.port, "/v1/rooms/show", KEY).json()["program"].is_null().then_some(())
    });

    // The bucket: a plain HLS playlist (no parts) that ends, its header and segments.
    let copy = wait_for("the final playlist in the bucket", Duration::from_secs(15), || {
        let (body, _) = weed.get("live", &key);
        let text = String::from_utf8_lossy(&body).into_owned();
        text.contains("#EXT-X-ENDLIST").then_some(text)
    });
    assert!(!copy.contains("#EXT-X-PART"), "the bucket's playlist lists parts:\n{copy}");
    let prefix = format!("cdn/hls/show/{id}/");
    assert!(weed.object_exists("live", &format!("{prefix}init.mp4")));
    let segments: Vec<&str> = copy.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert!(segments.len() >= 3, "{copy}");
    for s in segments {
        assert!(weed.object_exists("live", &format!("{prefix}{s}")), "{s} not in the bucket");
    }
    let _ = red.stop();
    let _ = blue.stop();
}

#[test]
fn hls_requests_are_checked() {
    let node = common::node().start();
    let post = |body: Value| http::post_json(node.port, "/v1/rooms/checks/hls", KEY, body.to_string().as_bytes());
    let no_bucket = post(json!({"s3": true}));
    assert_eq!(no_bucket.status, 422, "{}", String::from_utf8_lossy(&no_bucket.body));
    assert_eq!(no_bucket.json()["error"]["field"], "/s3");
    assert!(post(json!({"segments": 3})).status / 100 == 4);
    assert_eq!(http::get(node.port, "/v1/hls/hls_0000", KEY).status, 404);
    assert_eq!(http::get(node.port, "/hls/checks/hls_0000/index.m3u8", None).status, 404);
    assert_eq!(http::get(node.port, "/v1/hls", None).status, 401, "the API needs its key");

    // A running one: files outside its names are not found; part without msn is refused.
    let r = post(json!({}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let base = format!("/hls/checks/{id}");
    assert_eq!(http::get(node.port, &format!("{base}/../../v1/hls"), None).status / 100, 4);
    assert_eq!(http::get(node.port, &format!("{base}/seg1.x.m4s"), None).status, 404);
    assert_eq!(http::get(node.port, &format!("{base}/index.m3u8?_HLS_part=1"), None).status, 422);
    assert_eq!(http::get(node.port, &format!("/hls/other/{id}/index.m3u8"), None).status, 404, "another room's");
    // Another size is a second rendition of the room's program, with its own playlist.
    let other_size = post(json!({"video": {"width": 640, "height": 360}}));
    assert_eq!(other_size.status, 201, "{}", String::from_utf8_lossy(&other_size.body));
    let small = other_size.json()["id"].as_str().expect("id").to_owned();
    let listed = http::get(node.port, "/v1/hls?room=checks", KEY).json();
    assert_eq!(listed["hls"].as_array().map(Vec::len), Some(2), "{listed}");
    let shown = wait_for("the small rendition's first segment", Duration::from_secs(15), || {
        let h = http::get(node.port, &format!("/v1/hls/{small}"), KEY).json();
        (h["width"] == 640).then_some(h)
    });
    assert_eq!(shown["height"], 360, "{shown}");
    for id in [&id, &small] {
        assert_eq!(http::post_json(node.port, &format!("/v1/hls/{id}/stop"), KEY, b"").status, 200);
    }
}
