//! The names of the cluster's Redis keys (see the crate docs for what each holds).

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_owned() }
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    pub fn room(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    pub fn node_rooms(&self, node: &str) -> String {
        format!("{}node-rooms:{node}", self.prefix)
    }

    pub fn room_lock(&self, room: &str) -> String {
        format!("{}lock:room:{room}", self.prefix)
    }

    pub fn records(&self, kind: &str) -> String {
        format!("{}records:{kind}", self.prefix)
    }

    /// The nodes that have a part in a room (a set).
    pub fn room_nodes(&self, room: &str) -> String {
        format!("{}room-nodes:{room}", self.prefix)
    }

    /// One node's part of a room (JSON, expiring unless refreshed).
    pub fn room_part(&self, room: &str, node: &str) -> String {
        format!("{}room-part:{room}:{node}", self.prefix)
    }

    /// Whether a room is live cluster-wide (its `room.started` was sent): the sending node.
    pub fn room_live(&self, room: &str) -> String {
        format!("{}room-live:{room}", self.prefix)
    }

    /// The relay links' keys (a hash: `from>to` → hex).
    pub fn relay_keys(&self) -> String {
        format!("{}relay-keys", self.prefix)
    }

    pub fn secret(&self, name: &str) -> String {
        format!("{}secret:{name}", self.prefix)
    }
}
