//! Cluster mode (`--redis-url`): this node's part in a cluster of Tessera nodes.
//!
//! The shared state lives in Redis behind `tessera-cluster`'s narrow [`Cluster`] handle; this
//! module wires it to the server:
//!
//! - the heartbeat reports what the SFU and the programs carry ([`load`]);
//! - requests for a room go to its home node ([`routing`], [`forward`]), while a participant is
//!   hosted by the node its signalling or WHIP reaches ([`signalling`]);
//! - rooms spread over nodes ([`cascade`]) with their webhooks once per room
//!   ([`room_webhooks`]);
//! - recordings' and streams' records are shared ([`records`]);
//! - the node's tasks, drain and leaving are in `lifecycle.rs`.
//!
//! The SFU and the compositor never see Redis.

pub mod cascade;
pub mod forward;
mod lifecycle;
pub mod load;
pub mod records;
pub mod room_webhooks;
pub mod routing;
pub mod signalling;
mod takeover;
pub mod whep;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_cluster::{Cluster, ClusterConfig};

use crate::config::ClusterSettings;

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
