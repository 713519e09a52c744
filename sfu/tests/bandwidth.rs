//! Simulcast layers follow a subscriber's *estimated* bandwidth: a Chromium subscriber behind
//! a slow link (the relay of `common::relay`, rate limited toward it) sends REMB estimates that
//! fall below the top layer's bitrate, and the SFU switches it to a lower layer without any cap
//! from the client, while a subscriber on an unlimited path keeps the top layer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tessera_sfu::{Counter, SfuConfig};
use tessera_testkit::chromium::Browser;
use tessera_testkit::lossy_relay::{Loss, LossyRelay, RELAY_IP};
use tessera_testkit::poll::wait_until;

/// The limit toward the slow subscriber (bit/s); the top layer is sent at up to 1.5 Mbit/s
/// (Chromium's fake camera: 0.7 to 1.5 Mbit/s), the lowest at up to 150 kbit/s.
const LIMIT_BPS: u64 = 400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layer_follows_the_remb_estimate_of_a_slow_subscriber() {
    let relay = LossyRelay::start(16, Loss::default()).await;
    let mut cfg = SfuConfig::default();
    cfg.ice.udp_port_range = Some(relay.ports);
    cfg.ice.tcp = false;
    cfg.ice.public_ips = vec![RELAY_IP.to_string()];
    let server = start_with(cfg, None).await;
    let sfu = server.sfu.clone();
    let base = format!("http://{}/rooms/bwe?token={TOKEN}&trickle=0", server.addr);
    let by_name = |n: &str| participants(&sfu, "bwe").into_iter().find(|p| p.name == n);
    // The layers of a subscriber's video down tracks (audio has none).
    let layers =
        |n: &str| by_name(n).map(|p| p.down_tracks().iter().filter_map(|(_, d)| d.current_layer()).collect::<Vec<_>>());
    let dump = || {
        let ps: Vec<String> = participants(&sfu, "bwe")
            .iter()
            .map(|p| {
                format!(
                    "{}: effective bandwidth {} layers {:?} stats {:?}",
                    p.name,
                    p.effective_bandwidth(Instant::now()),
                    p.down_tracks().iter().map(|(_, d)| d.current_layer()).collect::<Vec<_>>(),
                    p.stats.lock().unwrap_or_else(|e| e.into_inner())
                )
            })
            .collect();
        let c = sfu.transport_counters();
        format!(
            "REMBs {} resends {} (not sent: {} from before a keyframe, {} over budget) relay {:?}\n{}",
            c.get(Counter::RembReceived),
            c.get(Counter::RetransmittedPackets),
            c.get(Counter::ResendsBeforeKeyframe),
            c.get(Counter::ResendsOverBudget),
            relay.counts.get(),
            ps.join("\n")
        )
    };

    // The publisher and the unlimited subscriber first, then the limit for clients seen from
    // then on, then the slow subscriber.
    let _pub = Browser::open(&format!("{base}&name=pub&simulcast=1"), &[]);
    let _full = Browser::open(&format!("{base}&name=full&publish=0"), &[]);
    // The publisher's top layer ramps up over its first seconds: wait until it is well above
    // the limit (until then it fits the slow link, rightly).
    let top_bps = || {
        by_name("pub")
            .and_then(|p| p.tracks().into_iter().find_map(|t| t.forwarder.layers().get(2).map(|l| l.bitrate_bps)))
            .unwrap_or(0)
    };
    let ok = wait_until(Duration::from_secs(60), || {
        by_name("full").is_some_and(|f| {
            inbound(&f, "video", "framesDecoded") > 30.0 && inbound(&f, "video", "frameHeight") >= 700.0
        }) && top_bps() >= LIMIT_BPS * 3 / 2
    })
    .await;
    assert!(ok, "the unlimited subscriber did not get the top layer (top layer at {} bit/s): {}", top_bps(), dump());
    eprintln!("top layer at {} bit/s when the slow subscriber joins", top_bps());
    relay.limit_new_clients.store(LIMIT_BPS, std::sync::atomic::Ordering::Relaxed);
    let _slow = Browser::open(&format!("{base}&name=slow&publish=0"), &[]);

    let started = Instant::now();
    let ok = wait_until(Duration::from_secs(90), || {
        let (Some(full), Some(slow)) = (by_name("full"), by_name("slow")) else { return false };
        let sh = inbound(&slow, "video", "frameHeight");
        slow.effective_bandwidth(Instant::now()) > 0
            && layers("slow").is_some_and(|l| !l.is_empty() && l.iter().all(|&l| l < 2))
            && inbound(&slow, "video", "framesDecoded") > 30.0
            && sh > 0.0
            && sh <= 360.0
            && inbound(&full, "video", "frameHeight") >= 700.0
    })
    .await;
    assert!(ok, "the slow subscriber was not moved to a lower layer: {}", dump());
    let switched_after = started.elapsed();
    // Then, for 20 s: the slow subscriber stays low except while the SFU probes the top layer
    // again (20 s after congestion at first, then less and less often), and the unlimited
    // one keeps the top layer.
    let (mut slow_low, mut full_top, mut n) = (0u32, 0u32, 0u32);
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        n += 1;
        slow_low += u32::from(layers("slow").is_some_and(|l| !l.is_empty() && l.iter().all(|&l| l < 2)));
        full_top += u32::from(layers("full").is_some_and(|l| !l.is_empty() && l.iter().all(|&l| l == 2)));
    }
    let (full, slow) = (by_name("full").unwrap(), by_name("slow").unwrap());
    let summary = format!(
        "slow subscriber on a lower layer {:.1} s after joining; over the next 20 s: slow on a lower layer \
         {slow_low} of {n} samples, full on the top layer {full_top} of {n}; at the end: slow effective bandwidth \
         {} bit/s, layers {:?}, frameHeight {}, framesDecoded {}, freezes {}; full: effective bandwidth {} bit/s, \
         layers {:?}, frameHeight {}, freezes {}",
        switched_after.as_secs_f64(),
        slow.effective_bandwidth(Instant::now()),
        layers("slow"),
        inbound(&slow, "video", "frameHeight"),
        inbound(&slow, "video", "framesDecoded"),
        inbound(&slow, "video", "freezeCount"),
        full.effective_bandwidth(Instant::now()),
        layers("full"),
        inbound(&full, "video", "frameHeight"),
        inbound(&full, "video", "freezeCount"),
    );
    eprintln!("{summary}");
    let c = sfu.transport_counters();
    eprintln!(
        "resends {}; not sent: {} from before a keyframe, {} over budget",
        c.get(Counter::RetransmittedPackets),
        c.get(Counter::ResendsBeforeKeyframe),
        c.get(Counter::ResendsOverBudget)
    );
    let detail = format!("{summary}\n{}", dump());
    // The slow subscriber loses most of the top layer and asks for all of it again: the
    // resend budget must have held that back (without it the resends kept the link full
    // and the switch took twice as long).
    assert!(c.get(Counter::ResendsOverBudget) > 0, "the resend budget held nothing back: {detail}");
    // Alone on this machine 72 of 80 (one failed retry of the top layer); on a loaded one the
    // publisher's keyframes come late and a retry costs more (39 of 80 seen).
    assert!(slow_low as f64 >= n as f64 * 0.4, "the slow subscriber did not stay on a lower layer: {detail}");
    assert!(slow.effective_bandwidth(Instant::now()) < LIMIT_BPS, "the estimate's limit is not in force: {detail}");
    assert!(full_top as f64 >= n as f64 * 0.9, "the unlimited subscriber lost the top layer: {detail}");
    assert!(inbound(&full, "video", "frameHeight") >= 700.0, "{detail}");
}
