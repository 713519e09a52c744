//! Records shared by every node (recordings' and streams' metadata), and cluster-wide
//! secrets. Records are JSON, one hash per kind, written by the node that owns them.

use crate::client::Cluster;
use crate::error::{ClusterError, Result};

impl Cluster {
    /// Writes (or replaces) the record `id` of `kind`.
    pub async fn put_record(&self, kind: &str, id: &str, value: &serde_json::Value) -> Result<()> {
        let mut redis = self.redis();
        let written: Result<()> = redis::cmd("HSET")
            .arg(self.inner.keys.records(kind))
            .arg(id)
            .arg(value.to_string())
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("write a record"));
        self.observe(written)
    }

    /// The record `id` of `kind`.
    pub async fn record_of(&self, kind: &str, id: &str) -> Result<Option<serde_json::Value>> {
        let key = self.inner.keys.records(kind);
        let mut redis = self.redis();
        let json: Result<Option<String>> = redis::cmd("HGET")
            .arg(&key)
            .arg(id)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("read a record"));
        match self.observe(json)? {
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|source| ClusterError::Record { key: format!("{key} {id}"), source }),
            None => Ok(None),
        }
    }

    /// Every record of `kind` (unreadable ones are skipped and logged).
    pub async fn records(&self, kind: &str) -> Result<Vec<serde_json::Value>> {
        let key = self.inner.keys.records(kind);
        let mut redis = self.redis();
        let all: Result<Vec<String>> =
            redis::cmd("HVALS").arg(&key).query_async(&mut redis).await.map_err(ClusterError::redis("list records"));
        Ok(self
            .observe(all)?
            .into_iter()
            .filter_map(|json| match serde_json::from_str(&json) {
                Ok(value) => Some(value),
                Err(err) => {
                    tracing::warn!(%key, %err, "unreadable record skipped");
                    None
                }
            })
            .collect())
    }

    /// The cluster-wide secret `name`: the one already in Redis, or `candidate` if this node
    /// is the first to ask (set only if absent, so every node ends up with the same one).
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        let key = self.inner.keys.secret(name);
        let mut redis = self.redis();
        let secret: Result<String> = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(candidate)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async::<(String,)>(&mut redis)
            .await
            .map(|(s,)| s)
            .map_err(ClusterError::redis("read a shared secret"));
        self.observe(secret)
    }
}
