//! `tessera bot --subscribers`, the load generator, against the real `tessera serve`: a
//! publisher bot (camera and microphone) and twenty receive-only subscribers run by one bot
//! process. Its JSON report (`--report FILE`) must show every subscriber connected, each
//! receiving both the audio and the video track, with under 1% loss and no video freeze, and
//! its closing summary line on stderr must agree.

mod common;

use std::time::Duration;

use serde_json::Value;

const SUBSCRIBERS: usize = 20;

#[test]
fn twenty_subscribers_in_one_process_receive_both_tracks_without_loss_or_freezes() {
    let server = common::node().start();
    // 15 fps: a freeze is then a gap of at least 216 ms between frames.
    let mut publisher = server.bot("big", "publisher", &["--color", "#00ff00", "--size", "320x180", "--fps", "15"]);
    publisher.wait_for("published", Duration::from_secs(30));

    let load = server.subscribers("big", "load", SUBSCRIBERS, 6, &["--report-every", "2"]);
    let (report, stderr) = load.finish(Duration::from_secs(30));
    let (status, _) = publisher.stop();
    assert!(status.success(), "the publisher failed");

    let totals = &report["totals"];
    assert_eq!(totals["subscribers"], SUBSCRIBERS, "{totals}\n{stderr}");
    assert_eq!(totals["connected"], SUBSCRIBERS, "{totals}\n{stderr}");
    assert_eq!(totals["joined"], SUBSCRIBERS, "{totals}");
    assert_eq!(totals["failed"], 0, "{totals}");
    assert_eq!(totals["freezes"], 0, "{totals}");
    let subscribers = report["subscribers"].as_array().expect("subscribers");
    assert_eq!(subscribers.len(), SUBSCRIBERS);
    for (i, sub) in subscribers.iter().enumerate() {
        assert_eq!(sub["id"], format!("load-sub-{:03}", i + 1), "{sub}");
        assert_eq!(sub["connected"], true, "{sub}");
        assert!(sub["error"].is_null(), "{sub}");
        assert!(sub["time_to_first_packet_ms"].as_u64().is_some(), "{sub}");
        let tracks = sub["tracks"].as_array().expect("tracks");
        for kind in ["audio", "video"] {
            let of_kind: Vec<&Value> = tracks.iter().filter(|t| t["kind"] == kind).collect();
            assert_eq!(of_kind.len(), 1, "one {kind} track: {sub}");
            let t = of_kind[0];
            let (packets, lost) = (t["packets"].as_u64().unwrap_or(0), t["lost"].as_u64().unwrap_or(u64::MAX));
            assert!(packets > 0 && t["bytes"].as_u64() > Some(0), "{kind} received: {sub}");
            assert!((lost as f64) < 0.01 * (packets + lost) as f64, "{kind} lost {lost} of {}: {sub}", packets + lost);
            assert_eq!(t["freezes"], 0, "{kind}: {sub}");
            assert_eq!(t["freeze_ms"], 0, "{kind}: {sub}");
        }
        let video = tracks.iter().find(|t| t["kind"] == "video").expect("video");
        // Six seconds at 15 fps, less the ramp (a second for twenty) and the connection set-up.
        assert!(video["frames"].as_u64() > Some(40), "{video}");
    }
    let end = stderr.lines().find(|l| l.ends_with("(end)")).unwrap_or_else(|| panic!("no closing line:\n{stderr}"));
    let counts = format!("{SUBSCRIBERS}/{SUBSCRIBERS} joined, {SUBSCRIBERS} connected, 0 failed");
    assert!(end.contains(&counts), "{end}");
}
