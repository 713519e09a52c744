//! Simulcast over relay links, end to end: three `tessera serve` nodes on one `redis-server`
//! and three headless Chromiums, one per node. The first publishes its camera in three
//! simulcast layers (the web client's `simulcast=1`); the second, uncapped, watches it at full
//! size; the third watches it with its receive bitrate capped at 200 kbit/s (its lowest layer). Each viewer's
//! node asks the publisher's node only for the layers its viewer takes: the viewers decode
//! the top and a low layer, and the link to the capped viewer's node carries a fraction of
//! what the link to the uncapped one carries (counted in `/metrics`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::chromium::Browser;
use tessera_testkit::http;
use tessera_testkit::poll::wait_for;
use tessera_testkit::redis::Redis;
use tessera_testkit::tessera::Node;

mod common;
use common::cluster::post;

/// A viewer's video as its page's `getStats` sums it: (frames decoded, frame height).
fn video(page: &mut tessera_testkit::cdp::Page) -> (f64, f64) {
    let inbound: Value =
        page.eval("window.tesseraStats && window.tesseraStats.inbound && window.tesseraStats.inbound.video || null");
    (inbound["framesDecoded"].as_f64().unwrap_or(0.0), inbound["frameHeight"].as_f64().unwrap_or(0.0))
}

/// RTP payload bytes `node` received over its relay link from `peer` so far.
fn relayed_bytes(node: &Node, peer: &str) -> f64 {
    let metrics = String::from_utf8(http::get(node.port, "/metrics", None).body).unwrap_or_default();
    let prefix = format!("tessera_relay_bytes_received_total{{peer=\"{peer}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or(0.0)
}

fn page_url(node: &Node, identity: &str, extra: &str) -> String {
    let token = post(node, "/v1/rooms/sim/tokens", json!({"identity": identity, "name": identity}));
    format!("{}/rooms/sim?token={}&name={identity}{extra}", node.url(), token["token"].as_str().unwrap())
}

#[test]
fn each_node_receives_only_the_simulcast_layers_its_viewers_take() {
    let redis = Redis::start();
    let nodes = common::cluster::start(|id| common::cluster::node(&redis, id));
    let _publisher = Browser::open(&page_url(&nodes[0], "pub", "&simulcast=1"), &[]);
    let full = Browser::open(&page_url(&nodes[1], "full", "&publish=0"), &[]);
    let low = Browser::open(&page_url(&nodes[2], "low", "&publish=0&maxBitrate=200000"), &[]);
    let (mut full_page, mut low_page) = (full.page("name=full"), low.page("name=low"));

    let started = Instant::now();
    let (f, l) =
        wait_for("the full viewer at the top layer, the capped one at a low layer", Duration::from_secs(60), || {
            let (f, l) = (video(&mut full_page), video(&mut low_page));
            (f.0 > 30.0 && l.0 > 30.0 && f.1 >= 700.0 && l.1 > 0.0 && l.1 <= 180.0).then_some((f, l))
        });
    eprintln!("after {:?}: full {f:?}, capped {l:?} (frames decoded, height)", started.elapsed());

    // Over 5 s: what each viewer's node receives from the publisher's node.
    let before = (relayed_bytes(&nodes[1], "n1"), relayed_bytes(&nodes[2], "n1"));
    std::thread::sleep(Duration::from_secs(5));
    let after = (relayed_bytes(&nodes[1], "n1"), relayed_bytes(&nodes[2], "n1"));
    let kbps = |a: f64, b: f64| (b - a) * 8.0 / 5.0 / 1000.0;
    let (to_full, to_low) = (kbps(before.0, after.0), kbps(before.1, after.1));
    eprintln!("n1 -> n2 (uncapped viewer): {to_full:.0} kbit/s; n1 -> n3 (capped viewer): {to_low:.0} kbit/s");
    assert!(to_full > 600.0, "the top layer reaches the uncapped viewer's node: {to_full:.0} kbit/s");
    assert!(to_low < 350.0, "only the low layer (and audio) reaches the capped viewer's node: {to_low:.0} kbit/s");
    assert!(to_low * 2.0 < to_full, "{to_low:.0} vs {to_full:.0} kbit/s");
    let (f2, l2) = (video(&mut full_page), video(&mut low_page));
    assert!(f2.0 > f.0 && l2.0 > l.0, "both viewers keep decoding: {f2:?} {l2:?}");
    assert!(l2.1 <= 180.0, "{l2:?}");
}
