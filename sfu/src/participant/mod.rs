//! A participant: a WebSocket client (publishes and subscribes) or a WHIP publisher, with its
//! publish and subscribe connections. What it does is split by concern: `negotiation.rs`
//! (offers, answers, candidates), `publish.rs` (its own tracks), `subscriptions.rs` (the
//! others' tracks it receives, and its bandwidth).

mod negotiation;
mod publish;
mod subscriptions;

pub(crate) use negotiation::validate_sdp;

use crate::core::SubscribeNegotiation;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::{rtcp, rtp};
use tokio::sync::mpsc;

use crate::config::SfuConfig;
use crate::core::BandwidthEstimator;
use crate::error::{Error, Result};
use crate::events::ParticipantEvent;
use crate::forward::DownTrack;
use crate::handoff::TrackSource;
use crate::peer::{Role, build_sfu_peer};
use crate::room::Room;
use crate::sfu::Sfu;
use crate::signal::{ParticipantInfo, ServerMessage, Target};
use crate::sync::lock;
use crate::track::PublishedTrack;
use crate::transport::{Connection, ConnectionHandler, TrackOpen};

pub(crate) struct Subscription {
    pub(crate) down: Arc<DownTrack>,
    pub(crate) sender: RTCRtpSenderId,
    pub(crate) track: Weak<PublishedTrack>,
}

/// A remote track of the publish connection, by its `msid` track id.
pub(crate) struct Inbound {
    pub(crate) track: Arc<PublishedTrack>,
    /// The RFC 6464 extension's id, for audio.
    pub(crate) level_id: Option<u8>,
}

/// A participant: a WebSocket client or a WHIP publisher.
///
/// Lock order. The async mutexes, which may be held across an `.await`: `sync_lock`, then a
/// connection slot (`publish_pc` or `subscribe_pc`, held only to read or create the
/// connection), then `negotiation`. The std mutexes are leaves: each is held for one statement
/// or block that takes no other lock and never across an `.await`. The only nesting of them is
/// the room's: [`Room`]'s `participants`, then a participant's `tracks`.
pub struct Participant {
    /// Participant id, unique in the process.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The application's identity for this participant, from its token (see
    /// [`crate::TokenValidator::identity`]).
    pub(crate) identity: std::sync::OnceLock<String>,
    /// What its token allows (everything until set at join).
    pub(crate) may_publish: AtomicBool,
    pub(crate) may_subscribe: AtomicBool,
    pub(crate) room: Weak<Room>,
    pub(crate) outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
    pub(crate) publish_pc: tokio::sync::Mutex<Option<Arc<Connection>>>,
    pub(crate) subscribe_pc: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// The publish connection's remote tracks.
    pub(crate) inbound: Mutex<HashMap<String, Inbound>>,
    /// One subscription sync at a time: two at once (a join's initial sync and a new track's)
    /// could both add the same track, and the browser refuses an offer with a track twice.
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
    pub(crate) decls: Mutex<HashMap<String, TrackSource>>,
    pub(crate) publish_sdp: Mutex<String>,
    pub(crate) tracks: Mutex<HashMap<String, Arc<PublishedTrack>>>,
    pub(crate) subs: Mutex<HashMap<String, Subscription>>,
    pub(crate) filter: Mutex<Option<HashSet<String>>>,
    pub(crate) negotiation: tokio::sync::Mutex<SubscribeNegotiation>,
    pub(crate) max_bitrate: AtomicU64,
    /// The REMB estimates of this participant's subscribe connection.
    pub(crate) remb: Mutex<BandwidthEstimator>,
    pub(crate) video_sizes: Mutex<HashMap<String, u32>>,
    pub(crate) subscribes: bool,
    /// Its subscribe connection offered a video section (see `subscribe_to`).
    pub(crate) video_offered: AtomicBool,
    pub(crate) closed: AtomicBool,
    /// Gone without leaving: its node was lost. Its tracks reach the hand-off as lost, not
    /// unpublished (a program keeps its tile as a placeholder for its return).
    pub(crate) lost: AtomicBool,
    /// Latest client statistics (from `stats` messages).
    pub stats: Mutex<Option<serde_json::Value>>,
    /// The node that hosts it, for a participant of another node of the room (its media
    /// arrives over a relay link); `None` for this node's own.
    pub(crate) node: Option<String>,
    /// Made in its node's process, with no connection (the room's program, published with
    /// [`crate::Sfu::publish_local`]): see [`Participant::is_in_process`].
    pub(crate) in_process: bool,
}

pub(crate) struct PeerHandler {
    pub(crate) participant: Weak<Participant>,
    pub(crate) target: Target,
}

impl ConnectionHandler for PeerHandler {
    fn on_state(&self, _conn: &Arc<Connection>, state: RTCPeerConnectionState) {
        tracing::debug!(target = ?self.target, "peer connection {state}");
        if matches!(state, RTCPeerConnectionState::Failed)
            && let Some(p) = self.participant.upgrade()
        {
            tokio::spawn(async move { p.leave().await });
        }
    }

    fn on_track_open(&self, conn: &Arc<Connection>, open: TrackOpen) {
        if self.target == Target::Publish
            && let Some(p) = self.participant.upgrade()
        {
            p.on_track_open(conn, open);
        }
    }

    fn on_track_closed(&self, _conn: &Arc<Connection>, track_id: &str) {
        if self.target == Target::Publish
            && let Some(p) = self.participant.upgrade()
        {
            p.on_track_closed(track_id);
        }
    }

    fn on_rtp(&self, track_id: &str, pkt: rtp::Packet, read_at: Instant) {
        if let Some(p) = self.participant.upgrade() {
            p.on_rtp(track_id, pkt, read_at);
        }
    }

    fn on_rtcp(&self, track_id: &str, pkts: Vec<Box<dyn rtcp::Packet>>) {
        let Some(p) = self.participant.upgrade() else { return };
        match self.target {
            Target::Publish => p.on_publisher_rtcp(track_id, &pkts),
            Target::Subscribe => p.on_subscriber_rtcp(track_id, &pkts),
        }
    }
}

impl Participant {
    /// A participant of `room`: this node's own (`node` None) or another node's.
    pub(crate) fn new(
        id: String,
        name: String,
        identity: Option<String>,
        room: Weak<Room>,
        outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
        node: Option<String>,
    ) -> Self {
        let subscribes = outbox.is_some();
        Participant {
            id,
            name,
            identity: identity.map(std::sync::OnceLock::from).unwrap_or_default(),
            may_publish: AtomicBool::new(true),
            may_subscribe: AtomicBool::new(true),
            room,
            outbox,
            publish_pc: tokio::sync::Mutex::new(None),
            subscribe_pc: tokio::sync::Mutex::new(None),
            inbound: Mutex::new(HashMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
            decls: Mutex::new(HashMap::new()),
            publish_sdp: Mutex::new(String::new()),
            tracks: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            filter: Mutex::new(None),
            negotiation: tokio::sync::Mutex::new(SubscribeNegotiation::default()),
            max_bitrate: AtomicU64::new(0),
            remb: Mutex::new(BandwidthEstimator::default()),
            video_sizes: Mutex::new(HashMap::new()),
            subscribes,
            video_offered: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            stats: Mutex::new(None),
            node,
            in_process: false,
        }
    }

    /// Whether the participant was made in its node's process ([`crate::Sfu::publish_local`]:
    /// the room's program) rather than by a client: it has no connections, takes no
    /// participant's place in the room, is told to no [`crate::RoomObserver`], its tracks
    /// reach no [`crate::MediaHandoff`], and clients receive them only when they subscribe to
    /// it by id.
    pub fn is_in_process(&self) -> bool {
        self.in_process
    }

    /// The node hosting this participant when it is another node's (see [`crate::Sfu`]'s
    /// cascade); `None` for this node's own participants.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    pub(crate) fn event(&self, room: &str) -> ParticipantEvent {
        ParticipantEvent {
            room: room.to_owned(),
            participant_id: self.id.clone(),
            identity: self.identity().map(str::to_owned),
            name: self.name.clone(),
        }
    }

    pub(crate) fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            // Clients find the program by its identity; a client's identity is the
            // application's and stays private (a token claiming `program` shows as nobody).
            identity: self.in_process.then(|| self.identity().map(str::to_owned)).flatten(),
            tracks: lock(&self.tracks).values().map(|t| t.info()).collect(),
        }
    }

    /// Sends a signalling message to this participant's client (dropped for WHIP).
    pub fn send(&self, msg: ServerMessage) {
        if let Some(o) = &self.outbox {
            let _ = o.send(msg);
        }
    }

    /// The application's identity for this participant, when its token carries one.
    pub fn identity(&self) -> Option<&str> {
        self.identity.get().map(String::as_str)
    }

    /// Sets the identity once (at join, from the token); later calls are ignored.
    pub fn set_identity(&self, identity: String) {
        let _ = self.identity.set(identity);
    }

    /// What the participant's token allows (at join).
    pub fn set_grants(&self, grants: crate::http::Grants) {
        self.may_publish.store(grants.publish, Ordering::Relaxed);
        self.may_subscribe.store(grants.subscribe, Ordering::Relaxed);
    }

    /// The room.
    pub fn room(&self) -> Option<Arc<Room>> {
        self.room.upgrade()
    }

    /// Whether the participant has left.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Published tracks.
    pub fn tracks(&self) -> Vec<Arc<PublishedTrack>> {
        lock(&self.tracks).values().cloned().collect()
    }

    /// Down tracks this participant receives, by published track id.
    pub fn down_tracks(&self) -> Vec<(String, Arc<DownTrack>)> {
        lock(&self.subs).iter().map(|(k, s)| (k.clone(), Arc::clone(&s.down))).collect()
    }

    pub(crate) fn config(&self) -> Option<SfuConfig> {
        self.room.upgrade()?.sfu.upgrade().map(|s| s.config.clone())
    }

    pub(crate) async fn peer(self: &Arc<Self>, target: Target) -> Result<Arc<Connection>> {
        let slot = match target {
            Target::Publish => &self.publish_pc,
            Target::Subscribe => &self.subscribe_pc,
        };
        let mut pc = slot.lock().await;
        if let Some(pc) = pc.as_ref() {
            return Ok(Arc::clone(pc));
        }
        let sfu =
            self.room.upgrade().and_then(|r| r.sfu.upgrade()).ok_or_else(|| Error::Conflict("room is gone".into()))?;
        let transport = (Sfu { inner: Arc::clone(&sfu) }).transport()?;
        let role = match target {
            Target::Publish => Role::Both,
            Target::Subscribe => Role::SendOnly,
        };
        let (peer, ufrag) = build_sfu_peer(Arc::clone(&sfu.counters), role)?;
        let handler = Box::new(PeerHandler { participant: Arc::downgrade(self), target });
        let conn = Connection::open(transport, peer, &ufrag, handler)?;
        *pc = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Leaves the room: closes both connections, unpublishes, tells the others.
    pub async fn leave(self: &Arc<Self>) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(room) = self.room.upgrade() else { return };
        lock(&room.participants).remove(&self.id);
        let ids: Vec<String> = lock(&self.tracks).keys().cloned().collect();
        for id in ids {
            self.unpublish(&id).await;
        }
        let subs: Vec<String> = lock(&self.subs).keys().cloned().collect();
        for id in subs {
            self.unsubscribe_from(&id).await;
        }
        for slot in [&self.publish_pc, &self.subscribe_pc] {
            let pc = slot.lock().await.take();
            if let Some(pc) = pc {
                pc.close();
            }
        }
        room.broadcast(&ServerMessage::ParticipantLeft { participant_id: self.id.clone() }, None);
        let speaker_gone = lock(&room.speaker).remove(&self.id);
        if let Some(None) = speaker_gone {
            room.announce_speaker(None);
        }
        tracing::info!(room = %room.name, participant = %self.id, node = ?self.node, "left");
        if let Some(sfu) = room.sfu() {
            // Another node's participant is told of by that node; one made in this process
            // (the program) by nobody (see `Room::admit`).
            if self.node.is_none() {
                if let Some(o) = sfu.inner.observer.get().filter(|_| !self.in_process) {
                    o.participant_left(&self.event(&room.name));
                }
                sfu.local_room_changed(&room.name);
                // The WHEP viewers playing it (the program) end.
                sfu.end_viewers_of(&self.id);
            }
            sfu.remove_room_if_empty(&room.name);
        }
    }
}
