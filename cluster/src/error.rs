//! The cluster crate's one error type.

/// What can go wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis is unreachable or answered with an error. Callers treat this as "the cluster is
    /// unavailable for now": rooms already hosted here keep running.
    #[error("redis: {context}: {source}")]
    Redis {
        context: &'static str,
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer within the caller's deadline (an outage where packets are
    /// dropped rather than refused).
    #[error("redis: no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// A record in Redis that is not what this version writes.
    #[error("redis: {key}: unreadable record: {source}")]
    Record {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// No serving node has room for another room (or program).
    #[error("no node can take the room: every serving node is at its budget")]
    NoCapacity,
    /// Another node holds the room's placement lock for longer than we wait.
    #[error("the placement of room {room} is busy on another node; try again")]
    Busy { room: String },
    /// The `--redis-url` is not a Redis URL.
    #[error("invalid redis URL: {source}")]
    Url {
        #[source]
        source: redis::RedisError,
    },
    /// The node id file in the data directory.
    #[error("node id file {path}: {source}")]
    NodeIdFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClusterError {
    pub(crate) fn redis(context: &'static str) -> impl FnOnce(redis::RedisError) -> ClusterError {
        move |source| ClusterError::Redis { context, source }
    }

    /// Whether this is a Redis outage (the cluster's shared state is unreachable) rather than
    /// an answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClusterError::Redis { .. } | ClusterError::Timeout(_))
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
