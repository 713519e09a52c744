//! Which node hosts a room: looked up, placed under a lock, released when the room ends.

use std::time::Duration;

use crate::client::Cluster;
use crate::error::{ClusterError, Result};
use crate::lock::RedisLock;
use crate::node::NodeInfo;
use crate::placement::{self, Candidate};

/// Long enough for a placement (a few Redis round trips); short enough that a node dying
/// while it holds the lock delays the room by seconds only.
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How long a placement waits for another node's placement of the same room.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Removes the room's entry only if it still names this node (another node may have placed
/// it again after this one was declared down), and always takes it out of this node's set.
const RELEASE: &str = r#"
redis.call("SREM", KEYS[2], ARGV[2])
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end
"#;

/// Writes a placement only if the placing node still holds the room's lock and the room is
/// still where it saw it (`""`: nowhere), moving it between the nodes' sets.
/// KEYS: lock, room, new node's rooms, old node's rooms; ARGV: token, previous, new, room.
const ASSIGN: &str = r#"
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
local current = redis.call("GET", KEYS[2])
if current == false then current = "" end
if current ~= ARGV[2] then return 0 end
redis.call("SET", KEYS[2], ARGV[3])
redis.call("SADD", KEYS[3], ARGV[4])
if ARGV[2] ~= "" and ARGV[2] ~= ARGV[3] then redis.call("SREM", KEYS[4], ARGV[4]) end
return 1
"#;

/// Places the room here if it is placed nowhere (or here already).
const CLAIM: &str = r#"
local current = redis.call("GET", KEYS[1])
if current == false or current == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1])
  redis.call("SADD", KEYS[2], ARGV[2])
  return 1
end
return 0
"#;

impl Cluster {
    /// The node hosting `room`, if it is placed on a node that is up (serving or draining).
    pub async fn host_of(&self, room: &str) -> Result<Option<NodeInfo>> {
        let Some(id) = self.placed_on(room).await? else { return Ok(None) };
        Ok(self.node(&id).await?.filter(NodeInfo::is_up))
    }

    /// The id of the node `room` is placed on, up or not.
    async fn placed_on(&self, room: &str) -> Result<Option<String>> {
        let mut redis = self.redis();
        let id: Result<Option<String>> = redis::cmd("GET")
            .arg(self.inner.keys.room(room))
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("look up a room"));
        self.observe(id)
    }

    /// The node hosting `room`, placing it first if it has none (or its node is down): on a
    /// serving node with capacity, chosen by [`placement::choose`], under the room's lock so
    /// that two nodes placing it at once agree. [`ClusterError::NoCapacity`] when no node
    /// can take it.
    pub async fn place(&self, room: &str) -> Result<NodeInfo> {
        if let Some(host) = self.host_of(room).await? {
            return Ok(host);
        }
        let mut redis = self.redis();
        let lock = RedisLock::acquire(&mut redis, self.inner.keys.room_lock(room), LOCK_TTL, LOCK_WAIT).await;
        let Some(lock) = self.observe(lock)? else {
            return Err(ClusterError::Busy { room: room.to_owned() });
        };
        let placed = self.place_locked(room, &lock).await;
        // An unreleased lock expires by itself within LOCK_TTL.
        let _ = lock.release(&mut redis).await;
        match placed {
            // The lock expired during a slow placement and another node placed the room:
            // theirs stands.
            Ok(None) => self.host_of(room).await?.ok_or(ClusterError::Busy { room: room.to_owned() }),
            Ok(Some(host)) => Ok(host),
            Err(err) => Err(err),
        }
    }

    /// Chooses a node and writes the placement, fenced: only if the lock is still ours and
    /// the room is still where we saw it (`None` otherwise).
    async fn place_locked(&self, room: &str, lock: &RedisLock) -> Result<Option<NodeInfo>> {
        // Someone else may have placed it while we waited for the lock.
        let previous = self.placed_on(room).await?;
        let nodes = self.nodes().await?;
        if let Some(host) = previous.as_deref().and_then(|id| nodes.iter().find(|n| n.id() == id && n.is_up())) {
            return Ok(Some(host.clone()));
        }
        let admission = self.inner.config.admission;
        let eligible: Vec<&NodeInfo> = nodes.iter().filter(|n| placement::admits(n, admission)).collect();
        let rooms = self.room_counts(&eligible).await?;
        let candidates: Vec<Candidate> =
            eligible.iter().zip(rooms).map(|(node, rooms)| Candidate { node, rooms }).collect();
        let Some(chosen) = placement::choose(&candidates, admission, crate::random::below).cloned() else {
            self.inner.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%room, nodes = nodes.len(), "no node has capacity for the room");
            return Err(ClusterError::NoCapacity);
        };
        let keys = &self.inner.keys;
        let previous_id = previous.clone().unwrap_or_default();
        let old_set = keys.node_rooms(if previous_id.is_empty() { chosen.id() } else { &previous_id });
        let mut redis = self.redis();
        let written: Result<i64> = redis::Script::new(ASSIGN)
            .key(lock.key())
            .key(keys.room(room))
            .key(keys.node_rooms(chosen.id()))
            .key(old_set)
            .arg(lock.token())
            .arg(&previous_id)
            .arg(chosen.id())
            .arg(room)
            .invoke_async(&mut redis)
            .await
            .map_err(ClusterError::redis("write a room placement"));
        if self.observe(written)? == 0 {
            tracing::warn!(%room, "placement lock lost before the placement was written; keeping the other node's");
            return Ok(None);
        }
        match previous.as_deref().filter(|old| *old != chosen.id()) {
            Some(old) => tracing::info!(%room, from = old, to = chosen.id(), "room placed again: its node is down"),
            None => tracing::info!(%room, node = chosen.id(), "room placed"),
        }
        self.inner.placements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(chosen))
    }

    /// How many rooms are placed on each node, now (fresher than the heartbeats).
    async fn room_counts(&self, nodes: &[&NodeInfo]) -> Result<Vec<u32>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for node in nodes {
            pipe.cmd("SCARD").arg(self.inner.keys.node_rooms(node.id()));
        }
        let mut redis = self.redis();
        let counts: Result<Vec<u32>> =
            pipe.query_async(&mut redis).await.map_err(ClusterError::redis("count rooms per node"));
        self.observe(counts)
    }

    /// The room has ended on this node: its placement is removed (if it is still this
    /// node's), so that its next use places it again.
    pub async fn release(&self, room: &str) -> Result<bool> {
        self.this_nodes_room(RELEASE, room, "release a room").await
    }

    /// Records that `room`, which runs here, is placed here, unless it is placed elsewhere
    /// (after a Redis restart that lost the placement, the node that hosts the room claims it
    /// again). `true` if the room is now placed here.
    pub async fn claim(&self, room: &str) -> Result<bool> {
        self.this_nodes_room(CLAIM, room, "claim a room").await
    }

    /// Runs `script` on the room's placement and this node's room set (KEYS: room, set;
    /// ARGV: node id, room); `true` if it answered 1.
    async fn this_nodes_room(&self, script: &str, room: &str, context: &'static str) -> Result<bool> {
        let keys = &self.inner.keys;
        let mut redis = self.redis();
        let answer: Result<i64> = redis::Script::new(script)
            .key(keys.room(room))
            .key(keys.node_rooms(self.node_id()))
            .arg(self.node_id())
            .arg(room)
            .invoke_async(&mut redis)
            .await
            .map_err(ClusterError::redis(context));
        Ok(self.observe(answer)? == 1)
    }

    /// The rooms placed on this node.
    pub async fn placed_here(&self) -> Result<Vec<String>> {
        let mut redis = self.redis();
        let rooms: Result<Vec<String>> = redis::cmd("SMEMBERS")
            .arg(self.inner.keys.node_rooms(self.node_id()))
            .query_async(&mut redis)
            .await
            .map_err(ClusterError::redis("list this node's rooms"));
        let mut rooms = self.observe(rooms)?;
        rooms.sort();
        Ok(rooms)
    }
}
