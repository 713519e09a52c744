//! A lossy relay link, end to end: three `tessera serve` nodes whose relay links run through
//! loopback twins (`tessera_testkit::lossy_relay::NodeRelays`) that drop 5% of the RTP from
//! the first node to the third. A bot publishes on the first node; two receive-only
//! subscribers (`tessera bot --subscribers`) watch it through the third. NACK and RTX on the
//! link repair the loss: the subscribers see no loss and no freeze, and the third node's
//! metrics count the repairs.

use std::time::Duration;

use tessera_testkit::http;
use tessera_testkit::lossy_relay::{NodeRelays, RELAY_IP};
use tessera_testkit::redis::Redis;

mod common;

/// The sum of a metric's samples labelled `peer="n1"`.
fn from_n1(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{peer=\"n1\"}}")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn five_percent_loss_on_a_relay_link_is_repaired() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // Video packets (1,000 bytes and more) lose 5% from n1 to n3; audio and RTCP go through.
    let relays = runtime.block_on(NodeRelays::start(3, 300, |from, to| if (from, to) == (0, 2) { 0.05 } else { 0.0 }));
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| {
        let port = relays.ports[common::cluster::index(id)];
        common::cluster::node(&redis, id).args([
            "--relay-port".to_owned(),
            port.to_string(),
            "--relay-public-addr".to_owned(),
            format!("{RELAY_IP}:{port}"),
        ])
    });
    // Noise: every frame is new, so the video keeps its bitrate (a solid colour shrinks to
    // almost nothing once encoded).
    let mut green =
        nodes[0].bot("lossy", "noise", &["--pattern", "snow", "--size", "320x180", "--bitrate-kbps", "600"]);
    green.wait_for("published", Duration::from_secs(30));

    let (report, _) = nodes[2].subscribers("lossy", "viewer", 2, 10, &[]).finish(Duration::from_secs(40));
    let (forwarded, dropped) = relays.counts(0, 2);
    eprintln!("n1 -> n3: {forwarded} datagrams forwarded, {dropped} RTP packets dropped");
    eprintln!("report: {}", report["subscribers"]);
    assert!(dropped >= 30, "the relay dropped {dropped} packets");
    let metrics = String::from_utf8(http::get(nodes[2].port, "/metrics", None).body).unwrap();
    let repaired = from_n1(&metrics, "tessera_relay_repaired_total");
    let nacked = from_n1(&metrics, "tessera_relay_nacks_sent_total");
    eprintln!("n3: {nacked} NACKed, {repaired} repaired, {} lost", from_n1(&metrics, "tessera_relay_lost_total"));
    for s in report["subscribers"].as_array().unwrap() {
        assert_eq!(s["connected"], true, "{s}");
        let video = s["tracks"].as_array().unwrap().iter().find(|t| t["kind"] == "video").cloned();
        let video = video.unwrap_or_else(|| panic!("no video: {s}"));
        let packets = video["packets"].as_u64().unwrap_or(0);
        assert!(packets > 500, "{video}");
        let lost = video["lost"].as_u64().unwrap_or(0);
        assert!(lost * 200 <= packets, "more than 0.5% lost after repairs: {video}");
        assert_eq!(video["freezes"], 0, "{video}");
    }
    assert!(repaired >= dropped as f64 * 0.8, "repaired {repaired} of {dropped} dropped:\n{metrics}");
    let _ = green.stop();
}
