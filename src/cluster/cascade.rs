//! Rooms spread over nodes, the binary's side: each node writes its part of every room it
//! takes part in to Redis ([`tessera_sfu::cascade::NodeRoomState`], refreshed while it lasts),
//! reads the other nodes' parts, links to those nodes (relay address from their heartbeat,
//! keys from Redis) and applies their parts to its SFU. The SFU relays the media itself.
//!
//! A node takes part in a room while it hosts participants of it or runs its program (the
//! home node does, even with no participant of its own), and for a few seconds after a join
//! was accepted here (the participant is not in the SFU yet).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_sfu::cascade::NodeRoomState;
use tessera_sfu::relay::LinkKeys;

use super::ClusterNode;
use crate::locks::lock;
use crate::server::Media;

/// How often the parts are written and read (a join reaches the other nodes within this).
const SYNC_EVERY: Duration = Duration::from_millis(300);
/// A part is written again this often even unchanged (it expires after 10 s).
const REFRESH_EVERY: Duration = Duration::from_secs(3);
/// The relay keys are read again this often (a restarted node renews its own).
const KEYS_EVERY: Duration = Duration::from_secs(2);
/// A room a join was accepted for is followed this long before its participant shows.
const FOLLOW_GRACE: Duration = Duration::from_secs(15);

/// What the sync loop remembers between rounds.
#[derive(Default)]
pub struct CascadeState {
    /// Rooms a join or WHIP was accepted for, and when.
    followed: Mutex<HashMap<String, Instant>>,
    /// Rooms whose part changed since the last round (from the SFU's listener).
    dirty: Mutex<HashSet<String>>,
    wake: tokio::sync::Notify,
    /// Held from reading a room's parts to applying them, by the rounds and by
    /// [`ClusterNode::refresh_room`]: parts are applied in the order they were read, so an
    /// older read never undoes a newer one (which clients would see as a leave and a rejoin).
    applying: tokio::sync::Mutex<()>,
    /// This node's room events (see `room_webhooks.rs`), once started.
    pub(super) room_events: std::sync::OnceLock<Arc<super::room_webhooks::ClusterRoomEvents>>,
}

/// The round's memory of one other node's link.
struct LinkMemo {
    addr: SocketAddr,
    keys_read: Instant,
}

impl ClusterNode {
    /// A join (or WHIP) for `room` was accepted here: its part is followed from now on.
    pub fn follow_room(&self, room: &str) {
        lock(&self.cascade.followed).insert(room.to_owned(), Instant::now());
        self.cascade.wake.notify_one();
    }

    /// Binds the relay socket (the public URL's address, `port` 0: any; advertised as
    /// `--relay-public-addr` when set), renews this node's relay keys and starts the sync loop.
    pub(super) async fn start_cascade(&self, media: &Media, port: u16) -> Result<(), String> {
        let advertised = advertised_ip(self.cluster.public_url());
        let bind = if advertised.is_loopback() {
            advertised
        } else if advertised.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        };
        let hub = media.sfu.enable_cascade(SocketAddr::new(bind, port)).map_err(|e| e.to_string())?;
        let addr = self.relay_public_addr.unwrap_or_else(|| SocketAddr::new(advertised, hub.local_addr().port()));
        self.cluster.set_relay_addr(addr.to_string());
        tracing::info!(relay = %addr, "relay links: listening");
        let peers: Vec<String> = match self.cluster.nodes().await {
            Ok(nodes) => nodes.iter().filter(|n| n.id() != self.node_id()).map(|n| n.id().to_owned()).collect(),
            Err(_) => Vec::new(),
        };
        let _ = self.cluster.renew_relay_keys(&peers, || LinkKeys::random().to_hex()).await;
        let events = Arc::new(self.room_events(media.clone(), media.hub.webhooks().clone()));
        let _ = self.cascade.room_events.set(Arc::clone(&events));
        media.hub.set_room_event_sink(events);
        let state = Arc::clone(&self.cascade);
        media.sfu.set_local_room_listener(move |room| {
            lock(&state.dirty).insert(room.to_owned());
            state.wake.notify_one();
        });
        let node = self.clone();
        let media = media.clone();
        let task = tokio::spawn(async move { node.sync_rooms(media).await });
        lock(&self.tasks).push(task);
        Ok(())
    }

    async fn sync_rooms(&self, media: Media) {
        let mut published: HashMap<String, (String, Instant)> = HashMap::new();
        let mut links: HashMap<String, LinkMemo> = HashMap::new();
        loop {
            let _ = tokio::time::timeout(SYNC_EVERY, self.cascade.wake.notified()).await;
            let Ok(nodes) = self.cluster.nodes().await else { continue };
            let up: HashMap<&str, &tessera_cluster::NodeInfo> =
                nodes.iter().filter(|n| n.is_up() && n.id() != self.node_id()).map(|n| (n.id(), n)).collect();
            for gone in links.keys().filter(|n| !up.contains_key(n.as_str())).cloned().collect::<Vec<_>>() {
                links.remove(&gone);
                if let Some(hub) = media.sfu.relay_hub() {
                    hub.disconnect(&gone);
                }
            }
            // One link per node pair, to every node that is up, whatever the rooms: a home node
            // with no participant of its own still receives (and asks for) the media.
            for info in up.values() {
                self.link(&media, &mut links, info, Instant::now()).await;
            }
            // WHEP viewers of nodes that are gone no longer keep a program published here.
            let up_ids: HashSet<String> = up.keys().map(|n| (*n).to_owned()).collect();
            media.hub.retain_remote_program_viewers(move |node| up_ids.contains(node));
            let dirty: HashSet<String> = std::mem::take(&mut *lock(&self.cascade.dirty));
            let now = Instant::now();
            // The home node of a room follows it even without participants of its own: its
            // program and its description show the whole room.
            let placed = self.cluster.placed_here().await.unwrap_or_default();
            let mut rooms = self.rooms_to_sync(&media, now);
            rooms.extend(placed.into_iter().filter(|r| !rooms.contains(r)).collect::<Vec<_>>());
            for room in rooms {
                let local = media.sfu.local_room_state(&room);
                let json = serde_json::to_string(&local).unwrap_or_default();
                // A program here is a part of the room too (with no participants of its own):
                // the room is not over while it runs (see room_webhooks.rs).
                let takes_part = !local.participants.is_empty() || media.hub.program(&room).is_some();
                let write = match published.get(&room) {
                    _ if !takes_part => None,
                    Some((last, at))
                        if *last == json && now.duration_since(*at) < REFRESH_EVERY && !dirty.contains(&room) =>
                    {
                        None
                    }
                    _ => Some(json.clone()),
                };
                if !takes_part {
                    if published.remove(&room).is_some() {
                        let _ = self.cluster.put_room_part(&room, None).await;
                    }
                } else if let Some(json) = write
                    && self.cluster.put_room_part(&room, Some(&json)).await.is_ok()
                {
                    published.insert(room.clone(), (json, now));
                }
                let _applying = self.cascade.applying.lock().await;
                let Ok(parts) = self.cluster.room_parts(&room).await else { continue };
                let mut seen = HashSet::new();
                for (node, json) in parts {
                    if !up.contains_key(node.as_str()) || !links.contains_key(&node) {
                        continue;
                    }
                    match serde_json::from_str::<NodeRoomState>(&json) {
                        Ok(state) => {
                            media.sfu.apply_remote_room_state(&room, &node, state);
                            seen.insert(node);
                        }
                        Err(err) => tracing::warn!(%room, %node, %err, "unreadable part of a room"),
                    }
                }
                for node in media.sfu.room_nodes(&room).into_iter().filter(|n| !seen.contains(n)) {
                    if up.contains_key(node.as_str()) {
                        tracing::info!(%room, %node, "a node left the room");
                        media.sfu.apply_remote_room_state(&room, &node, NodeRoomState::default());
                    } else {
                        // Its participants did not leave: the program keeps their tiles as
                        // placeholders for a while (see `media::placeholders`).
                        tracing::warn!(%room, %node, "a node of the room was lost");
                        media.sfu.remote_node_lost(&room, &node);
                    }
                    self.room_part_gone(&media, &room);
                }
            }
        }
    }

    /// Reads `room`'s parts from Redis now and applies those of linked nodes, without waiting
    /// for the next round: a description asked for right after a join elsewhere shows it
    /// (read-your-writes as far as the hosting node has written). Nodes that left are still
    /// noticed by the rounds alone.
    pub async fn refresh_room(&self, media: &Media, room: &str) {
        let Some(hub) = media.sfu.relay_hub() else { return };
        let _applying = self.cascade.applying.lock().await;
        let Ok(parts) = self.cluster.room_parts(room).await else { return };
        for (node, json) in parts {
            if node == self.node_id() || hub.peer(&node).is_none() {
                continue;
            }
            match serde_json::from_str::<NodeRoomState>(&json) {
                Ok(state) => media.sfu.apply_remote_room_state(room, &node, state),
                Err(err) => tracing::warn!(%room, %node, %err, "unreadable part of a room"),
            }
        }
    }

    /// The rooms this node takes part in now (see the module docs); rooms it follows no more
    /// are dropped from the followed set.
    fn rooms_to_sync(&self, media: &Media, now: Instant) -> Vec<String> {
        let mut rooms: HashSet<String> = media.sfu.rooms().into_iter().collect();
        rooms.extend(media.hub.rooms());
        let mut followed = lock(&self.cascade.followed);
        followed.retain(|_, since| now.duration_since(*since) < FOLLOW_GRACE);
        rooms.extend(followed.keys().cloned());
        rooms.into_iter().collect()
    }

    /// Links to `info`'s node (reading the keys again every [`KEYS_EVERY`]); whether there is
    /// a link.
    async fn link(
        &self,
        media: &Media,
        links: &mut HashMap<String, LinkMemo>,
        info: &tessera_cluster::NodeInfo,
        now: Instant,
    ) -> bool {
        let Some(addr) = info.record.relay.as_deref().and_then(|a| a.parse::<SocketAddr>().ok()) else {
            return false;
        };
        if links.get(info.id()).is_some_and(|m| m.addr == addr && now.duration_since(m.keys_read) < KEYS_EVERY) {
            return true;
        }
        let fresh = (LinkKeys::random().to_hex(), LinkKeys::random().to_hex());
        let Ok((ours, theirs)) = self.cluster.relay_keys(info.id(), &fresh.0, &fresh.1).await else { return false };
        let (Ok(ours), Ok(theirs)) = (LinkKeys::from_hex(&ours), LinkKeys::from_hex(&theirs)) else {
            tracing::warn!(node = info.id(), "unreadable relay keys in redis");
            return false;
        };
        let Some(hub) = media.sfu.relay_hub() else { return false };
        match hub.connect(info.id(), addr, ours, theirs) {
            Ok(_) => {
                links.insert(info.id().to_owned(), LinkMemo { addr, keys_read: now });
                true
            }
            Err(err) => {
                tracing::warn!(node = info.id(), %err, "cannot set up a relay link");
                false
            }
        }
    }
}

/// The IP other nodes reach this one at: the public URL's host (resolved if a name), else
/// loopback.
fn advertised_ip(public_url: &str) -> IpAddr {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip;
    }
    use std::net::ToSocketAddrs;
    (host, 0).to_socket_addrs().ok().and_then(|mut a| a.next()).map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_is_advertised_at_the_public_urls_address() {
        assert_eq!(advertised_ip("http://10.0.0.5:8080"), IpAddr::from([10, 0, 0, 5]));
        assert_eq!(advertised_ip("https://[::1]:8443/x"), "::1".parse::<IpAddr>().unwrap());
        assert!(advertised_ip("http://localhost:8080").is_loopback());
    }
}
