//! S3 unreachable for a minute while recording: the spool keeps everything and the upload
//! catches up once the server is back.

mod common;

use std::time::Instant;

use common::*;
use tessera_plugins::journal::read_journal;
use tessera_testkit::analysis::probe;
use tessera_testkit::files::files_in;
use tessera_testkit::s3::Weed;

#[test]
fn a_minute_without_s3_loses_nothing() {
    let mut weed = Weed::start();
    weed.create_bucket("rec");
    let spool = tempfile::tempdir().unwrap();
    let sink = s3sink_props(&weed, "rec", "outage.mp4", spool.path());
    // ~0.75 MB/s: a 5 MiB part every ~7 s, several of them cut during the outage.
    let desc = live_pipeline("video/x-raw,width=320,height=240,framerate=30/1", 6000, "snow", true, &sink);
    let (down_at, up_at, eos_at) = (12.0, 72.0, 82.0);
    let journal = || files_in(spool.path()).into_iter().find(|p| p.extension().is_some_and(|e| e == "journal"));
    let (mut down, mut up) = (false, None::<(Instant, u64)>);
    let mut caught_up = None;
    let mut last_poll = Instant::now();
    let t0 = Instant::now();
    let (messages, error) = run_pipeline(&desc, eos_at, |t| {
        if !down && t >= down_at {
            weed.stop();
            down = true;
        }
        if down && up.is_none() && t >= up_at {
            let backlog = journal().map(|j| read_journal(&j).unwrap()).expect("journal while recording");
            let uploaded = backlog.parts.last().map_or(0, |p| p.end());
            eprintln!(
                "after {:.1} s: restarting S3 with {} bytes journaled, {uploaded} uploaded",
                t, backlog.playable_end
            );
            weed.spawn();
            up = Some((Instant::now(), backlog.playable_end));
        }
        if let (Some((since, backlog_end)), None) = (up, caught_up)
            && last_poll.elapsed().as_millis() >= 250
        {
            last_poll = Instant::now();
            // Caught up: everything journaled before the restart is uploaded (up to the
            // fragment boundary the next part would start at).
            let s = journal().map(|j| read_journal(&j).unwrap());
            if s.is_some_and(|s| s.parts.last().is_some_and(|p| p.end() + 6 * 1024 * 1024 >= backlog_end)) {
                caught_up = Some(since.elapsed());
            }
        }
    });
    assert_eq!(error, None);
    eprintln!("total {:.1} s; caught up {caught_up:?} after the restart; {messages:?}", t0.elapsed().as_secs_f64());
    let done = messages
        .iter()
        .find(|m| m.get::<String>("state").ok().as_deref() == Some("complete"))
        .expect("complete message");
    assert!(done.get::<u32>("parts").unwrap() >= 8);
    assert!(caught_up.is_some(), "the upload never caught up before EOS");

    let (body, _) = weed.get("rec", "outage.mp4");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outage.mp4");
    std::fs::write(&file, body).unwrap();
    let p = probe(&file);
    eprintln!("{p:?}");
    // The whole recording, no gap.
    assert!((eos_at - 1.0..=eos_at + 2.0).contains(&p.duration), "duration {}", p.duration);
    assert!(p.video_frames as f64 >= p.duration * 30.0 - 45.0, "{} frames", p.video_frames);
    assert!(p.max_gap < 0.1, "gap of {} s", p.max_gap);
    assert!(files_in(spool.path()).is_empty());
    assert!(weed.uploads("rec").is_empty());
}
