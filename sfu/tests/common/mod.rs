//! The SFU's own test harness: its router on a free 127.0.0.1 port, its participants and what
//! their pages report. Chromium, waiting and the lossy relay are in the test kit
//! (`tessera_testkit::chromium`, `tessera_testkit::poll`, `tessera_testkit::lossy_relay`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use tessera_sfu::{MediaHandoff, Participant, Sfu, SfuConfig};

pub const TOKEN: &str = "test-token";

pub struct Server {
    pub sfu: Sfu,
    pub addr: SocketAddr,
}

pub async fn start(handoff: Option<Arc<dyn MediaHandoff>>) -> Server {
    start_with(SfuConfig::default(), handoff).await
}

pub async fn start_with(config: SfuConfig, handoff: Option<Arc<dyn MediaHandoff>>) -> Server {
    let sfu = Sfu::new(config, handoff);
    let app = tessera_sfu::router(sfu.clone(), Arc::new(|_room: &str, token: &str| token == TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { sfu, addr }
}

/// The participants of a room.
pub fn participants(sfu: &Sfu, room: &str) -> Vec<Arc<Participant>> {
    sfu.get_room(room).map(|r| r.participants()).unwrap_or_default()
}

/// The latest `getStats` summary the page reported for a participant.
pub fn inbound(p: &Participant, kind: &str, field: &str) -> f64 {
    stat(p, &format!("/inbound/{kind}/{field}"))
}

/// Any number from the latest `getStats` summary the page reported (a JSON pointer such as
/// `/outbound/video/nackCount`); 0 when absent.
pub fn stat(p: &Participant, pointer: &str) -> f64 {
    let s = p.stats.lock().unwrap_or_else(|e| e.into_inner());
    s.as_ref().and_then(|v| v.pointer(pointer)).and_then(|v| v.as_f64()).unwrap_or(0.0)
}
