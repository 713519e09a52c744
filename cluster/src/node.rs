//! A node as the cluster sees it: the record its heartbeat writes, and its status derived
//! from the record's age (pure: the time is an argument).

use serde::{Deserialize, Serialize};

/// How often a node writes its heartbeat.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// A node whose last heartbeat is older than this is `down`.
pub const DOWN_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
/// A node down for this long is forgotten (its record removed from the listing).
pub const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a node is doing, as `GET /v1/nodes` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Takes new rooms.
    Serving,
    /// Finishing what it hosts before it exits: takes no new rooms.
    Draining,
    /// Silent for longer than [`DOWN_AFTER`].
    Down,
}

/// A node's load, as its heartbeat reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Rooms with participants, a program, or running outputs.
    pub rooms: u32,
    pub participants: u32,
    /// Room programs (GStreamer pipelines) running.
    pub programs: u32,
    /// Share of the machine's CPU in use, 0.0 to 1.0.
    pub cpu: f32,
}

/// The record a node's heartbeat writes (one field of the `nodes` hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// Base URL of the node's HTTP API, as other nodes and clients reach it.
    pub url: String,
    /// What the node says of itself: `serving`, `draining`, or `down` once it has left.
    pub status: NodeStatus,
    /// The node's region label (`--region`), if it has one: tokens may ask for a node there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Where the node's relay links are received (`ip:port`), once it has bound them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    #[serde(flatten)]
    pub load: NodeLoad,
    /// How many programs the node admits (its budget), for placement.
    pub program_budget: u32,
    /// Unix time of the heartbeat, in milliseconds.
    pub updated_at_ms: u64,
}

/// A node with its status as of now.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub record: NodeRecord,
    pub status: NodeStatus,
}

impl NodeInfo {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn url(&self) -> &str {
        &self.record.url
    }

    pub fn is_up(&self) -> bool {
        self.status != NodeStatus::Down
    }
}

impl NodeRecord {
    /// The node's status at `now_ms`: what it says, unless it has been silent too long.
    pub fn status_at(&self, now_ms: u64) -> NodeStatus {
        if now_ms.saturating_sub(self.updated_at_ms) > DOWN_AFTER.as_millis() as u64 {
            NodeStatus::Down
        } else {
            self.status
        }
    }

    /// Whether the record is old enough to be removed.
    pub fn forgotten_at(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.updated_at_ms) > FORGET_AFTER.as_millis() as u64
    }

    pub fn at(self, now_ms: u64) -> NodeInfo {
        let status = self.status_at(now_ms);
        NodeInfo { record: self, status }
    }
}

/// Unix time in milliseconds (0 before the epoch).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(updated_at_ms: u64, status: NodeStatus) -> NodeRecord {
        NodeRecord {
            region: None,
            relay: None,
            id: "n1".into(),
            url: "http://127.0.0.1:1".into(),
            status,
            load: NodeLoad::default(),
            program_budget: 3,
            updated_at_ms,
        }
    }

    #[test]
    fn a_node_silent_for_more_than_5_s_is_down() {
        let r = record(10_000, NodeStatus::Serving);
        assert_eq!(r.status_at(10_000), NodeStatus::Serving);
        assert_eq!(r.status_at(15_000), NodeStatus::Serving);
        assert_eq!(r.status_at(15_001), NodeStatus::Down);
        // A clock a little behind the writer's is not "down".
        assert_eq!(r.status_at(9_000), NodeStatus::Serving);
        assert_eq!(record(10_000, NodeStatus::Draining).status_at(12_000), NodeStatus::Draining);
        assert_eq!(record(10_000, NodeStatus::Draining).status_at(20_000), NodeStatus::Down);
    }

    #[test]
    fn the_record_is_flat_json_with_the_api_field_names() {
        let mut r = record(1, NodeStatus::Serving);
        r.load = NodeLoad { rooms: 2, participants: 5, programs: 1, cpu: 0.5 };
        let v = serde_json::to_value(&r).unwrap();
        for field in ["id", "url", "status", "rooms", "participants", "programs", "cpu", "updated_at_ms"] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(v["status"], "serving");
        assert_eq!(serde_json::from_value::<NodeRecord>(v).unwrap(), r);
    }

    #[test]
    fn down_nodes_are_forgotten_after_an_hour() {
        let r = record(0, NodeStatus::Serving);
        assert!(!r.forgotten_at(3_600_000));
        assert!(r.forgotten_at(3_600_001));
    }
}
