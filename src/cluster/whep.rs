//! WHEP viewers in a cluster: served by the node their POST reaches, whatever node is the
//! room's home. The program runs on the home (with the room's recordings and streams); a
//! viewer elsewhere gets it through the relay, as that node's subscribers get any participant
//! of another node: the program crosses each link once, however many viewers are behind it.
//!
//! Here, the node's [`WhepSource`]: for a room homed here, the local one (the program published
//! into the room on demand, counted per viewer); for a room homed elsewhere, it tells the home
//! how many viewers this node has (`PUT /v1/rooms/{room}/program-viewers/{node}`), which
//! publishes the program while any node has some, and waits for the program's participant to
//! reach this node through the cascade.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use tessera_sfu::{Sfu, WhepSource};

use super::{ClusterNode, Peer};
use crate::locks::lock;
use crate::media::whep::ProgramWhepSource;

/// How long a viewer waits for the program's participant to reach this node (the home
/// publishes it, writes its part of the room, and this node reads it within a round).
const PROGRAM_ARRIVAL: Duration = Duration::from_secs(10);

/// The WHEP source of a node of a cluster.
pub struct ClusterWhepSource {
    local: ProgramWhepSource,
    node: ClusterNode,
    sfu: Sfu,
    /// `Bearer …` for the home's API.
    auth: String,
    runtime: tokio::runtime::Handle,
    /// Viewers this node serves of rooms homed elsewhere: the room's home and the count. The
    /// count is sent to the home under this lock, so the home hears the counts in order.
    remote: Mutex<HashMap<String, (Peer, usize)>>,
}

impl ClusterWhepSource {
    pub fn new(node: ClusterNode, sfu: Sfu, local: ProgramWhepSource, api_key: &str) -> Self {
        ClusterWhepSource {
            local,
            node,
            sfu,
            auth: format!("Bearer {api_key}"),
            runtime: tokio::runtime::Handle::current(),
            remote: Mutex::default(),
        }
    }

    /// The room's home, if it is another node.
    fn home_elsewhere(&self, room: &str) -> Result<Option<Peer>, String> {
        let host = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(3), self.node.cluster.host_of(room)).await });
        match host {
            Ok(Ok(Some(info))) if info.id() != self.node.node_id() => Ok(Some(Peer::of(&info))),
            Ok(Ok(_)) => Ok(None),
            Ok(Err(err)) => Err(format!("the room's home cannot be found: {err}")),
            Err(_) => Err("the room's home cannot be found: Redis did not answer within 3 s".into()),
        }
    }

    /// Tells `home` that this node has `count` viewers of `room`; the program's participant id
    /// while it is published.
    fn tell_home(&self, home: &Peer, room: &str, count: usize) -> Result<Option<String>, String> {
        let path = format!("/v1/rooms/{room}/program-viewers/{}", self.node.node_id());
        let request = Request::builder()
            .method(Method::PUT)
            .uri(&path)
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::json!({ "count": count }).to_string()))
            .map_err(|e| e.to_string())?;
        self.runtime.block_on(async {
            let answer = self.node.forward(home, request).await;
            let status = answer.status();
            let body = axum::body::to_bytes(answer.into_body(), 64 * 1024).await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("node {} answered {status}: {}", home.id, String::from_utf8_lossy(&body)));
            }
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            Ok(v["participant"].as_str().map(str::to_owned))
        })
    }

    /// Waits until `participant` (the home's program) is a participant of `room` here, with
    /// its tracks.
    fn wait_for_program(&self, room: &str, participant: &str) -> Result<(), String> {
        self.node.follow_room(room);
        let deadline = Instant::now() + PROGRAM_ARRIVAL;
        loop {
            let here = self
                .sfu
                .get_room(room)
                .and_then(|r| r.participants().into_iter().find(|p| p.id == participant))
                .is_some_and(|p| p.tracks().len() >= 2);
            if here {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the program of room {room} did not reach this node within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn release_remote(&self, room: &str) {
        let mut remote = lock(&self.remote);
        let Some((home, count)) = remote.get_mut(room) else { return };
        *count = count.saturating_sub(1);
        let (home, count) = (home.clone(), *count);
        if count == 0 {
            remote.remove(room);
        }
        if let Err(err) = self.tell_home(&home, room, count) {
            tracing::warn!(%room, node = %home.id, %err, "the room's home did not hear that a WHEP viewer left");
        }
    }
}

impl WhepSource for ClusterWhepSource {
    fn acquire(&self, room: &str) -> Result<String, String> {
        let Some(home) = self.home_elsewhere(room)? else { return self.local.acquire(room) };
        let participant = {
            let mut remote = lock(&self.remote);
            let count = remote.get(room).map_or(0, |(_, n)| *n) + 1;
            let participant = self.tell_home(&home, room, count)?;
            remote.insert(room.to_owned(), (home.clone(), count));
            participant
        };
        let Some(participant) = participant else {
            self.release_remote(room);
            return Err("the room's home did not publish its program".into());
        };
        if let Err(err) = self.wait_for_program(room, &participant) {
            self.release_remote(room);
            return Err(err);
        }
        tracing::info!(room, home = %home.id, "a WHEP viewer here watches the program through the relay");
        Ok(participant)
    }

    /// Called on a blocking thread (the SFU's `whep::release`), so the home is told at once.
    fn release(&self, room: &str) {
        if lock(&self.remote).contains_key(room) {
            self.release_remote(room);
        } else {
            self.local.release(room);
        }
    }
}
