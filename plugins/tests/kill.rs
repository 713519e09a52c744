//! SIGKILL mid-recording, then start-up recovery: the result plays up to the last whole
//! fragment before the kill.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tessera_plugins::journal::read_journal;
use tessera_plugins::{Outcome, RecoveryOptions, RecoveryOutcome, recover_spool_dir};
use tessera_testkit::analysis::probe;
use tessera_testkit::files::files_in;
use tessera_testkit::s3::{ACCESS_KEY, SECRET_KEY, Weed};

const NOISE: &str = "video/x-raw,width=640,height=360,framerate=30/1 ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast bitrate=16000";

fn check_recovered(file: &Path, recorded: f64) {
    let p = probe(file);
    eprintln!("killed after {recorded:.2} s; recovered {p:?}");
    assert_eq!(p.video_codec, "h264");
    // Up to the last whole fragment before the kill.
    assert!(p.duration <= recorded + 0.1 && p.duration >= recorded - 1.0, "duration {} vs {recorded}", p.duration);
    assert!(p.video_frames as f64 >= p.duration * 30.0 - 2.0, "{} frames", p.video_frames);
    assert!(p.max_gap < 0.05, "gap {}", p.max_gap);
}

/// Records into S3 with `record-live`, kills it, and checks that the unfinished upload is
/// explained by the journal. Returns the server, the spool directory, the journal, its
/// upload id and the seconds recorded.
fn s3_record_and_kill(key: &str) -> (Weed, tempfile::TempDir, PathBuf, String, f64) {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let spool = tempfile::tempdir().unwrap();
    // SeaweedFS enforces S3's 5 MiB minimum: noise at 16 Mbit/s makes a part every ~3 s,
    // so some are uploaded before the kill and some not.
    let sink = format!("tesseras3sink bucket=rec key={key} spool-dir={}", spool.path().display());
    let env = [
        ("AWS_ENDPOINT_URL", weed.endpoint()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("VIDEO", NOISE.to_string()),
    ];
    let recorded = record_and_kill(&sink, &env, (8000, 11000));

    let journal =
        files_in(spool.path()).into_iter().find(|p| p.extension().is_some_and(|e| e == "journal")).expect("journal");
    let state = read_journal(&journal).unwrap();
    let uploads = weed.uploads("rec");
    eprintln!(
        "journal before recovery: {} parts journaled, playable to {}; server uploads {uploads:?}",
        state.parts.len(),
        state.playable_end
    );
    assert_eq!(uploads.len(), 1);
    assert_eq!(Some(&uploads[0].1), state.upload_id.as_ref());
    let id = uploads[0].1.clone();
    (weed, spool, journal, id, recorded)
}

/// Recovers the spool directory and checks the object.
fn recover_and_check(weed: &Weed, spool: &Path, key: &str, recorded: f64) {
    let opts = RecoveryOptions { s3: s3_config(&weed.endpoint()), ..Default::default() };
    let t0 = std::time::Instant::now();
    let reports = recover_spool_dir(spool, &opts);
    eprintln!("recovery took {:?}: {reports:?}", t0.elapsed());
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].outcome, RecoveryOutcome::Done(Outcome::Complete { .. })), "{reports:?}");
    assert!(files_in(spool).is_empty(), "spool and journal removed");
    assert!(weed.uploads("rec").is_empty());

    let (body, _) = weed.get("rec", key);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(key);
    std::fs::write(&path, body).unwrap();
    check_recovered(&path, recorded);
    // A second pass finds nothing to do.
    assert!(recover_spool_dir(spool, &opts).is_empty());
}

#[test]
fn s3_recording_killed_then_recovered() {
    let (weed, spool, journal, _, recorded) = s3_record_and_kill("killed.mp4");
    // Also as if the kill came between an upload and its journal line: recovery finds the
    // part with ListParts.
    let text = std::fs::read_to_string(&journal).unwrap();
    if let Some(i) = text.rfind(r#"{"t":"part""#) {
        let j = i + text[i..].find('\n').unwrap() + 1;
        std::fs::write(&journal, format!("{}{}", &text[..i], &text[j..])).unwrap();
    }
    recover_and_check(&weed, spool.path(), "killed.mp4", recorded);
}

#[test]
fn s3_recovery_starts_over_when_the_upload_is_gone() {
    let (weed, spool, _, id, recorded) = s3_record_and_kill("gone.mp4");
    weed.abort_upload("rec", "gone.mp4", &id);
    recover_and_check(&weed, spool.path(), "gone.mp4", recorded);
}

#[test]
fn local_recording_killed_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out/room.mp4");
    let spool = dir.path().join("spool");
    let sink = format!("tesseralocalsink location={} spool-dir={}", location.display(), spool.display());
    let recorded = record_and_kill(&sink, &[], (5000, 8000));
    assert!(!location.exists());

    let reports = recover_spool_dir(&spool, &RecoveryOptions::default());
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].outcome, RecoveryOutcome::Done(Outcome::Complete { .. })), "{reports:?}");
    assert!(files_in(&spool).is_empty());
    check_recovered(&location, recorded);
}
