//! Tessera's cluster membership on Redis, behind one narrow handle: [`Cluster`].
//!
//! Several Tessera nodes share one Redis. Each node writes a heartbeat with its load
//! ([`NodeRecord`], every 2 s; silent for 5 s means `down`); a room is placed on one node when
//! first needed, under a Redis lock, by the power of two random choices
//! ([`placement`]); recordings' and streams' metadata can be kept in Redis so that every node
//! lists the same ones ([`Cluster::put_record`]). The SFU and the compositor know nothing of
//! this: the binary asks the cluster where a room lives and forwards to that node.
//!
//! Redis being away is not fatal: every call returns [`ClusterError::Redis`] until it is
//! back (the connection reconnects by itself), and callers keep serving what they host.
//!
//! Redis layout (all under a prefix, `tessera:` by default):
//! - `nodes`: hash, node id → [`NodeRecord`] JSON;
//! - `room:{room}`: the id of the node hosting the room;
//! - `node-rooms:{node}`: set of the rooms placed on a node;
//! - `lock:room:{room}`: a room's placement lock (a random token, expiring);
//! - `records:{kind}`: hash, id → JSON (`recordings`, `streams`);
//! - `secret:{name}`: cluster-wide secrets created by the first node that needs them.

mod client;
pub mod cpu;
mod error;
mod keys;
mod lock;
pub mod node;
pub mod node_id;
pub mod placement;
mod random;
mod records;
mod room_parts;
mod rooms;

pub use client::{Cluster, ClusterConfig, ClusterStats};
pub use error::{ClusterError, Result};
pub use lock::RedisLock;
pub use node::{NodeInfo, NodeLoad, NodeRecord, NodeStatus};
pub use placement::Admission;
pub use room_parts::ROOM_PART_TTL;
