//! ICE-TCP fallback: two headless Chromium clients that drop every UDP candidate (their own
//! and the server's, `transport=tcp` in the web client) still connect, over the SFU's
//! passive TCP candidates, and decode each other.

mod common;

use std::time::Duration;

use common::*;
use tessera_testkit::chromium::Browser;
use tessera_testkit::poll::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_without_udp_connect_over_ice_tcp() {
    let server = start(None).await;
    let url = |name: &str| format!("http://{}/rooms/tcp?token={TOKEN}&name={name}&transport=tcp", server.addr);
    let _a = Browser::open(&url("alice"), &[]);
    let _b = Browser::open(&url("bob"), &[]);
    let sfu = server.sfu.clone();
    let tcp = |p: &tessera_sfu::Participant, t: &str| {
        let s = p.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.as_ref().and_then(|v| v.pointer(&format!("/{t}_transport/localProtocol"))).and_then(|v| v.as_str())
            == Some("tcp")
    };
    let ok = wait_until(Duration::from_secs(50), || {
        let ps = participants(&sfu, "tcp");
        ps.len() == 2
            && ps.iter().all(|p| {
                tcp(p, "publish")
                    && tcp(p, "subscribe")
                    && inbound(p, "video", "framesDecoded") >= 60.0
                    && inbound(p, "audio", "packetsReceived") >= 100.0
            })
    })
    .await;
    let dump: Vec<String> = participants(&sfu, "tcp")
        .iter()
        .map(|p| format!("{}: {:?}", p.name, p.stats.lock().unwrap_or_else(|e| e.into_inner())))
        .collect();
    assert!(ok, "no media over ICE-TCP: {dump:#?}");
    for p in participants(&sfu, "tcp") {
        eprintln!("{}: {} frames decoded over TCP", p.name, inbound(&p, "video", "framesDecoded"));
    }
}
