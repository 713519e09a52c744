//! Two headless Chromium instances join one room through the web client and each decodes the
//! other's video and audio (read from the page's `getStats` reports).

mod common;

use std::time::Duration;

use common::*;
use tessera_testkit::chromium::Browser;
use tessera_testkit::poll::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_see_and_hear_each_other() {
    let server = start(None).await;
    let url = |name: &str| format!("http://{}/rooms/call?token={TOKEN}&name={name}", server.addr);
    let _a = Browser::open(&url("alice"), &[]);
    let _b = Browser::open(&url("bob"), &[]);

    let sfu = server.sfu.clone();
    let ok = wait_until(Duration::from_secs(60), || {
        let ps = participants(&sfu, "call");
        ps.len() == 2
            && ps.iter().all(|p| {
                inbound(p, "video", "framesDecoded") >= 60.0 && inbound(p, "audio", "packetsReceived") >= 100.0
            })
    })
    .await;
    let ps = participants(&sfu, "call");
    let summary: Vec<String> = ps
        .iter()
        .map(|p| format!("{} {}: {:?}", p.id, p.name, p.stats.lock().unwrap_or_else(|e| e.into_inner())))
        .collect();
    assert!(ok, "browsers did not decode each other: {summary:#?}");
    for p in &ps {
        let recv = inbound(p, "video", "packetsReceived");
        let lost = inbound(p, "video", "packetsLost");
        assert!(lost <= recv * 0.02, "{}: {lost} of {recv} video packets lost", p.name);
        eprintln!(
            "{}: {} video frames decoded, {} audio packets, {} video packets lost",
            p.name,
            inbound(p, "video", "framesDecoded"),
            inbound(p, "audio", "packetsReceived"),
            lost
        );
    }
}

/// Forwarding on several threads: three browsers, each publishing and subscribing (six
/// connections), on an SFU with four forwarding threads, so that every publisher's copies
/// are written by other threads than the one that read its packets. Each browser decodes
/// both others' video and audio, with no more loss than on one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_on_four_forwarding_threads_see_and_hear_each_other() {
    let mut config = tessera_sfu::SfuConfig::default();
    config.ice.threads = 4;
    let server = start_with(config, None).await;
    let url = |name: &str| format!("http://{}/rooms/four?token={TOKEN}&name={name}", server.addr);
    let _browsers: Vec<Browser> = ["ann", "ben", "cat"].iter().map(|n| Browser::open(&url(n), &[])).collect();
    let sfu = server.sfu.clone();
    // Each browser decodes both others' cameras (per received track) and hears them.
    let decoded_videos = |p: &tessera_sfu::Participant| {
        let s = p.stats.lock().unwrap_or_else(|e| e.into_inner());
        let tracks = s.as_ref().and_then(|v| v.get("tracks")).and_then(|t| t.as_object()).cloned().unwrap_or_default();
        tracks.values().filter(|t| t["kind"] == "video" && t["framesDecoded"].as_f64().unwrap_or(0.0) >= 60.0).count()
    };
    let ok = wait_until(Duration::from_secs(90), || {
        let ps = participants(&sfu, "four");
        ps.len() == 3 && ps.iter().all(|p| decoded_videos(p) == 2 && inbound(p, "audio", "packetsReceived") >= 200.0)
    })
    .await;
    let ps = participants(&sfu, "four");
    let summary: Vec<String> =
        ps.iter().map(|p| format!("{}: {:?}", p.name, p.stats.lock().unwrap_or_else(|e| e.into_inner()))).collect();
    assert!(ok, "browsers did not decode each other on four threads: {summary:#?}");
    for p in &ps {
        let (recv, lost) = (inbound(p, "video", "packetsReceived"), inbound(p, "video", "packetsLost"));
        assert!(lost <= recv * 0.02, "{}: {lost} of {recv} video packets lost", p.name);
    }
}

/// Simulcast from Chromium: a subscriber whose bandwidth is capped receives a lower layer
/// than one without a cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layer_follows_subscriber_bandwidth() {
    let server = start(None).await;
    let base = format!("http://{}/rooms/sim?token={TOKEN}", server.addr);
    let _pub = Browser::open(&format!("{base}&name=pub&simulcast=1"), &[]);
    let _full = Browser::open(&format!("{base}&name=full&publish=0"), &[]);
    let _low = Browser::open(&format!("{base}&name=low&publish=0&maxBitrate=300000"), &[]);
    let sfu = server.sfu.clone();
    let by_name = |n: &str| participants(&sfu, "sim").into_iter().find(|p| p.name == n);
    let ok = wait_until(Duration::from_secs(60), || {
        let (Some(full), Some(low)) = (by_name("full"), by_name("low")) else { return false };
        let fh = inbound(&full, "video", "frameHeight");
        let lh = inbound(&low, "video", "frameHeight");
        inbound(&full, "video", "framesDecoded") > 30.0
            && inbound(&low, "video", "framesDecoded") > 30.0
            && fh >= 700.0
            && lh > 0.0
            && lh <= 360.0
    })
    .await;
    let dump: Vec<String> = participants(&sfu, "sim")
        .iter()
        .map(|p| {
            format!(
                "{}: {:?} layers {:?}",
                p.name,
                p.stats.lock().unwrap_or_else(|e| e.into_inner()),
                p.down_tracks().iter().map(|(_, d)| d.current_layer()).collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(ok, "layers did not follow bandwidth: {dump:#?}");
}
