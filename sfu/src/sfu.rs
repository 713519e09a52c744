//! The SFU: its rooms by name, the shared transport all their connections use, the hand-off
//! to the media consumer and the observer of joins and leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cascade::{Cascade, NodeRoomState, PeerLink, RelayHub};
use crate::config::SfuConfig;
use crate::core::ActiveSpeakerDetector;
use crate::delay::ForwardDelay;
use crate::error::Result;
use crate::events::RoomObserver;
use crate::handoff::{HandoffDispatcher, MediaHandoff};
use crate::room::Room;
use crate::stats::{DelayHistogram, TransportCounters};
use crate::sync::lock;
use crate::transport::Transport;

/// The local addresses of the sockets all calls share.
#[derive(Debug, Clone)]
pub struct IceAddrs {
    pub udp: Vec<std::net::SocketAddr>,
    pub tcp: Vec<std::net::SocketAddr>,
}

/// Told the name of a room whose local part changed.
pub(crate) type RoomListener = Box<dyn Fn(&str) + Send + Sync>;

/// The SFU: all rooms of this process.
#[derive(Clone)]
pub struct Sfu {
    pub(crate) inner: Arc<SfuInner>,
}

/// Lock order: `rooms`, then a room's `participants` (see [`Room`]); `transport` is a leaf.
pub(crate) struct SfuInner {
    pub(crate) config: SfuConfig,
    pub(crate) rooms: Mutex<HashMap<String, Arc<Room>>>,
    pub(crate) handoff: Option<Arc<HandoffDispatcher>>,
    pub(crate) counters: Arc<TransportCounters>,
    pub(crate) forward_delay: Arc<DelayHistogram>,
    pub(crate) delay_probe: Arc<ForwardDelay>,
    /// The sockets of all peer connections, bound on first use.
    pub(crate) transport: Mutex<Option<Arc<Transport>>>,
    /// Told of every join and leave.
    pub(crate) observer: std::sync::OnceLock<Arc<dyn RoomObserver>>,
    /// Rooms spread over nodes (cluster mode), once enabled.
    pub(crate) cascade: std::sync::OnceLock<Arc<Cascade>>,
    /// Told when this node's part of a room changed (cascade).
    pub(crate) local_room_listener: std::sync::OnceLock<RoomListener>,
    /// Where WHEP viewers' media comes from (see `whep.rs`).
    pub(crate) whep_source: Mutex<Option<Arc<dyn crate::whep::WhepSource>>>,
    /// The WHEP viewers, by id: an audience, in no room's participants. A leaf lock.
    pub(crate) viewers: Mutex<HashMap<String, Arc<crate::whep::Viewer>>>,
}

impl Drop for SfuInner {
    fn drop(&mut self) {
        if let Some(h) = &self.handoff {
            h.close();
        }
    }
}

impl Sfu {
    /// An SFU with this configuration; `handoff` receives every published track's media.
    pub fn new(config: SfuConfig, handoff: Option<Arc<dyn MediaHandoff>>) -> Self {
        // One lane per core (at most 8): each lane's thread feeds its rooms' programs.
        let lanes = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        let handoff = handoff.map(|h| HandoffDispatcher::start(h, 2048, lanes));
        let forward_delay = Arc::new(DelayHistogram::default());
        let delay_probe = ForwardDelay::new(Arc::clone(&forward_delay), config.forward_delay_sample);
        Self {
            inner: Arc::new(SfuInner {
                config,
                rooms: Mutex::new(HashMap::new()),
                handoff,
                counters: Arc::new(TransportCounters::default()),
                forward_delay,
                delay_probe,
                transport: Mutex::new(None),
                observer: std::sync::OnceLock::new(),
                cascade: std::sync::OnceLock::new(),
                local_room_listener: std::sync::OnceLock::new(),
                whep_source: Mutex::new(None),
                viewers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Tells `observer` of every participant that joins or leaves from now on (set once;
    /// later calls are ignored).
    pub fn set_room_observer(&self, observer: Arc<dyn RoomObserver>) {
        let _ = self.inner.observer.set(observer);
    }

    /// The configuration.
    pub fn config(&self) -> &SfuConfig {
        &self.inner.config
    }

    /// The room with this name, created on first use.
    pub fn room(&self, name: &str) -> Arc<Room> {
        let mut rooms = lock(&self.inner.rooms);
        Arc::clone(rooms.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Room {
                name: name.to_owned(),
                sfu: Arc::downgrade(&self.inner),
                participants: Mutex::new(HashMap::new()),
                speaker: Mutex::new(ActiveSpeakerDetector::default()),
            })
        }))
    }

    /// Existing room, if any.
    pub fn get_room(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.inner.rooms).get(name).cloned()
    }

    /// Names of the rooms with participants.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.inner.rooms).keys().cloned().collect()
    }

    /// What all peer connections' RTCP machinery did: NACKs, retransmissions, keyframe
    /// requests, reports, congestion feedback.
    pub fn transport_counters(&self) -> &TransportCounters {
        &self.inner.counters
    }

    /// Forwarding delay per forwarded copy: arrival → handed to the subscriber's transport.
    pub fn forward_delay(&self) -> &DelayHistogram {
        &self.inner.forward_delay
    }

    /// RTP packets the hand-off dropped because its consumer was behind.
    pub fn handoff_dropped(&self) -> u64 {
        self.inner.handoff.as_ref().map_or(0, |h| h.dropped())
    }

    /// Binds the sockets all calls share (otherwise bound by the first connection); returns
    /// their addresses.
    pub fn bind_transport(&self) -> Result<IceAddrs> {
        let t = self.transport()?;
        Ok(IceAddrs { udp: t.udp_addrs(), tcp: t.tcp_addrs().to_vec() })
    }

    pub(crate) fn transport(&self) -> Result<Arc<Transport>> {
        let mut t = lock(&self.inner.transport);
        Ok(match t.as_ref() {
            Some(t) => Arc::clone(t),
            None => Arc::clone(t.insert(Transport::bind(
                &self.inner.config.ice,
                self.inner.delay_probe.is_on().then(|| Arc::clone(&self.inner.delay_probe)),
            )?)),
        })
    }

    /// Datagrams the transport could not send (full socket buffers or ICE-TCP queues).
    pub fn send_drops(&self) -> u64 {
        lock(&self.inner.transport).as_ref().map_or(0, |t| t.send_drops())
    }

    /// A new participant or track id: random, so ids from several nodes of a cluster never
    /// collide and none can be guessed from another.
    pub(crate) fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}{}", crate::random::token(12))
    }

    /// Spreads rooms over nodes: binds the relay socket at `addr` (port 0: any) and from now
    /// on relays this node's tracks to the other nodes of their rooms that want them (see
    /// `cascade/`). Must run inside the Tokio runtime; once only.
    pub fn enable_cascade(&self, addr: std::net::SocketAddr) -> Result<Arc<RelayHub>> {
        if let Some(c) = self.inner.cascade.get() {
            return Ok(Arc::clone(&c.hub));
        }
        let cascade = Cascade::start(addr)?;
        let hub = Arc::clone(&cascade.hub);
        let _ = self.inner.cascade.set(cascade);
        Ok(hub)
    }

    pub(crate) fn cascade(&self) -> Option<Arc<Cascade>> {
        self.inner.cascade.get().cloned()
    }

    /// Calls `listener` with a room's name whenever this node's part of it changes (a
    /// participant joins or leaves, a track is published, unpublished or muted). Set once.
    pub fn set_local_room_listener(&self, listener: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.inner.local_room_listener.set(Box::new(listener));
    }

    pub(crate) fn local_room_changed(&self, room: &str) {
        if let Some(l) = self.inner.local_room_listener.get() {
            l(room);
        }
    }

    /// Asks every participant of this node that has a signalling connection (WHIP
    /// publishers have none) to join again through the node at `url`; returns how many
    /// were asked.
    pub fn ask_to_reconnect(&self, url: &str) -> usize {
        let rooms: Vec<Arc<Room>> = lock(&self.inner.rooms).values().cloned().collect();
        let mut asked = 0;
        for room in rooms {
            for p in room.participants().into_iter().filter(|p| p.node.is_none() && p.outbox.is_some()) {
                p.send(crate::signal::ServerMessage::Reconnect { url: url.to_owned() });
                asked += 1;
            }
        }
        asked
    }

    /// This node's part of `room` (empty when it has none), for the other nodes.
    pub fn local_room_state(&self, room: &str) -> NodeRoomState {
        match (self.cascade(), self.get_room(room)) {
            (Some(c), Some(r)) => c.local_state(&r),
            _ => NodeRoomState::default(),
        }
    }

    /// Applies another node's part of `room` (an empty one: it has none any more).
    pub fn apply_remote_room_state(&self, room: &str, node: &str, state: NodeRoomState) {
        if let Some(c) = self.cascade() {
            c.apply(self, room, node, state);
        }
    }

    /// `node` was lost (it died, it did not leave): its participants leave `room` here, and
    /// their tracks reach the hand-off as lost ([`crate::MediaHandoff::track_lost`]).
    pub fn remote_node_lost(&self, room: &str, node: &str) {
        if let Some(c) = self.cascade() {
            c.node_lost(self, room, node);
        }
    }

    /// The other nodes with a part in `room`, as last applied.
    pub fn room_nodes(&self, room: &str) -> Vec<String> {
        self.cascade().map(|c| c.nodes_of(room)).unwrap_or_default()
    }

    /// The relay socket and links, once [`Sfu::enable_cascade`] ran.
    pub fn relay_hub(&self) -> Option<Arc<RelayHub>> {
        self.cascade().map(|c| Arc::clone(&c.hub))
    }

    /// The relay links to other nodes.
    pub fn relay_links(&self) -> Vec<Arc<PeerLink>> {
        self.cascade().map(|c| c.hub.peers()).unwrap_or_default()
    }

    pub(crate) fn remove_room_if_empty(&self, name: &str) {
        let mut rooms = lock(&self.inner.rooms);
        if rooms.get(name).is_some_and(|r| lock(&r.participants).is_empty()) {
            rooms.remove(name);
        }
    }
}
