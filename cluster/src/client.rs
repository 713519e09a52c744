//! The [`Cluster`] handle: the Redis connection, this node's heartbeat and the node listing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::cpu::CpuMeter;
use crate::error::{ClusterError, Result};
use crate::keys::Keys;
use crate::node::{HEARTBEAT_INTERVAL, NodeInfo, NodeLoad, NodeRecord, NodeStatus, unix_ms};
use crate::placement::Admission;

/// How long one Redis command may take before it counts as an outage. Short: a request
/// waiting on Redis is a request a user waits for.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Removes a node's record, its room set, and the placements that still name it.
/// KEYS: nodes hash, the node's room set; ARGV: node id, the room key prefix.
const FORGET: &str = r#"
for _, room in ipairs(redis.call("SMEMBERS", KEYS[2])) do
  local key = ARGV[2] .. room
  if redis.call("GET", key) == ARGV[1] then redis.call("DEL", key) end
end
redis.call("DEL", KEYS[2])
return redis.call("HDEL", KEYS[1], ARGV[1])
"#;

/// This node's place in the cluster. Debug leaves out the Redis URL (it may hold a password).
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db` or `rediss://` (TLS).
    pub redis_url: String,
    pub node_id: String,
    /// Base URL of this node's HTTP API as other nodes reach it (no trailing slash).
    pub public_url: String,
    /// Programs this node admits.
    pub program_budget: u32,
    /// This node's region label, if any (`--region`).
    pub region: Option<String>,
    pub admission: Admission,
    /// Prefix of every key (`tessera:`): several clusters can share one Redis database.
    pub key_prefix: String,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &"<redacted>")
            .field("node_id", &self.node_id)
            .field("public_url", &self.public_url)
            .field("program_budget", &self.program_budget)
            .field("region", &self.region)
            .field("admission", &self.admission)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// What the cluster did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Rooms this node placed (on any node, itself included).
    pub placements: u64,
    /// Placements refused because no node had capacity.
    pub refused: u64,
    /// Redis commands that failed.
    pub redis_errors: u64,
    /// Whether the last Redis command succeeded.
    pub redis_up: bool,
}

/// A node's handle on the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub redis: ConnectionManager,
    pub config: ClusterConfig,
    pub keys: Keys,
    draining: AtomicBool,
    pub placements: AtomicU64,
    pub refused: AtomicU64,
    redis_errors: AtomicU64,
    redis_up: AtomicBool,
    /// The relay socket's address, once bound (in the heartbeat).
    pub relay: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the Redis URL: it may carry a password.
        f.debug_struct("Cluster").field("node_id", &self.inner.config.node_id).finish()
    }
}

impl Cluster {
    /// A handle on the cluster. Connects lazily: a node can start while Redis is away (its
    /// calls fail until Redis is back, and the connection is retried on each of them).
    /// Must be called inside a Tokio runtime.
    pub fn connect(config: ClusterConfig) -> Result<Cluster> {
        let client = redis::Client::open(config.redis_url.as_str()).map_err(|source| ClusterError::Url { source })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let redis = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|source| ClusterError::Redis { context: "connect", source })?;
        let keys = Keys::new(&config.key_prefix);
        Ok(Cluster {
            inner: Arc::new(Inner {
                redis,
                config,
                keys,
                draining: AtomicBool::new(false),
                placements: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                redis_errors: AtomicU64::new(0),
                redis_up: AtomicBool::new(false),
                relay: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    pub fn public_url(&self) -> &str {
        &self.inner.config.public_url
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// From now on this node takes no new rooms (its heartbeat says `draining`).
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> ClusterStats {
        ClusterStats {
            placements: self.inner.placements.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
            redis_errors: self.inner.redis_errors.load(Ordering::Relaxed),
            redis_up: self.inner.redis_up.load(Ordering::Relaxed),
        }
    }

    /// Takes the cluster-wide lock `name` for at most `ttl` (it expires by itself if this
    /// node dies), waiting up to `wait`; `None` if another node holds it.
    pub async fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<crate::lock::RedisLock>> {
        let mut redis = self.redis();
        let key = format!("{}lock:named:{name}", self.inner.config.key_prefix);
        let taken = crate::lock::RedisLock::acquire(&mut redis, key, ttl, wait).await;
        self.observe(taken)
    }

    /// Releases a lock taken with [`Cluster::lock`] (only if it is still ours).
    pub async fn unlock(&self, lock: crate::lock::RedisLock) -> Result<()> {
        let mut redis = self.redis();
        let released = lock.release(&mut redis).await;
        self.observe(released)
    }

    /// A connection for one call (the manager multiplexes; clones are cheap).
    pub(crate) fn redis(&self) -> ConnectionManager {
        self.inner.redis.clone()
    }

    /// Counts the outcome of a Redis call, for `redis_up` and the metrics.
    pub(crate) fn observe<T>(&self, result: Result<T>) -> Result<T> {
        match &result {
            Err(e) if e.is_unavailable() => {
                self.inner.redis_errors.fetch_add(1, Ordering::Relaxed);
                if self.inner.redis_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(err = %e, "redis unreachable: serving what this node hosts; new placements wait");
                }
            }
            _ => {
                if !self.inner.redis_up.swap(true, Ordering::Relaxed) {
                    tracing::info!(node = %self.node_id(), "redis reachable");
                }
            }
        }
        result
    }

    /// Where this node receives relay links (`ip:port`), told once it has bound the socket.
    pub fn set_relay_addr(&self, addr: String) {
        let _ = self.inner.relay.set(addr);
    }

    /// This node's record with `load`, as of now.
    pub fn record(&self, load: NodeLoad) -> NodeRecord {
        let status = if self.is_draining() { NodeStatus::Draining } else { NodeStatus::Serving };
        NodeRecord {
            id: self.node_id().to_owned(),
            url: self.public_url().to_owned(),
            status,
            region: self.inner.config.region.clone(),
            relay: self.inner.relay.get().cloned(),
            load,
            program_budget: self.inner.config.program_budget,
            updated_at_ms: unix_ms(),
        }
    }

    /// Writes this node's heartbeat.
    pub async fn heartbeat(&self, load: NodeLoad) -> Result<()> {
        self.write_record(&self.record(load)).await
    }

    async fn write_record(&self, record: &NodeRecord) -> Result<()> {
        let json = serde_json::to_string(record)
            .map_err(|source| ClusterError::Record { key: self.inner.keys.nodes(), source })?;
        let mut redis = self.redis();
        let written: Result<()> = redis::cmd("HSET")
            .arg(self.inner.keys.nodes())
            .arg(self.node_id())
            .arg(json)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("write the heartbeat"));
        self.observe(written)
    }

    /// Says this node has left (a graceful stop is over): it shows as `down` at once, so no
    /// node forwards to it during the 5 s its silence would otherwise take to notice.
    pub async fn leave(&self, load: NodeLoad) -> Result<()> {
        let mut record = self.record(load);
        record.status = NodeStatus::Down;
        self.write_record(&record).await
    }

    /// Writes the heartbeat every 2 s with the load `load()` reports (and the machine's CPU
    /// use, measured here) until the handle is aborted. A failed write is logged once per
    /// outage (by `Cluster::observe`); the next tick tries again.
    pub fn spawn_heartbeat(&self, load: impl Fn() -> NodeLoad + Send + Sync + 'static) -> tokio::task::JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut cpu = CpuMeter::default();
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut now = load();
                now.cpu = cpu.sample();
                let _ = cluster.heartbeat(now).await;
            }
        })
    }

    /// Every node the cluster knows, with its status as of now, by id (not those down for an
    /// hour: [`Cluster::forget_departed`] removes them).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let mut redis = self.redis();
        let key = self.inner.keys.nodes();
        let all: Result<Vec<(String, String)>> =
            redis::cmd("HGETALL").arg(&key).query_async(&mut redis).await.map_err(ClusterError::redis("list nodes"));
        let all = self.observe(all)?;
        let now = unix_ms();
        let mut nodes = Vec::with_capacity(all.len());
        for (id, json) in all {
            let record: NodeRecord = match serde_json::from_str(&json) {
                Ok(record) => record,
                Err(err) => {
                    tracing::warn!(node = %id, %err, "unreadable node record skipped");
                    continue;
                }
            };
            if record.forgotten_at(now) {
                continue;
            }
            nodes.push(record.at(now));
        }
        nodes.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(nodes)
    }

    /// Removes the nodes down for an hour, with their placements (a cluster whose nodes come
    /// and go, autoscaled, would otherwise keep their keys for ever). Returns how many.
    pub async fn forget_departed(&self) -> Result<usize> {
        let mut redis = self.redis();
        let key = self.inner.keys.nodes();
        let all: Result<Vec<(String, String)>> =
            redis::cmd("HGETALL").arg(&key).query_async(&mut redis).await.map_err(ClusterError::redis("list nodes"));
        let now = unix_ms();
        let mut forgotten = 0;
        for (id, json) in self.observe(all)? {
            let departed = serde_json::from_str::<NodeRecord>(&json).map(|r| r.forgotten_at(now)).unwrap_or(true);
            if !departed {
                continue;
            }
            let written: Result<i64> = redis::Script::new(FORGET)
                .key(&key)
                .key(self.inner.keys.node_rooms(&id))
                .arg(&id)
                .arg(self.inner.keys.room(""))
                .invoke_async(&mut redis)
                .await
                .map_err(ClusterError::redis("forget a node"));
            self.observe(written)?;
            tracing::info!(node = %id, "forgot a node down for an hour");
            forgotten += 1;
        }
        Ok(forgotten)
    }

    /// One node, by id.
    pub async fn node(&self, id: &str) -> Result<Option<NodeInfo>> {
        let mut redis = self.redis();
        let key = self.inner.keys.nodes();
        let json: Result<Option<String>> = redis::cmd("HGET")
            .arg(&key)
            .arg(id)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("read a node"));
        let Some(json) = self.observe(json)? else { return Ok(None) };
        let record: NodeRecord = serde_json::from_str(&json)
            .map_err(|source| ClusterError::Record { key: format!("{key} {id}"), source })?;
        Ok(Some(record.at(unix_ms())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_redis_password() {
        let config = ClusterConfig {
            redis_url: "redis://:hunter2@127.0.0.1:6379/0".into(),
            node_id: "n1".into(),
            public_url: "http://127.0.0.1:8080".into(),
            program_budget: 3,
            region: None,
            admission: Admission::default(),
            key_prefix: "tessera:".into(),
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
