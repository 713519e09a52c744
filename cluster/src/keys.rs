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

    pub fn secret(&self, name: &str) -> String {
        format!("{}secret:{name}", self.prefix)
    }
}
