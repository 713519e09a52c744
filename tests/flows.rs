//! The three user flows end to end, through nothing but HTTP, with real participants: the real
//! `tessera serve` recording into a real S3 server (SeaweedFS) and streaming to a real RTMP
//! server (nginx-rtmp), while two `tessera bot`s are in the call over WebRTC (red on VP8 and
//! silent; blue on H.264 with a 660 Hz tone). The layout is swapped mid-call, then red is
//! pinned; both outputs are decoded and checked: whose colour fills which region before and
//! after each change, codecs, durations, the speaker's tone.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_compositor::harness::tile_center;
use tessera_compositor::layout::{Canvas, Layout, LayoutEngine, ParticipantView, Tile, VideoSize};
use tessera_testkit::analysis::{
    BLUE, RED, assert_color, assert_continuous, decode_audio, decode_frames, ffprobe, tone_amplitude,
};
use tessera_testkit::http::{self, Body};
use tessera_testkit::poll::wait_for;
use tessera_testkit::rtmp::NginxRtmp;
use tessera_testkit::s3::Weed;
use tessera_testkit::tessera::TEST_KEY;
use tessera_testkit::webhook;

const W: u32 = 640;
const H: u32 = 360;

fn get(port: u16, path: &str) -> Value {
    let r = http::get(port, path, Some(TEST_KEY));
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn post(port: u16, path: &str, body: &str) -> Value {
    let r = http::post_json(port, path, Some(TEST_KEY), body.as_bytes());
    assert!(r.status == 200 || r.status == 201, "POST {path}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

/// Where the layout engine puts red (joined first, silent, maybe pinned) and blue (joined
/// second, the active speaker) on the program canvas.
fn tiles(layout: &str, red_pinned: bool) -> (Vec<Tile>, (f64, f64), (f64, f64)) {
    let camera = Some(VideoSize { width: W, height: H });
    let view = |id: &str, join_order, speaker_rank, pinned| ParticipantView {
        id: id.into(),
        name: id.into(),
        join_order,
        speaker_rank,
        pinned,
        camera,
        screen: None,
    };
    let people = [view("red", 0, None, red_pinned), view("blue", 1, Some(0), false)];
    let tiles = LayoutEngine::compute(&Layout::builtin(layout).unwrap(), &people, Canvas { width: W, height: H });
    let red = tile_center(&tiles, "red").expect("red has a tile");
    let blue = tile_center(&tiles, "blue").expect("blue has a tile");
    (tiles, red, blue)
}

/// GET on an absolute `http://127.0.0.1:PORT/…` URL (the presigned download URL).
fn fetch(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://127.0.0.1:").expect("a loopback URL");
    let (port, path) = rest.split_once('/').expect("a path");
    let r = http::send(port.parse().unwrap(), "GET", &format!("/{path}"), &[], Body::None).expect("GET download_url");
    assert_eq!(r.status, 200, "download_url: {}", String::from_utf8_lossy(&r.body));
    r.body
}

#[test]
fn record_stream_swap_the_layout_and_pin_in_a_call_with_two_bots() {
    let weed = Weed::start();
    weed.create_bucket("calls");
    let nginx = NginxRtmp::start();
    let (hook_port, hooks) = webhook::receiver();
    let server = common::node()
        .env("TESSERA_WEBHOOK_URL", format!("http://127.0.0.1:{hook_port}/hooks"))
        .env("TESSERA_S3_BUCKET", "calls")
        .env("TESSERA_S3_PREFIX", "e2e/")
        .envs(weed.aws_env())
        .start();
    let port = server.port;

    // Two participants join over WebRTC: red first, then blue, who talks.
    let size = format!("{W}x{H}");
    let mut red =
        server.bot("standup", "red", &["--identity", "red", "--color", "#ff0000", "--size", &size, "--silent"]);
    let red_id = red.participant_id();
    red.wait_for("published", Duration::from_secs(20));
    let mut blue = server.bot(
        "standup",
        "blue",
        &["--identity", "blue", "--color", "#0000ff", "--size", &size, "--codec", "h264", "--tone", "660"],
    );
    let blue_id = blue.participant_id();
    blue.wait_for("published", Duration::from_secs(20));
    // The room shows both, and the SFU's active speaker (RFC 6464 levels) is blue.
    let room = wait_for("blue to be the active speaker", Duration::from_secs(15), || {
        let room = get(port, "/v1/rooms/standup");
        (room["active_speaker"] == blue_id.as_str()).then_some(room)
    });
    let people = room["participants"].as_array().unwrap();
    assert_eq!(people.len(), 2, "{room}");
    for (id, name, speaking) in [(&red_id, "red", false), (&blue_id, "blue", true)] {
        let p = people.iter().find(|p| p["id"] == id.as_str()).unwrap_or_else(|| panic!("{name} is listed: {room}"));
        assert_eq!((p["name"].as_str(), p["speaking"].as_bool()), (Some(name), Some(speaking)), "{room}");
        assert_eq!(p["identity"].as_str(), Some(name), "the token's identity: {room}");
        assert_eq!(p["tracks"].as_array().map(Vec::len), Some(2), "{name} publishes video and audio: {room}");
    }

    // Flow 1: record the call into S3. Flow 2: stream it to an RTMP ingest at the same time.
    let video = format!(r#""video":{{"width":{W},"height":{H},"fps":30,"bitrate_kbps":1200}}"#);
    let rec = post(port, "/v1/rooms/standup/recordings", &format!(r#"{{"layout":"grid",{video}}}"#));
    let rec_id = rec["id"].as_str().unwrap().to_owned();
    assert_eq!(rec["location"]["type"], "s3", "{rec}");
    let stream = post(
        port,
        "/v1/rooms/standup/streams",
        &format!(r#"{{"destinations":["{}"],"preset":"custom","layout":"grid",{video}}}"#, nginx.url("standup-SECRET")),
    );
    let stream_id = stream["id"].as_str().unwrap().to_owned();
    wait_for("the destination to go live", Duration::from_secs(20), || {
        let s = get(port, &format!("/v1/streams/{stream_id}"));
        (s["destinations"][0]["status"] == "live").then_some(s)
    });
    std::thread::sleep(Duration::from_millis(3500));

    // Flow 3: swap the layout mid-call. The answer comes once the program has switched.
    let mut headers = http::auth(Some(TEST_KEY));
    headers.push(("Content-Type".into(), "application/json".into()));
    let swap =
        http::send(port, "PATCH", &format!("/v1/recordings/{rec_id}"), &headers, Body::Sized(br#"{"layout":"pip"}"#))
            .expect("PATCH");
    assert_eq!(swap.status, 200, "{}", String::from_utf8_lossy(&swap.body));
    let swapped_at = get(port, &format!("/v1/recordings/{rec_id}"))["duration_s"].as_f64().expect("duration_s");
    std::thread::sleep(Duration::from_millis(3500));
    // Pin red by its token identity: pip's main picture takes the pinned participant first.
    let pin =
        http::send(port, "PATCH", "/v1/rooms/standup", &headers, Body::Sized(br#"{"pinned":["red"]}"#)).expect("PATCH");
    assert_eq!(pin.status, 200, "{}", String::from_utf8_lossy(&pin.body));
    assert_eq!(pin.json()["pinned"], serde_json::json!(["red"]));
    let bad_pin = http::send(port, "PATCH", "/v1/rooms/standup", &headers, Body::Sized(br#"{"pinned":["no body"]}"#))
        .expect("PATCH");
    assert_eq!((bad_pin.status, bad_pin.json()["error"]["field"].as_str()), (422, Some("/pinned/0")));
    let pinned_at = get(port, &format!("/v1/recordings/{rec_id}"))["duration_s"].as_f64().expect("duration_s");
    std::thread::sleep(Duration::from_millis(3000));

    // Prometheus sees the program at its frame rate, with no frame missing.
    let metrics = String::from_utf8_lossy(&http::get(port, "/metrics", None).body).to_string();
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!((sample("tessera_program_fps{room=\"standup\"}") - 30.0).abs() < 1.5, "{metrics}");
    assert!(sample("tessera_program_dropped_frames{room=\"standup\"}") <= 3.0, "{metrics}");
    assert_eq!(sample("tessera_participants"), 2.0);
    let stopped = post(port, &format!("/v1/streams/{stream_id}/stop"), "");
    assert_eq!(stopped["status"], "stopped");
    post(port, &format!("/v1/recordings/{rec_id}/stop"), "");
    let done = wait_for("the recording to complete", Duration::from_secs(60), || {
        let r = get(port, &format!("/v1/recordings/{rec_id}"));
        assert_ne!(r["status"], "failed", "{r}");
        (r["status"] == "completed").then_some(r)
    });
    let metrics = String::from_utf8_lossy(&http::get(port, "/metrics", None).body).to_string();
    let uploaded: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tessera_recording_uploaded_bytes_total ")?.parse().ok())
        .expect("uploaded bytes");
    assert!(uploaded >= done["bytes"].as_f64().unwrap(), "{uploaded} bytes uploaded for {done}");
    let (red_exit, red_report) = red.stop();
    let (blue_exit, blue_report) = blue.stop();
    // The application heard of all of it by signed webhooks (the first delivery is refused
    // by the receiver and retried).
    let wanted = [
        "room.started",
        "participant.joined",
        "recording.started",
        "stream.started",
        "destination.live",
        "stream.stopped",
        "recording.completed",
        "participant.left",
        "room.ended",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events: Vec<String> = hooks.lock().unwrap().iter().map(|(e, _, _)| e.clone()).collect();
        if wanted.iter().all(|w| events.iter().any(|e| e == w)) {
            break events;
        }
        assert!(Instant::now() < deadline, "webhooks seen: {events:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(events.iter().filter(|e| *e == "participant.joined").count(), 2, "{events:?}");
    for (event, sig, body) in hooks.lock().unwrap().iter() {
        assert_eq!(sig, &tessera::webhooks::signature(TEST_KEY.as_bytes(), body), "{event}");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!((v["event"].as_str(), v["room"].as_str()), (Some(event.as_str()), Some("standup")), "{v}");
        assert!(!String::from_utf8_lossy(body).contains("SECRET"), "a stream key in a webhook: {v}");
    }
    for (exit, report) in [(red_exit, &red_report), (blue_exit, &blue_report)] {
        assert!(exit.success(), "{report}");
        assert!(report["video_packets_sent"].as_u64().unwrap() > 100, "{report}");
        assert!(report["keyframe_requests"].as_u64().unwrap() >= 1, "the program asked for a keyframe: {report}");
    }

    // The recording, fetched through its presigned URL like an application would.
    let url = done["download_url"].as_str().expect("a completed S3 recording has a download_url");
    let body = fetch(url);
    assert_eq!(body.len() as u64, done["bytes"].as_u64().unwrap());
    let file = server.dir.path().join("recording.mp4");
    std::fs::write(&file, &body).unwrap();
    let info = ffprobe(file.to_str().unwrap());
    let v = info.video.as_ref().expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", Some(W), Some(H)));
    assert_eq!(info.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    let frames = decode_frames(&file, 160, 90);
    assert_continuous(&frames, 30.0);
    let end = frames.last().unwrap().pts;
    let duration = done["duration_s"].as_f64().unwrap();
    assert!((end - duration).abs() < 1.0, "plays {end:.2} s; the API says {duration:.2} s");
    assert!(end > 9.5, "{end}");

    // Before the swap: the grid in join order (red left, blue right). After: picture in
    // picture with the speaker (blue) large and red inset. Once red is pinned: red large.
    let (_, grid_red, grid_blue) = tiles("grid", false);
    assert!(grid_red.0 < grid_blue.0);
    let (pip, pip_red, pip_blue) = tiles("pip", false);
    assert!(pip.iter().any(|t| t.participant == "red" && t.rect.width < W / 2), "red is the inset");
    let (pinned, pinned_red, pinned_blue) = tiles("pip", true);
    assert!(pinned.iter().any(|t| t.participant == "blue" && t.rect.width < W / 2), "blue is the inset");
    let canvas = (W, H);
    let corner = (W as f64 * 0.3, H as f64 * 0.3);
    assert_color(&frames, 1.5, swapped_at - 0.7, grid_red, canvas, RED, "red in the grid (recording)");
    assert_color(&frames, 1.5, swapped_at - 0.7, grid_blue, canvas, BLUE, "blue in the grid (recording)");
    assert_color(&frames, swapped_at + 0.5, pinned_at - 0.7, pip_red, canvas, RED, "red inset (recording)");
    assert_color(&frames, swapped_at + 0.5, pinned_at - 0.7, corner, canvas, BLUE, "blue main (recording)");
    assert_color(&frames, swapped_at + 0.5, pinned_at - 0.7, pip_blue, canvas, BLUE, "blue main centre (recording)");
    assert_color(
        &frames,
        pinned_at + 0.5,
        end - 0.2,
        pinned_blue,
        canvas,
        BLUE,
        "blue inset once red is pinned (recording)",
    );
    assert_color(&frames, pinned_at + 0.5, end - 0.2, corner, canvas, RED, "pinned red main (recording)");
    // Blue's tone is in the mix.
    let audio = decode_audio(&file);
    let tail = &audio[audio.len().saturating_sub(48_000 * 3)..];
    let (tone, off) = (tone_amplitude(tail, 48_000.0, 660.0), tone_amplitude(tail, 48_000.0, 440.0));
    assert!(tone > 0.02 && tone > 10.0 * off, "660 Hz at {tone:.4}, 440 Hz at {off:.4}");

    // The RTMP ingest received the same program: FLV with H.264 and AAC, grid then pip.
    let flvs = nginx.recordings("standup-SECRET");
    assert_eq!(flvs.len(), 1, "{flvs:?}");
    let flv_info = ffprobe(flvs[0].to_str().unwrap());
    assert_eq!(flv_info.video.as_ref().map(|v| v.codec.as_str()), Some("h264"));
    assert_eq!(flv_info.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    // Remuxed to MP4 (no re-encode) for the decoding helpers.
    let remuxed = server.dir.path().join("stream.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&flvs[0])
        .args(["-c", "copy"])
        .arg(&remuxed)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg cannot remux the FLV");
    let flv_frames = decode_frames(&remuxed, 160, 90);
    let (first, last) = (flv_frames.first().unwrap().pts, flv_frames.last().unwrap().pts);
    assert!(last - first > 9.0, "{first}..{last}");
    assert_color(&flv_frames, first + 1.5, first + 3.0, grid_red, canvas, RED, "red in the grid (stream)");
    assert_color(&flv_frames, first + 1.5, first + 3.0, grid_blue, canvas, BLUE, "blue in the grid (stream)");
    assert_color(&flv_frames, last - 2.0, last, pinned_red, canvas, RED, "pinned red main (stream)");
    assert_color(&flv_frames, last - 2.0, last, pinned_blue, canvas, BLUE, "blue inset (stream)");
    assert!(!server.stderr().contains("SECRET"), "the stream key is in the logs");
}
