//! One room over several nodes (cascaded SFUs). Each node hosts the participants whose
//! connections reach it; the others' tracks arrive over relay links (`crate::relay`) and are
//! forwarded to this node's subscribers (and its program) like its own. This module keeps
//! which link SSRC is which track's layer on each side, which layers each other node wants,
//! and the participants of other nodes in this node's rooms.
//!
//! What it needs from outside is narrow: the other nodes' relay addresses and keys
//! ([`RelayHub::connect`]) and their part of each room ([`NodeRoomState`], applied with
//! [`crate::Sfu::apply_remote_room_state`]); it tells when this node's part changed
//! ([`crate::Sfu::set_local_room_listener`]). The binary carries both through Redis.
//!
//! - `origin.rs`: this node's tracks as sent to other nodes (taps on their forwarders).
//! - `remote.rs`: other nodes' participants and tracks here.
//! - `hub.rs`: the relay socket, the links and their timer.
//! - `state.rs`: what nodes tell each other.
//!
//! Lock order: `origins`, `remotes`, `applied` are leaves (each held for one block, never
//! two at once); a link's mutex (in `PeerLink::with`) is taken under none of them.

mod hub;
mod origin;
mod remote;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

pub use hub::{PeerLink, RelayHub};
pub use state::{NodeRoomState, RemoteParticipant, RemoteTrack};

use crate::relay::LinkEvent;
use crate::sync::{lock, read};
use origin::OriginTap;
use remote::RemoteEntry;
use state::{Control, MAX_ITEMS};

/// How long a want lasts unless repeated.
pub(crate) const WANT_TTL: Duration = Duration::from_millis(1500);
/// How often wants are repeated.
const WANT_EVERY: Duration = Duration::from_millis(250);
/// How often the origin reports its tracks' layers.
const LAYERS_EVERY: Duration = Duration::from_millis(500);

/// Where another node's track is received: keyframe requests for it go there.
pub(crate) struct RelaySource {
    hub: Weak<RelayHub>,
    node: String,
}

impl RelaySource {
    /// Asks the origin node for a keyframe of the layer on link SSRC `ssrc`.
    pub(crate) fn request_keyframe(&self, ssrc: u32) {
        if let Some(peer) = self.hub.upgrade().and_then(|h| h.peer(&self.node)) {
            let _ = peer.with(|l| l.request_keyframe(ssrc));
        }
    }
}

/// The cascade of one SFU.
pub(crate) struct Cascade {
    pub(crate) hub: Arc<RelayHub>,
    /// This node's relayed tracks by the link SSRC of each of their layers.
    origins: RwLock<HashMap<u32, (Arc<OriginTap>, usize)>>,
    /// Other nodes' tracks by (node, link SSRC).
    remotes: RwLock<HashMap<(String, u32), RemoteEntry>>,
    /// Each room's other nodes' parts as last applied.
    applied: Mutex<HashMap<String, HashMap<String, NodeRoomState>>>,
    /// When wants and layer reports were last sent.
    paced: Mutex<(Option<Instant>, Option<Instant>)>,
    /// The origins' layer activity changes as of the last layer report: a layer that stops
    /// or starts is reported at the next tick, not up to [`LAYERS_EVERY`] later (the other
    /// nodes' subscribers on a stopped layer get nothing until they hear).
    reported_activity: AtomicU64,
}

impl Cascade {
    /// Binds the relay socket at `addr` and starts the links' tasks (they hold the cascade
    /// weakly: they end when its SFU is gone).
    pub(crate) fn start(addr: std::net::SocketAddr) -> crate::Result<Arc<Self>> {
        let hub = RelayHub::bind(addr)?;
        let cascade = Arc::new(Self::new(hub));
        let handler: Weak<dyn hub::LinkHandler> = Arc::downgrade(&cascade) as Weak<Self>;
        cascade.hub.start(handler)?;
        Ok(cascade)
    }

    fn new(hub: Arc<RelayHub>) -> Self {
        Self {
            hub,
            origins: RwLock::new(HashMap::new()),
            remotes: RwLock::new(HashMap::new()),
            applied: Mutex::new(HashMap::new()),
            paced: Mutex::new((None, None)),
            reported_activity: AtomicU64::new(0),
        }
    }

    /// The nodes that have a part in `room` (besides this one).
    pub(crate) fn nodes_of(&self, room: &str) -> Vec<String> {
        lock(&self.applied)
            .get(room)
            .map(|nodes| nodes.iter().filter(|(_, s)| !s.participants.is_empty()).map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// Sends the wants of this node (the layers of other nodes' tracks that someone here
    /// takes) to each node, in messages of at most [`MAX_ITEMS`].
    fn send_wants(&self) {
        let mut per_node: HashMap<String, Vec<u32>> = HashMap::new();
        for ((node, ssrc), entry) in read(&self.remotes).iter() {
            let Some(track) = entry.track.upgrade() else { continue };
            if track.forwarder.wanted_layers().contains(&entry.layer) {
                per_node.entry(node.clone()).or_default().push(*ssrc);
            }
        }
        for (node, ssrcs) in per_node {
            let Some(peer) = self.hub.peer(&node) else { continue };
            for chunk in ssrcs.chunks(MAX_ITEMS) {
                send_control(&peer, &Control::Want { ssrcs: chunk.to_vec() });
            }
        }
    }

    /// Reports this node's relayed video tracks' layers to the nodes of their rooms and to
    /// any node that receives them (a room's home node may have no participant of its own).
    /// Whether a layer of an origin track stopped or started since the last layer report.
    fn activity_changed(&self) -> bool {
        let changes: u64 = read(&self.origins).values().map(|(t, _)| t.activity_changes()).sum();
        self.reported_activity.swap(changes, Ordering::Relaxed) != changes
    }

    fn send_layers(&self) {
        let mut per_node: HashMap<String, Vec<state::LayerReport>> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut room_nodes: HashMap<String, Vec<String>> = HashMap::new();
        let taps: Vec<Arc<OriginTap>> = read(&self.origins).values().map(|(t, _)| Arc::clone(t)).collect();
        for tap in taps {
            if !seen.insert(Arc::as_ptr(&tap)) {
                continue;
            }
            let Some(report) = tap.layer_report() else { continue };
            let nodes = room_nodes.entry(tap.room.clone()).or_insert_with(|| self.nodes_of(&tap.room));
            let mut to: Vec<String> = nodes.clone();
            for n in tap.wanting_nodes() {
                if !to.contains(&n) {
                    to.push(n);
                }
            }
            for n in to {
                per_node.entry(n).or_default().push(report.clone());
            }
        }
        for (node, tracks) in per_node {
            let Some(peer) = self.hub.peer(&node) else { continue };
            for chunk in tracks.chunks(MAX_ITEMS / 4) {
                send_control(&peer, &Control::Layers { tracks: chunk.to_vec() });
            }
        }
    }

    fn on_control(&self, from: &Arc<PeerLink>, message: &[u8], now: Instant) {
        let Ok(control) = serde_json::from_slice::<Control>(message) else {
            tracing::debug!(peer = %from.node, "relay: unreadable control message");
            return;
        };
        match control {
            Control::Want { ssrcs } => {
                let origins = read(&self.origins);
                for ssrc in ssrcs {
                    if let Some((tap, layer)) = origins.get(&ssrc) {
                        tap.want(from, *layer, now + WANT_TTL);
                    }
                }
            }
            Control::Layers { tracks } => {
                let remotes = read(&self.remotes);
                for (ssrc, layers) in tracks {
                    if let Some(track) = remotes.get(&(from.node.clone(), ssrc)).and_then(|e| e.track.upgrade()) {
                        let layers = layers
                            .into_iter()
                            .map(|(bitrate_bps, height)| crate::core::LayerInfo { bitrate_bps, height })
                            .collect();
                        track.forwarder.set_reported_layers(layers);
                    }
                }
            }
        }
    }
}

fn send_control(peer: &Arc<PeerLink>, control: &Control) {
    if let Ok(bytes) = serde_json::to_vec(control) {
        let _ = peer.with(|l| l.send_control(&bytes));
    }
}

impl hub::LinkHandler for Cascade {
    fn on_event(&self, from: &Arc<PeerLink>, event: LinkEvent, now: Instant) {
        match event {
            LinkEvent::Rtp(pkt) => self.on_remote_rtp(&from.node, pkt, now),
            LinkEvent::KeyframeRequest(ssrc) => {
                if let Some((tap, layer)) = read(&self.origins).get(&ssrc) {
                    tap.request_keyframe(*layer);
                }
            }
            LinkEvent::SenderReport(sr) => self.on_remote_sender_report(&from.node, &sr),
            LinkEvent::Control(m) => self.on_control(from, &m, now),
        }
    }

    fn on_tick(&self, now: Instant) {
        let activity = self.activity_changed();
        let (wants_due, layers_due) = {
            let mut paced = lock(&self.paced);
            let wants = paced.0.is_none_or(|t| now.saturating_duration_since(t) >= WANT_EVERY);
            let layers = paced.1.is_none_or(|t| now.saturating_duration_since(t) >= LAYERS_EVERY) || activity;
            if wants {
                paced.0 = Some(now);
            }
            if layers {
                paced.1 = Some(now);
            }
            (wants, layers)
        };
        if wants_due {
            self.send_wants();
            let taps: Vec<Arc<OriginTap>> = read(&self.origins).values().map(|(t, _)| Arc::clone(t)).collect();
            for tap in taps {
                tap.expire(now);
            }
        }
        if layers_due {
            self.send_layers();
        }
    }
}
