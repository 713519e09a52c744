//! Recordings' and streams' records shared through Redis: every save on this node is copied
//! there (with `"node"`: this node's id), so that any node lists and reads them, and a
//! survivor finds a dead node's recordings.
//!
//! Saves happen under the registries' locks, so the copy is queued here and written by a task;
//! while Redis is away the latest version of each record waits and is written when it is
//! back (nothing acknowledged to a client is lost by a Redis outage).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_cluster::Cluster;

use crate::json_store::RecordMirror;
use crate::locks::lock;

/// Pending copies by (kind, id): only the latest version of a record matters.
type Pending = BTreeMap<(&'static str, String), serde_json::Value>;

/// The copies on their way to Redis.
///
/// Lock order: `pending`, then `writing`; `pending` is also taken under a registry's lock
/// (the streams save under their `entries`, through [`RecordMirror::mirror`]).
#[derive(Debug)]
pub struct SharedRecords {
    node_id: String,
    pending: Mutex<Pending>,
    /// The records of the batch being written now.
    writing: Mutex<std::collections::BTreeSet<(&'static str, String)>>,
    wake: tokio::sync::Notify,
}

/// The Redis hash a store's records go to (`recordings`, `streams`, `hls`).
pub fn kind_key(kind: &str) -> &'static str {
    match kind {
        "recording" | "recordings" => "recordings",
        "hls" => "hls",
        _ => "streams",
    }
}

impl SharedRecords {
    /// Starts the writer task (inside the Tokio runtime).
    pub fn start(cluster: Cluster) -> Arc<SharedRecords> {
        let shared = Arc::new(SharedRecords {
            node_id: cluster.node_id().to_owned(),
            pending: Mutex::default(),
            writing: Mutex::default(),
            wake: Default::default(),
        });
        let writer = Arc::clone(&shared);
        tokio::spawn(async move { writer.write_pending(cluster).await });
        shared
    }

    /// The pending records, now being written.
    fn take(&self) -> Pending {
        let mut pending = lock(&self.pending);
        let batch = std::mem::take(&mut *pending);
        *lock(&self.writing) = batch.keys().cloned().collect();
        batch
    }

    fn is_written(&self, key: &(&'static str, String)) -> bool {
        let pending = lock(&self.pending);
        !pending.contains_key(key) && !lock(&self.writing).contains(key)
    }

    /// Waits until every record is written, until `deadline` at the latest.
    pub async fn flush_all(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let idle = lock(&self.pending).is_empty() && lock(&self.writing).is_empty();
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to `timeout`) until the latest version of the record is in Redis: an
    /// answer that acknowledges a recording then means every node can find it. `false` when
    /// Redis is away (the record follows when it is back).
    pub async fn flushed(&self, kind: &str, id: &str, timeout: Duration) -> bool {
        let key = (kind_key(kind), id.to_owned());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_written(&key) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn put_back(&self, failed: Pending) {
        let mut pending = lock(&self.pending);
        for (key, value) in failed {
            pending.entry(key).or_insert(value);
        }
        lock(&self.writing).clear();
    }

    async fn write_pending(&self, cluster: Cluster) {
        loop {
            self.wake.notified().await;
            loop {
                let batch = self.take();
                if batch.is_empty() {
                    break;
                }
                let mut failed = Pending::new();
                for ((kind, id), value) in batch {
                    if cluster.put_record(kind, &id, &value).await.is_err() {
                        failed.insert((kind, id), value);
                    }
                }
                if failed.is_empty() {
                    lock(&self.writing).clear();
                    continue;
                }
                // Put back what failed, unless a newer version came meanwhile; retry soon.
                self.put_back(failed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl RecordMirror for SharedRecords {
    fn mirror(&self, kind: &'static str, id: &str, mut value: serde_json::Value) {
        if let Some(object) = value.as_object_mut() {
            object.insert("node".into(), self.node_id.clone().into());
        }
        lock(&self.pending).insert((kind_key(kind), id.to_owned()), value);
        self.wake.notify_one();
    }
}
