//! Recording a room program through the binary's `RecordingStore` into a real S3-compatible
//! server (SeaweedFS on loopback), and `tessera serve` finishing, at start-up, a recording
//! whose process was killed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera::config::StorageConfig;
use tessera::recordings::store::{RecordingLocation, RecordingStore};
use tessera_compositor::harness::{Room, sleep, spec, tile_center};
use tessera_compositor::{ProgramConfig, ProgramEvent};
use tessera_testkit::analysis::{GREEN, RED, assert_color, assert_continuous, decode_frames, ffprobe, probe};
use tessera_testkit::files::files_in;
use tessera_testkit::s3::Weed;

/// Points the AWS SDK at the test server. Each test runs in its own process (nextest), and
/// this runs before any other thread exists.
fn use_s3(weed: &Weed) {
    for (k, v) in weed.aws_env() {
        // SAFETY: single-threaded at this point (see above).
        unsafe { std::env::set_var(k, v) };
    }
}

fn wait_report(room: &Room, timeout: Duration) -> gst::Structure {
    let deadline = Instant::now() + timeout;
    loop {
        let found = room.events.lock().unwrap().iter().find_map(|e| match e {
            ProgramEvent::OutputMessage { message, .. }
                if message.get::<&str>("state").is_ok_and(|s| s != "started") =>
            {
                Some(message.clone())
            }
            _ => None,
        });
        if let Some(m) = found {
            return m;
        }
        assert!(Instant::now() < deadline, "the recording sink never reported");
        sleep(0.1);
    }
}

#[test]
fn a_room_program_records_into_s3_while_it_runs() {
    let weed = Weed::start();
    weed.create_bucket("calls");
    use_s3(&weed);
    let data = tempfile::tempdir().unwrap();
    let storage = StorageConfig { s3_bucket: Some("calls".into()), s3_prefix: "tessera/".into() };
    let store = RecordingStore::new(data.path(), storage).expect("store");
    let location = store.location("standup", "rec-1").unwrap();
    assert_eq!(location, RecordingLocation::S3 { bucket: "calls".into(), key: "tessera/standup/rec-1.mp4".into() });

    let room = Room::new(ProgramConfig::default(), "grid");
    let _alice = room.join(spec("alice", RED, 440.0));
    let _bob = room.join(spec("bob", GREEN, 660.0));
    let output = room.program.attach_output(store.output(&location).unwrap()).expect("recording starts");
    sleep(6.0);
    // Fragments are spooled while the call runs.
    assert!(!files_in(store.spool_dir()).is_empty(), "spool and journal exist while recording");
    let stats = room.program.detach_output(output).expect("recording stops");
    let report = wait_report(&room, Duration::from_secs(40));
    assert_eq!(report.get::<&str>("state").unwrap(), "complete", "{report:?}");
    assert_eq!(report.get::<&str>("key").unwrap(), "tessera/standup/rec-1.mp4");
    room.assert_no_failures();

    // What is in the bucket plays: codecs, length, and who is where.
    let (body, _) = weed.get("calls", "tessera/standup/rec-1.mp4");
    assert_eq!(report.get::<u64>("bytes").unwrap(), body.len() as u64);
    let file = data.path().join("downloaded.mp4");
    std::fs::write(&file, &body).unwrap();
    let info = ffprobe(file.to_str().unwrap());
    assert_eq!(info.video.as_ref().map(|v| v.codec.as_str()), Some("h264"));
    assert_eq!(info.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    let frames = decode_frames(&file, 160, 90);
    assert_eq!(assert_continuous(&frames, 30.0) as u64, stats.video_frames, "every frame is in the object");
    let tiles = room.program.tiles();
    let end = frames.last().unwrap().pts;
    assert_color(&frames, end - 2.0, end, tile_center(&tiles, "alice").unwrap(), (1280, 720), RED, "alice");
    assert_color(&frames, end - 2.0, end, tile_center(&tiles, "bob").unwrap(), (1280, 720), GREEN, "bob");
    // A completed recording leaves no spool behind and no unfinished upload.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !files_in(store.spool_dir()).is_empty() && Instant::now() < deadline {
        sleep(0.1);
    }
    assert!(files_in(store.spool_dir()).is_empty(), "{:?}", files_in(store.spool_dir()));
    assert!(weed.uploads("calls").is_empty());
}

/// `record-live` from tessera-plugins, built beside the `tessera` binary by
/// `cargo nextest run --workspace`.
fn record_live() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_tessera")).with_file_name("record-live");
    assert!(path.is_file(), "{} is missing: build the workspace (cargo nextest run --workspace)", path.display());
    path
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[test]
fn serve_finishes_at_start_up_a_recording_whose_process_was_killed() {
    let mut weed = Weed::start();
    weed.create_bucket("calls");
    let data = tempfile::tempdir().unwrap();
    let spool = data.path().join("spool");
    let aws = weed.aws_env();
    // A recording into S3, killed without warning at a random moment.
    let sink = format!("tesseras3sink bucket=calls key=killed/rec.mp4 spool-dir={}", spool.display());
    let mut child = Command::new(record_live())
        .args(["0", &sink])
        .env("VIDEO_PATTERN", "snow")
        .env("FRAGMENT_MS", "500")
        .envs(aws.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .expect("record-live starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("output").expect("line");
    let started: u128 =
        first.strip_prefix("recording-started ").and_then(|s| s.parse().ok()).expect("recording-started line");
    let jitter = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() % 3000) as u64;
    std::thread::sleep(Duration::from_millis(4000 + jitter));
    child.kill().expect("SIGKILL");
    let recorded = (unix_ms() - started) as f64 / 1000.0;
    let _ = child.wait();
    assert!(!weed.object_exists("calls", "killed/rec.mp4"), "nothing complete before recovery");
    // The store is also down for the first seconds of the restart: recovery retries.
    weed.stop();

    let mut serve = Command::new(common::BIN)
        .args(["serve", "--http-addr", "127.0.0.1:0", "--api-key", "recovery-test-key-0123"])
        .env("TESSERA_DATA_DIR", data.path())
        .env("TESSERA_S3_BUCKET", "calls")
        .envs(aws.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tessera serve starts");
    sleep(2.0);
    weed.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !weed.object_exists("calls", "killed/rec.mp4") {
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("serve did not finish the recording; spool: {:?}", files_in(&spool));
        }
        sleep(0.2);
    }
    let (body, _) = weed.get("calls", "killed/rec.mp4");
    let file = data.path().join("recovered.mp4");
    std::fs::write(&file, body).unwrap();
    let p = probe(&file);
    eprintln!("killed after {recorded:.2} s; recovered {p:?}");
    assert_eq!(p.video_codec, "h264");
    assert!(p.duration <= recorded + 0.1 && p.duration >= recorded - 1.0, "plays {} s of {recorded:.2} s", p.duration);
    assert!(p.max_gap < 0.05, "gap {}", p.max_gap);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !files_in(&spool).is_empty() && Instant::now() < deadline {
        sleep(0.1);
    }
    assert!(files_in(&spool).is_empty(), "spool cleaned up: {:?}", files_in(&spool));
    assert!(weed.uploads("calls").is_empty());
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    let _ = serve.wait();
}
