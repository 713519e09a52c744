//! Cluster mode (`--redis-url`): this node's part in a cluster of Tessera nodes.
//!
//! The shared state lives in Redis behind `tessera-cluster`'s narrow [`Cluster`] handle; this
//! module wires it to the server: the heartbeat reports what the SFU and the programs carry
//! ([`load`]), requests for rooms hosted elsewhere go to their node ([`routing`], [`forward`],
//! [`signalling`] for the WebSocket), recordings' and streams' records are shared
//! ([`records`]). The SFU and the compositor never see any of it.

pub mod cascade;
pub mod forward;
pub mod load;
pub mod records;
pub mod room_webhooks;
pub mod routing;
pub mod signalling;
mod takeover;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_cluster::{Cluster, ClusterConfig};

use crate::config::ClusterSettings;
use crate::locks::lock;
use crate::server::Media;

/// Marks a request one node forwarded to another, with the forwarding node's id: such a
/// request is always served where it lands (no forwarding loops, even while two nodes
/// disagree about where a room lives).
pub const FORWARDED_BY: &str = "x-tessera-forwarded-by";
/// The cluster's forwarding key, proving [`FORWARDED_BY`] comes from a node (a client
/// cannot make a node serve a room it does not host).
pub const FORWARD_KEY: &str = "x-tessera-forward-key";
/// The node a forwarded request is meant for: a node with another id answers 421 (two nodes
/// configured with one `--public-url`).
pub const FORWARDED_TO: &str = "x-tessera-forwarded-to";

/// Removes the forwarding marks from a request that did not come from a node.
pub fn strip_forwarding_headers(headers: &mut axum::http::HeaderMap) {
    for name in [FORWARDED_BY, FORWARD_KEY, FORWARDED_TO] {
        headers.remove(name);
    }
}

/// Whether a request was forwarded by another node, and to whom.
#[derive(Debug, PartialEq, Eq)]
pub enum Forwarded {
    No,
    ToUs,
    ToAnother(String),
}

/// Another node: its id and base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub url: String,
}

impl Peer {
    pub fn of(node: &tessera_cluster::NodeInfo) -> Peer {
        Peer { id: node.id().to_owned(), url: node.url().to_owned() }
    }
}

/// How often a node checks the rooms placed on it against what it actually hosts.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
/// A room placed here that has had nothing going on for this long is released.
const IDLE_RELEASE_AFTER: Duration = Duration::from_secs(30);

/// This node in the cluster; cheap to clone.
///
/// Lock order: `tasks` is a leaf; `records` has its own locks (see
/// [`records::SharedRecords`]). The Redis locks of `takeover.rs` are taken one at a time.
#[derive(Clone)]
pub struct ClusterNode {
    pub cluster: Cluster,
    http: forward::Client,
    stats: Arc<ForwardStats>,
    /// Recordings' and streams' records on their way to Redis.
    records: Arc<records::SharedRecords>,
    /// The cluster's forwarding key (see [`FORWARD_KEY`]), read from Redis at start.
    forward_key: Arc<std::sync::OnceLock<String>>,
    /// The heartbeat and the room reconciliation, stopped when the node leaves.
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Rooms spread over nodes (`cascade.rs`).
    cascade: Arc<cascade::CascadeState>,
    /// The relay socket's port (0: any) and the address other nodes send to, if not its own.
    relay_port: u16,
    relay_public_addr: Option<std::net::SocketAddr>,
}

/// Requests this node forwarded to others, for the metrics.
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub http: AtomicU64,
    pub websockets: AtomicU64,
    pub failed: AtomicU64,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode").field("node", &self.cluster.node_id()).finish()
    }
}

impl ClusterNode {
    /// Joins the cluster (lazily: Redis may still be away) as `node_id`. Must run inside the
    /// Tokio runtime.
    pub fn join(settings: &ClusterSettings, node_id: String, program_budget: u32) -> Result<Self, String> {
        let config = ClusterConfig {
            redis_url: settings.redis_url.expose().to_owned(),
            node_id,
            public_url: settings.public_url.clone(),
            program_budget,
            region: settings.region.clone(),
            admission: tessera_cluster::Admission { max_cpu: settings.max_cpu },
            key_prefix: "tessera:".into(),
        };
        let cluster = Cluster::connect(config).map_err(|e| e.to_string())?;
        let records = records::SharedRecords::start(cluster.clone());
        Ok(ClusterNode {
            cluster,
            http: forward::client(),
            stats: Arc::default(),
            records,
            forward_key: Arc::default(),
            tasks: Arc::default(),
            cascade: Arc::default(),
            relay_port: settings.relay_port,
            relay_public_addr: settings.relay_public_addr,
        })
    }

    /// The API key all nodes share when none is configured: the first node's generated one.
    pub async fn shared_api_key(&self) -> Result<crate::api_key::ApiKey, String> {
        let candidate =
            crate::api_key::ApiKey::generate().map_err(|err| format!("cannot generate an API key: {err}"))?;
        let shared = self.shared_secret("api_key", candidate.expose()).await?;
        crate::api_key::ApiKey::new(shared).ok_or_else(|| "the cluster's API key in redis is empty".to_owned())
    }

    /// Reads (or, first of all nodes, creates) the cluster's token signing key and forwarding
    /// key; returns the token signer.
    pub async fn shared_keys(&self) -> Result<crate::tokens::TokenSigner, String> {
        let token_key = self.shared_secret("token_key", &random_hex()).await?;
        let tokens = crate::tokens::TokenSigner::from_hex(&token_key)
            .ok_or_else(|| "the cluster's token key in redis is not 64 hex digits".to_owned())?;
        let forward_key = self.shared_secret("forward_key", &random_hex()).await?;
        let _ = self.forward_key.set(forward_key);
        Ok(tokens)
    }

    /// A secret every node of the cluster shares, waiting up to a minute for Redis (a node
    /// cannot check tokens without it; after that the process exits and its supervisor
    /// starts it again).
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.cluster.shared_secret(name, candidate).await {
                Ok(secret) => return Ok(secret),
                Err(err) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(%err, "waiting for redis to read the cluster's {name}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => return Err(format!("cannot read the cluster's {name} from redis: {err}")),
            }
        }
    }

    /// The headers that mark a request this node forwards to `peer`.
    pub fn forwarding_headers(&self, peer: &Peer) -> Vec<(&'static str, String)> {
        let key = self.forward_key.get().cloned().unwrap_or_default();
        vec![(FORWARDED_BY, self.node_id().to_owned()), (FORWARD_KEY, key), (FORWARDED_TO, peer.id.clone())]
    }

    /// Whether `headers` are those of a request another node of the cluster forwarded.
    pub fn forwarded_here(&self, headers: &axum::http::HeaderMap) -> Forwarded {
        let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
        let (Some(_), Some(key), Some(expected)) = (text(FORWARDED_BY), text(FORWARD_KEY), self.forward_key.get())
        else {
            return Forwarded::No;
        };
        if !constant_time_eq(key.as_bytes(), expected.as_bytes()) {
            return Forwarded::No;
        }
        match text(FORWARDED_TO) {
            Some(to) if to != self.node_id() => Forwarded::ToAnother(to.to_owned()),
            _ => Forwarded::ToUs,
        }
    }

    /// Where this node's recordings' and streams' records are shared.
    pub fn records(&self) -> &Arc<records::SharedRecords> {
        &self.records
    }

    pub fn node_id(&self) -> &str {
        self.cluster.node_id()
    }

    pub fn forward_stats(&self) -> &ForwardStats {
        &self.stats
    }

    /// Starts the heartbeat (this node's load every 2 s) and the release of rooms that ended
    /// here.
    pub fn run(&self, media: Media) {
        let reported = media.clone();
        let heartbeat = self.cluster.spawn_heartbeat(move || load::of(&reported));
        let node = self.clone();
        let rooms = media.clone();
        let reconcile = tokio::spawn(async move { node.release_idle_rooms(rooms).await });
        let node = self.clone();
        let relayed = media.clone();
        let takeover = tokio::spawn(async move { node.take_over_from_down_nodes(media).await });
        lock(&self.tasks).extend([heartbeat, reconcile, takeover]);
        let node = self.clone();
        tokio::spawn(async move {
            if let Err(err) = node.start_cascade(&relayed, node.relay_port).await {
                tracing::error!(%err, "relay links cannot start: rooms stay on one node's participants");
            }
        });
    }

    /// A start refused here for lack of capacity: if nothing runs in the room, its placement
    /// goes, so that the next try is placed by the load of that moment (the heartbeats the
    /// placement read may have been 2 s old).
    pub async fn refused(&self, media: &Media, room: &str) {
        if !load::hosts(media, room) && self.cluster.release(room).await.unwrap_or(false) {
            tracing::info!(%room, "room released: this node has no capacity for it");
        }
    }

    /// Draining (SIGTERM): the cluster places no new room here, and learns it at once rather
    /// than at the next heartbeat.
    pub async fn drain(&self, media: &Media) {
        self.cluster.set_draining();
        let _ = self.cluster.heartbeat(load::of(media)).await;
        self.send_participants_elsewhere(media).await;
    }

    /// Asks this node's participants to join again through the least loaded other serving
    /// node (of this node's region, if it has one and a node there takes rooms); their call
    /// goes on there, their media reaching the room's other nodes over relay links.
    async fn send_participants_elsewhere(&self, media: &Media) {
        let Ok(nodes) = self.cluster.nodes().await else {
            tracing::warn!("draining: the other nodes cannot be listed; participants stay until the end");
            return;
        };
        let others: Vec<tessera_cluster::NodeInfo> = nodes.into_iter().filter(|n| n.id() != self.node_id()).collect();
        let region = self.cluster.config().region.as_deref();
        let Some(target) = tessera_cluster::placement::least_loaded(&others, self.cluster.config().admission, region)
        else {
            tracing::warn!("draining: no other node takes participants; they stay until the end");
            return;
        };
        let asked = media.sfu.ask_to_reconnect(target.url());
        tracing::info!(asked, node = target.id(), "draining: participants asked to join again through another node");
    }

    /// The end of a graceful stop, once recordings and streams are finished: their final
    /// records written (until `deadline` at the latest), the rooms placed here released, and
    /// the node marked `down` so that nobody forwards to it any more.
    pub async fn leave(&self, media: &Media, deadline: tokio::time::Instant) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        if !self.records.flush_all(deadline).await {
            tracing::warn!("some recording or stream records did not reach redis before the exit");
        }
        if let Ok(rooms) = self.cluster.placed_here().await {
            for room in rooms {
                let _ = self.cluster.release(&room).await;
            }
        }
        let _ = self.cluster.leave(load::of(media)).await;
    }

    /// Rooms placed on this node that have nothing going on here (their participants left,
    /// their recordings and streams ended, or nobody ever came) are released, so that their
    /// next use places them by the load of that moment.
    async fn release_idle_rooms(&self, media: Media) {
        let mut idle_since: std::collections::HashMap<String, tokio::time::Instant> = Default::default();
        let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
        loop {
            tick.tick().await;
            let _ = self.cluster.forget_departed().await;
            let Ok(placed) = self.cluster.placed_here().await else { continue };
            // Rooms running here that Redis does not know as ours (it restarted without
            // them): claimed again, so that requests for them come here.
            for room in load::rooms(&media) {
                if !placed.contains(&room) && self.cluster.claim(&room).await.unwrap_or(false) {
                    tracing::info!(%room, "room placement restored in redis");
                }
            }
            let now = tokio::time::Instant::now();
            idle_since.retain(|room, _| placed.contains(room));
            for room in placed {
                if load::hosts(&media, &room) {
                    idle_since.remove(&room);
                    continue;
                }
                let since = *idle_since.entry(room.clone()).or_insert(now);
                if now.duration_since(since) >= IDLE_RELEASE_AFTER && self.cluster.release(&room).await.is_ok() {
                    tracing::info!(%room, "room released: nothing going on here");
                    idle_since.remove(&room);
                }
            }
        }
    }

    pub(crate) fn count_forward(&self, websocket: bool, ok: bool) {
        let counter = if websocket { &self.stats.websockets } else { &self.stats.http };
        counter.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `field` array of `path` on every other node that is up (asked with the caller's
/// `Authorization`, marked as forwarded so that they answer for themselves only); a node that
/// does not answer is left out (and logged).
pub async fn gather(node: &ClusterNode, path: &str, field: &str, auth: Option<&str>) -> Vec<serde_json::Value> {
    let Ok(nodes) = node.cluster.nodes().await else { return Vec::new() };
    let others: Vec<Peer> = nodes.iter().filter(|n| n.is_up() && n.id() != node.node_id()).map(Peer::of).collect();
    let answers = futures_util::future::join_all(others.iter().map(|peer| node.get_json(peer, path, auth))).await;
    let mut all = Vec::new();
    for answer in answers {
        match answer {
            Ok(mut value) => {
                if let Some(items) = value.get_mut(field).and_then(|v| v.as_array_mut()) {
                    all.append(items);
                }
            }
            Err(err) => tracing::warn!(%err, path, "a node did not answer a gathered listing"),
        }
    }
    all
}

/// The shared records of `kind` (`recordings`, `streams`) owned by other nodes, of `room` if
/// given. Unreadable ones are left out; Redis away gives none (and is logged by the cluster).
pub async fn shared_records<T: serde::de::DeserializeOwned>(
    node: &ClusterNode,
    kind: &str,
    room: Option<&str>,
) -> Vec<T> {
    let Ok(records) = node.cluster.records(kind).await else { return Vec::new() };
    records
        .into_iter()
        .filter(|r| r["node"].as_str() != Some(node.node_id()))
        .filter(|r| room.is_none_or(|room| r["room"].as_str() == Some(room)))
        .filter_map(|r| serde_json::from_value(r).ok())
        .collect()
}

/// One shared record of `kind`, whoever owns it.
pub async fn shared_record<T: serde::de::DeserializeOwned>(node: &ClusterNode, kind: &str, id: &str) -> Option<T> {
    let record = node.cluster.record_of(kind, id).await.ok()??;
    serde_json::from_value(record).ok()
}

/// Compares secrets without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes as 64 hex digits.
fn random_hex() -> String {
    crate::ids::random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> ClusterNode {
        let settings = ClusterSettings {
            redis_url: crate::turn::Secret::new("redis://127.0.0.1:1/0"),
            node_id: None,
            public_url: "http://127.0.0.1:1".into(),
            max_cpu: 1.0,
            region: None,
            relay_port: 0,
            relay_public_addr: None,
        };
        let node = ClusterNode::join(&settings, id.into(), 3).expect("joins lazily");
        let _ = node.forward_key.set("the-key".into());
        node
    }

    #[tokio::test]
    async fn only_requests_with_the_cluster_key_count_as_forwarded() {
        let (a, b) = (node("a"), node("b"));
        let peer = Peer { id: "b".into(), url: "http://127.0.0.1:2".into() };
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in a.forwarding_headers(&peer) {
            headers.insert(name, value.parse().unwrap());
        }
        assert_eq!(b.forwarded_here(&headers), Forwarded::ToUs);
        // Meant for another node (two nodes behind one public URL).
        let c = node("c");
        assert_eq!(c.forwarded_here(&headers), Forwarded::ToAnother("b".into()));
        // A client's forgery: no key, or a wrong one.
        headers.insert(FORWARD_KEY, "guess".parse().unwrap());
        assert_eq!(b.forwarded_here(&headers), Forwarded::No);
        headers.remove(FORWARD_KEY);
        assert_eq!(b.forwarded_here(&headers), Forwarded::No);
        strip_forwarding_headers(&mut headers);
        assert!(headers.is_empty());
    }
}
