//! A room spread over nodes: each node's part of it (its participants and tracks, as JSON the
//! SFU makes) under its own expiring key, the set of nodes with a part, and the keys of the
//! relay links between nodes. A node that dies stops refreshing its part, which then expires:
//! the others drop its participants even before its heartbeat says it is down.

use std::time::Duration;

use crate::client::Cluster;
use crate::error::{ClusterError, Result};

/// A part not refreshed for this long is gone.
pub const ROOM_PART_TTL: Duration = Duration::from_secs(10);

impl Cluster {
    /// Writes this node's part of `room` (`None`: it has none any more).
    pub async fn put_room_part(&self, room: &str, part: Option<&str>) -> Result<()> {
        let keys = &self.inner.keys;
        let (nodes, key) = (keys.room_nodes(room), keys.room_part(room, self.node_id()));
        let mut redis = self.redis();
        let mut pipe = redis::pipe();
        match part {
            Some(json) => pipe
                .cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("PX")
                .arg(ROOM_PART_TTL.as_millis() as u64)
                .ignore()
                .cmd("SADD")
                .arg(&nodes)
                .arg(self.node_id())
                .ignore(),
            None => pipe.cmd("DEL").arg(&key).ignore().cmd("SREM").arg(&nodes).arg(self.node_id()).ignore(),
        };
        let written: Result<()> =
            pipe.query_async(&mut redis).await.map_err(ClusterError::redis("write a node's part of a room"));
        self.observe(written)
    }

    /// Every node's part of `room`, by node id (this node's included). Nodes whose part
    /// expired are taken out of the room's set.
    pub async fn room_parts(&self, room: &str) -> Result<Vec<(String, String)>> {
        let keys = &self.inner.keys;
        let mut redis = self.redis();
        let nodes: Result<Vec<String>> = redis::cmd("SMEMBERS")
            .arg(keys.room_nodes(room))
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("list a room's nodes"));
        let nodes = self.observe(nodes)?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let part_keys: Vec<String> = nodes.iter().map(|n| keys.room_part(room, n)).collect();
        let parts: Result<Vec<Option<String>>> = redis::cmd("MGET")
            .arg(&part_keys)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("read a room"));
        let parts = self.observe(parts)?;
        let mut found = Vec::new();
        for (node, part) in nodes.into_iter().zip(parts) {
            match part {
                Some(json) => found.push((node, json)),
                None => {
                    let _: Result<()> = redis::cmd("SREM")
                        .arg(keys.room_nodes(room))
                        .arg(&node)
                        .query_async(&mut redis)
                        .await
                        .map_err(ClusterError::redis("forget a node's expired part"));
                }
            }
        }
        Ok(found)
    }

    /// The keys of the relay link from this node to `peer` and from `peer` to this node (hex;
    /// `fresh` is this node's candidate for its own direction). Each direction's keys are made
    /// by the first node to ask and shared by both.
    pub async fn relay_keys(&self, peer: &str, fresh: &str, theirs_candidate: &str) -> Result<(String, String)> {
        let key = self.inner.keys.relay_keys();
        let (ours, theirs) = (format!("{}>{peer}", self.node_id()), format!("{peer}>{}", self.node_id()));
        let mut redis = self.redis();
        let both: Result<(String, String)> = redis::pipe()
            .cmd("HSETNX")
            .arg(&key)
            .arg(&ours)
            .arg(fresh)
            .ignore()
            .cmd("HSETNX")
            .arg(&key)
            .arg(&theirs)
            .arg(theirs_candidate)
            .ignore()
            .cmd("HGET")
            .arg(&key)
            .arg(&ours)
            .cmd("HGET")
            .arg(&key)
            .arg(&theirs)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("read relay keys"));
        self.observe(both)
    }

    /// New keys for everything this node sends (at start: a restarted node never reuses the
    /// keys its previous run encrypted with). `fresh` makes one key.
    pub async fn renew_relay_keys(&self, peers: &[String], fresh: impl Fn() -> String) -> Result<()> {
        if peers.is_empty() {
            return Ok(());
        }
        let key = self.inner.keys.relay_keys();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key);
        for peer in peers {
            cmd.arg(format!("{}>{peer}", self.node_id())).arg(fresh());
        }
        let mut redis = self.redis();
        let written: Result<()> = cmd.query_async(&mut redis).await.map_err(ClusterError::redis("renew relay keys"));
        self.observe(written)
    }

    /// Marks `room` live cluster-wide unless it already is: whether this node did (and so
    /// sends `room.started`). The mark lapses after `ttl` unless [`Cluster::keep_room_live`]
    /// renews it (a cluster whose nodes all died does not keep a room live forever).
    pub async fn claim_room_live(&self, room: &str, ttl: Duration) -> Result<bool> {
        let mut redis = self.redis();
        let set: Result<Option<String>> = redis::cmd("SET")
            .arg(self.inner.keys.room_live(room))
            .arg(self.node_id())
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("mark a room live"));
        Ok(self.observe(set)?.is_some())
    }

    /// Renews `room`'s live mark (a node that still hosts some of it).
    pub async fn keep_room_live(&self, room: &str, ttl: Duration) -> Result<()> {
        let mut redis = self.redis();
        let kept: Result<()> = redis::cmd("PEXPIRE")
            .arg(self.inner.keys.room_live(room))
            .arg(ttl.as_millis() as u64)
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("renew a room's live mark"));
        self.observe(kept)
    }

    /// Ends `room` cluster-wide: whether this node removed its live mark (and so sends
    /// `room.ended`; of several nodes ending it at once, one does).
    pub async fn end_room_live(&self, room: &str) -> Result<bool> {
        let mut redis = self.redis();
        let removed: Result<u32> = redis::cmd("DEL")
            .arg(self.inner.keys.room_live(room))
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("end a room"));
        Ok(self.observe(removed)? == 1)
    }
}
