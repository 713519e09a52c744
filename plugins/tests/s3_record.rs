//! tesseras3sink against a real SeaweedFS.

mod common;

use std::time::Instant;

use common::*;
use tessera_plugins::isobmff::{BoxScanner, FragmentTracker};
use tessera_plugins::journal::read_journal;
use tessera_plugins::planner::{S3_MIN_PART_SIZE, next_part_end, target_part_size};
use tessera_testkit::analysis::probe;
use tessera_testkit::files::files_in;
use tessera_testkit::s3::{ACCESS_KEY, SECRET_KEY, Weed};

/// Part sizes the planner gives for `data` (what the sink should have uploaded).
fn planned_parts(data: &[u8], min_part_size: u64) -> Vec<u64> {
    let (mut sc, mut tr, mut ev) = (BoxScanner::new(), FragmentTracker::default(), Vec::new());
    sc.push(data, &mut ev).expect("valid ISO-BMFF");
    let bounds: Vec<u64> = ev.iter().filter_map(|e| tr.on_event(e)).collect();
    let (mut start, mut sizes) = (0, Vec::new());
    while let Some(end) =
        next_part_end(start, target_part_size(min_part_size, sizes.len() as u32 + 1), &bounds, Some(data.len() as u64))
    {
        sizes.push(end - start);
        start = end;
    }
    sizes
}

#[test]
fn live_pipeline_in_real_5mib_parts() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let spool = tempfile::tempdir().unwrap();
    // Noise at 16 Mbit/s: ~2 MB/s, so 5 MiB parts come every few seconds.
    let sink = s3sink_props(&weed, "rec", "room/a.mp4", spool.path());
    let desc = live_pipeline("video/x-raw,width=640,height=360,framerate=30/1", 16000, "snow", true, &sink);
    let t0 = Instant::now();
    let (messages, error) = run_pipeline(&desc, 10.0, |_| {});
    assert_eq!(error, None);
    eprintln!("pipeline + upload: {:.1} s; messages {messages:?}", t0.elapsed().as_secs_f64());
    let done = messages
        .iter()
        .find(|m| m.get::<String>("state").ok().as_deref() == Some("complete"))
        .expect("complete message");
    let parts: u32 = done.get("parts").unwrap();
    let bytes: u64 = done.get("bytes").unwrap();

    let (body, etag) = weed.get("rec", "room/a.mp4");
    assert_eq!(body.len() as u64, bytes);
    let sizes = planned_parts(&body, S3_MIN_PART_SIZE);
    eprintln!("object {bytes} bytes, {parts} parts, sizes {sizes:?}, etag {etag:?}");
    assert!(parts >= 3, "{parts} parts");
    assert_eq!(sizes.len() as u32, parts);
    assert!(sizes[..sizes.len() - 1].iter().all(|&s| s >= S3_MIN_PART_SIZE));
    if let Some(etag) = etag.filter(|e| e.contains('-')) {
        assert!(etag.trim_matches('"').ends_with(&format!("-{parts}")), "{etag}");
    }

    let file = spool.path().join("a.mp4");
    std::fs::write(&file, &body).unwrap();
    let p = probe(&file);
    eprintln!("{p:?}");
    assert_eq!(p.video_codec, "h264");
    assert_eq!(p.audio_codec.as_deref(), Some("aac"));
    assert!((8.5..=11.0).contains(&p.duration), "duration {}", p.duration);
    assert!(p.video_frames as f64 >= p.duration * 30.0 - 45.0, "{} frames", p.video_frames);
    // A normal stop leaves nothing in the spool directory but our download.
    assert_eq!(files_in(spool.path()), vec![file]);
    assert!(weed.uploads("rec").is_empty());
}

#[test]
fn failed_upload_leaves_an_explanation() {
    let weed = Weed::start();
    weed.create_bucket("other");
    let spool = tempfile::tempdir().unwrap();
    let sink = s3sink_props(&weed, "missing", "x.mp4", spool.path());
    let desc = live_pipeline("video/x-raw,width=160,height=120,framerate=30/1", 300, "ball", false, &sink);
    let (messages, error) = run_pipeline(&desc, 4.0, |_| {});
    let error = error.expect("the pipeline fails");
    assert!(error.contains("NoSuchBucket"), "{error}");
    let failed =
        messages.iter().find(|m| m.get::<String>("state").ok().as_deref() == Some("failed")).expect("failed message");
    assert!(failed.get::<String>("reason").unwrap().contains("NoSuchBucket"));

    // The journal says why; the spool is kept.
    let journals: Vec<_> =
        files_in(spool.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "journal")).collect();
    assert_eq!(journals.len(), 1);
    let state = read_journal(&journals[0]).unwrap();
    assert!(state.failed.as_deref().is_some_and(|r| r.contains("NoSuchBucket")), "{state:?}");
    assert_eq!(state.upload_id, None);
    assert!(journals[0].with_extension("mp4").exists());
    assert!(weed.uploads("other").is_empty());
    // Nothing leaks into the log or error: not the secret, not the key id.
    assert!(!error.contains(SECRET_KEY) && !error.contains(ACCESS_KEY));
}

#[test]
fn rejected_completion_aborts_the_upload_and_says_why() {
    let weed = Weed::start();
    weed.create_bucket("rec");
    let spool = tempfile::tempdir().unwrap();
    // Parts below S3's 5 MiB minimum: the server refuses to complete (EntityTooSmall).
    let sink = format!("{} min-part-size=16384", s3sink_props(&weed, "rec", "small.mp4", spool.path()));
    let desc = live_pipeline("video/x-raw,width=320,height=240,framerate=30/1", 1000, "ball", false, &sink);
    let (messages, error) = run_pipeline(&desc, 3.0, |_| {});
    eprintln!("{messages:?} {error:?}");
    let failed =
        messages.iter().find(|m| m.get::<String>("state").ok().as_deref() == Some("failed")).expect("failed message");
    assert!(failed.get::<String>("reason").unwrap().contains("EntityTooSmall"), "{failed:?}");

    let journal = files_in(spool.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "journal"))
        .expect("journal kept");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.lines().last().unwrap().contains(r#""t":"failed""#) && text.contains(r#""aborted":true"#), "{text}");
    assert!(journal.with_extension("mp4").exists(), "spool kept");
    // No multipart upload left behind on the server.
    assert!(weed.uploads("rec").is_empty(), "{:?}", weed.uploads("rec"));
    assert!(!weed.object_exists("rec", "small.mp4"));
}
