//! Tail objects (`tail-objects`), and a dead node's recording completed by another machine
//! from the bucket alone (`complete_abandoned`), against a real SeaweedFS.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tessera_plugins::{
    AbandonedOutcome, Outcome, RecoveryOptions, RecoveryOutcome, TAIL_OBJECTS, complete_abandoned, recover_spool_dir,
};
use tessera_testkit::analysis::{Probe, probe};
use tessera_testkit::files::files_in;
use tessera_testkit::s3::Weed;

/// ~0.75 MB/s: a 5 MiB part every ~7 s.
const VIDEO_6M: &str = "video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast bitrate=6000";

/// A client of the store on a runtime of its own (a client's connections belong to the
/// runtime that made them: the test kit's is not ours to drive).
struct Client {
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
}

impl Client {
    fn new(weed: &Weed) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Self { rt, s3: s3_config(&weed.endpoint()).client() }
    }

    /// The tail objects of `key` in bucket `rec`.
    fn tails(&self, key: &str) -> Vec<String> {
        let req = self.s3.list_objects_v2().bucket("rec").prefix(format!("{key}.tail/"));
        let out = self.rt.block_on(req.send()).expect("ListObjectsV2");
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    fn create_upload(&self, key: &str) -> String {
        let out = self.rt.block_on(self.s3.create_multipart_upload().bucket("rec").key(key).send()).unwrap();
        out.upload_id().unwrap().to_owned()
    }
}

/// Records into S3 with tail objects on (record-live, half-second fragments as the server
/// records), kills it at a random time in `window` (ms), then deletes its spool as if the
/// machine were lost. Returns the seconds recorded until the kill.
fn record_kill_and_lose_the_spool(weed: &Weed, key: &str, video: Option<&str>, window: (u64, u64)) -> f64 {
    let spool = tempfile::tempdir().unwrap();
    let sink = format!("tesseras3sink bucket=rec key={key} spool-dir={}", spool.path().display());
    let mut env: Vec<(&str, String)> = weed.aws_env().into_iter().collect();
    env.push(("TAIL_OBJECTS", "1".into()));
    if let Some(v) = video {
        env.push(("VIDEO", v.into()));
    }
    let recorded = record_and_kill(&sink, &env, window);
    drop(spool);
    recorded
}

/// What another machine does: completes the upload, and checks what it says.
fn complete_elsewhere(weed: &Weed, c: &Client, key: &str) -> (u64, u32, u64, Option<f64>) {
    let uploads = weed.uploads("rec");
    let parts = uploads.first().map(|(k, id)| weed.list_part_sizes("rec", k, id)).unwrap_or_default();
    let t = c.tails(key);
    eprintln!("left in the bucket: uploads {uploads:?}, parts {parts:?}, {} tail objects {t:?}", t.len());
    let t0 = Instant::now();
    let outcome = complete_abandoned(&s3_config(&weed.endpoint()), "rec", key).expect("completion");
    eprintln!("completion took {:.3} s: {outcome:?}", t0.elapsed().as_secs_f64());
    let AbandonedOutcome::Completed { bytes, parts, tail_bytes, duration_s } = outcome else {
        panic!("not completed: {outcome:?}")
    };
    (bytes, parts, tail_bytes, duration_s)
}

/// Downloads `key` (checking its size) and probes it.
fn download_and_probe(weed: &Weed, key: &str, bytes: u64) -> Probe {
    let (body, _) = weed.get("rec", key);
    assert_eq!(body.len() as u64, bytes);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.mp4");
    std::fs::write(&file, body).unwrap();
    probe(&file)
}

/// Plays from the start to within 2 s of the kill, without a hole.
fn check_playable_up_to_the_kill(p: &Probe, recorded: f64, duration_s: Option<f64>) {
    eprintln!(
        "killed after {recorded:.2} s; completed elsewhere: {p:?}; gap to the kill {:.2} s",
        recorded - p.duration
    );
    assert_eq!(p.video_codec, "h264");
    assert!(p.duration <= recorded + 0.1 && p.duration >= recorded - 2.0, "duration {} vs {recorded}", p.duration);
    assert!(p.video_frames as f64 >= p.duration * 30.0 - 2.0, "{} frames", p.video_frames);
    assert!(p.max_gap < 0.1, "gap {}", p.max_gap);
    // What the completion read without downloading the object.
    let d = duration_s.expect("the duration");
    assert!((d - p.duration).abs() < 0.1, "duration read {d} vs ffprobe {}", p.duration);
}

#[test]
fn killed_recording_is_completed_from_the_bucket_alone() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let c = Client::new(&weed);
    let key = "room/killed.mp4";
    let recorded = record_kill_and_lose_the_spool(&weed, key, Some(VIDEO_6M), (17_000, 23_000));
    assert!(!c.tails(key).is_empty(), "tail objects in the bucket");

    let (bytes, parts, tail_bytes, duration_s) = complete_elsewhere(&weed, &c, key);
    assert!(parts >= 2 && tail_bytes > 0, "{parts} parts, {tail_bytes} bytes of tail");
    let p = download_and_probe(&weed, key, bytes);
    check_playable_up_to_the_kill(&p, recorded, duration_s);
    assert!(c.tails(key).is_empty(), "tail objects left: {:?}", c.tails(key));
    assert!(weed.uploads("rec").is_empty());

    // Once more (another node, or a retry): nothing left to do.
    let again = complete_abandoned(&s3_config(&weed.endpoint()), "rec", key).unwrap();
    assert_eq!(again, AbandonedOutcome::AlreadyComplete { bytes });
}

#[test]
fn killed_before_the_first_part_is_completed_from_tail_objects() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let c = Client::new(&weed);
    let key = "room/short.mp4";
    // 1 Mbit/s: no part in the first seconds.
    let recorded = record_kill_and_lose_the_spool(&weed, key, None, (3_000, 5_000));
    let uploads = weed.uploads("rec");
    assert_eq!(uploads.len(), 1);
    assert!(weed.list_part_sizes("rec", key, &uploads[0].1).is_empty(), "no part yet");

    let (bytes, parts, tail_bytes, duration_s) = complete_elsewhere(&weed, &c, key);
    assert_eq!((parts, tail_bytes), (1, bytes));
    let p = download_and_probe(&weed, key, bytes);
    check_playable_up_to_the_kill(&p, recorded, duration_s);
    assert!(c.tails(key).is_empty());
    assert!(weed.uploads("rec").is_empty());
}

/// The node that died starts again before anyone else completes its recording: its own
/// recovery completes it from its spool, as without tail objects, then deletes them.
#[test]
fn own_recovery_deletes_the_tail_objects() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let c = Client::new(&weed);
    let key = "room/restarted.mp4";
    let spool = tempfile::tempdir().unwrap();
    let sink = format!("tesseras3sink bucket=rec key={key} spool-dir={}", spool.path().display());
    let mut env: Vec<(&str, String)> = weed.aws_env().into_iter().collect();
    env.extend([("TAIL_OBJECTS", "1".to_string()), ("VIDEO", VIDEO_6M.to_string())]);
    let recorded = record_and_kill(&sink, &env, (9_000, 12_000));
    assert!(!c.tails(key).is_empty());

    let reports =
        recover_spool_dir(spool.path(), &RecoveryOptions { s3: s3_config(&weed.endpoint()), ..Default::default() });
    eprintln!("{reports:?}");
    assert!(matches!(reports[0].outcome, RecoveryOutcome::Done(Outcome::Complete { .. })), "{reports:?}");
    assert!(files_in(spool.path()).is_empty());
    assert!(c.tails(key).is_empty(), "tail objects left: {:?}", c.tails(key));
    assert!(weed.uploads("rec").is_empty());
    let (body, _) = weed.get("rec", key);
    let file = spool.path().join("rec.mp4");
    std::fs::write(&file, body).unwrap();
    let p = probe(&file);
    eprintln!("killed after {recorded:.2} s; recovered {p:?}");
    assert!(p.duration <= recorded + 0.1 && p.duration >= recorded - 1.0, "duration {} vs {recorded}", p.duration);
}

/// A recording that ends normally leaves no tail object; while it runs, the bucket holds at
/// most about a part's worth of them.
#[test]
fn finished_recording_leaves_no_tail_objects() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let c = Client::new(&weed);
    let key = "room/finished.mp4";
    let spool = tempfile::tempdir().unwrap();
    let sink = format!("{} tail-objects=true", s3sink_props(&weed, "rec", key, spool.path()));
    let desc = live_pipeline("video/x-raw,width=320,height=240,framerate=30/1", 6000, "snow", true, &sink)
        .replace("fragment-duration=1000", "fragment-duration=500");
    let secs = 20.0;
    let (mut max_tails, mut last_poll) = (0, Instant::now());
    let (messages, error) = run_pipeline(&desc, secs, |_| {
        if last_poll.elapsed() >= Duration::from_millis(700) {
            last_poll = Instant::now();
            max_tails = max_tails.max(c.tails(key).len());
        }
    });
    assert_eq!(error, None);
    let stored = TAIL_OBJECTS.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{messages:?}; {stored} tail objects stored in {secs} s ({:.0} a minute), at most {max_tails} at once",
        stored as f64 * 60.0 / secs
    );
    let done = messages
        .iter()
        .find(|m| m.get::<String>("state").ok().as_deref() == Some("complete"))
        .expect("complete message");
    assert!(done.get::<u32>("parts").unwrap() >= 2);
    // One per fragment (two a second), fewer only when the uploader is busy with a part.
    assert!(stored as f64 >= secs * 2.0 * 0.7 && stored as f64 <= secs * 2.0 + 2.0, "{stored} tail objects");
    assert!(max_tails > 0 && max_tails <= 20, "{max_tails} tail objects at once");
    assert!(c.tails(key).is_empty(), "tail objects left: {:?}", c.tails(key));
    assert!(weed.uploads("rec").is_empty());
    let (body, _) = weed.get("rec", key);
    let file = spool.path().join("finished.mp4");
    std::fs::write(&file, body).unwrap();
    let p = probe(&file);
    assert!((secs - 1.0..=secs + 1.0).contains(&p.duration), "duration {}", p.duration);
    assert_eq!(files_in(spool.path()), vec![file]);
}

/// An upload with nothing in it is aborted (`Empty`); the upload of another key that starts
/// with this one is left alone; no upload and no object is `Empty` too.
#[test]
fn nothing_stored_is_empty() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let c = Client::new(&weed);
    c.create_upload("e.mp4");
    let other = c.create_upload("e.mp4.other");
    let config = s3_config(&weed.endpoint());
    assert_eq!(complete_abandoned(&config, "rec", "e.mp4").unwrap(), AbandonedOutcome::Empty);
    assert_eq!(weed.uploads("rec"), vec![("e.mp4.other".to_string(), other)]);
    assert!(!weed.object_exists("rec", "e.mp4"));
    assert_eq!(complete_abandoned(&config, "rec", "nothing.mp4").unwrap(), AbandonedOutcome::Empty);
    // A missing bucket is an error that retrying does not fix.
    let err = complete_abandoned(&config, "missing", "e.mp4").unwrap_err();
    assert_eq!(err.kind, tessera_plugins::storage::ErrorKind::Permanent, "{err}");
}
