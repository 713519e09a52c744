//! Rooms, participants, publish and subscribe around `rtc` 0.21 peer connections on the
//! shared transport (`transport/`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::shared::marshal::Marshal;
use rtc::{rtcp, rtp};
use tokio::sync::mpsc;

use crate::config::SfuConfig;
use crate::core::{ActiveSpeakerDetector, BandwidthEstimator, KeyframeRequestLimiter, parse_audio_level};
use crate::error::{Error, Result};
use crate::forward::{DownTrack, Output, PT_UNKNOWN, TrackForwarder};
use crate::delay::ForwardDelay;
use crate::handoff::{
    HandoffDispatcher, HandoffEvent, KeyframeRequester, MediaGate, MediaHandoff, SenderReportInfo, TrackInfo, TrackSource,
};
use crate::peer::{AUDIO_LEVEL_URI, Role, advertise_public_ips, build_core, extmap_id, simulcast_rids};
use crate::signal::{Candidate, ParticipantInfo, ServerMessage, Target, TrackDecl, TrackPublished};
use crate::events::{ParticipantEvent, RoomObserver};
use crate::stats::{DelayHistogram, TransportCounters};
use crate::transport::{Connection, ConnectionHandler, TrackOpen, Transport};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random u32 (SSRCs) from the OS's random source.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    crate::random::fill(&mut b);
    u32::from_ne_bytes(b)
}

/// The local addresses of the sockets all calls share.
#[derive(Debug, Clone)]
pub struct IceAddrs {
    pub udp: Vec<std::net::SocketAddr>,
    pub tcp: Vec<std::net::SocketAddr>,
}

/// The SFU: all rooms of this process.
#[derive(Clone)]
pub struct Sfu {
    pub(crate) inner: Arc<SfuInner>,
}

pub(crate) struct SfuInner {
    pub(crate) config: SfuConfig,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    handoff: Option<Arc<HandoffDispatcher>>,
    counters: Arc<TransportCounters>,
    forward_delay: Arc<DelayHistogram>,
    delay_probe: Arc<ForwardDelay>,
    /// The sockets of all peer connections, bound on first use.
    transport: Mutex<Option<Arc<Transport>>>,
    /// Told of every join and leave.
    observer: std::sync::OnceLock<Arc<dyn RoomObserver>>,
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
        let handoff = handoff.map(|h| HandoffDispatcher::start(h, 2048));
        let forward_delay = Arc::new(DelayHistogram::default());
        let delay_probe = ForwardDelay::new(Arc::clone(&forward_delay));
        Self { inner: Arc::new(SfuInner { config, rooms: Mutex::new(HashMap::new()),
                handoff,
                counters: Arc::new(TransportCounters::default()),
                forward_delay,
                delay_probe,
                transport: Mutex::new(None),
                observer: std::sync::OnceLock::new(),
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

    fn transport(&self) -> Result<Arc<Transport>> {
        let mut t = lock(&self.inner.transport);
        Ok(match t.as_ref() {
            Some(t) => Arc::clone(t),
            None => Arc::clone(t.insert(Transport::bind(&self.inner.config.ice, Some(Arc::clone(&self.inner.delay_probe)))?)),
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

    fn remove_room_if_empty(&self, name: &str) {
        let mut rooms = lock(&self.inner.rooms);
        if rooms.get(name).is_some_and(|r| lock(&r.participants).is_empty()) {
            rooms.remove(name);
        }
    }
}

/// A room: participants who publish to and subscribe from each other.
pub struct Room {
    name: String,
    sfu: Weak<SfuInner>,
    participants: Mutex<HashMap<String, Arc<Participant>>>,
    speaker: Mutex<ActiveSpeakerDetector>,
}

/// A published track.
pub struct PublishedTrack {
    /// Server track id.
    pub id: String,
    /// Owner.
    pub participant_id: String,
    /// What it is.
    pub source: TrackSource,
    /// Codec as negotiated with the publisher.
    pub codec: RTCRtpCodec,
    /// Publisher's payload type.
    pub payload_type: u8,
    /// The forwarding state.
    pub forwarder: TrackForwarder,
    pub(crate) muted: AtomicBool,
    /// Where its layers are received (keyframe requests go there).
    receivers: Mutex<Vec<(Weak<Connection>, RTCRtpReceiverId)>>,
    keyframe_tx: mpsc::UnboundedSender<usize>,
    handoff_info: Mutex<Option<TrackInfo>>,
}

impl PublishedTrack {
    fn info(&self) -> TrackPublished {
        TrackPublished {
            track_id: self.id.clone(),
            participant_id: self.participant_id.clone(),
            source: self.source,
            mime_type: self.codec.mime_type.clone(),
            layers: self.forwarder.layer_count(),
            muted: self.muted.load(Ordering::Relaxed),
            stream_id: self.id.clone(),
        }
    }

    /// Whether the publisher has muted it.
    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Asks the publisher for a keyframe of `layer` (rate limited).
    pub fn request_keyframe(&self, layer: usize) {
        let _ = self.keyframe_tx.send(layer);
    }
}

struct Subscription {
    down: Arc<DownTrack>,
    sender: RTCRtpSenderId,
    track: Weak<PublishedTrack>,
}

/// A remote track of the publish connection, by its `msid` track id.
struct Inbound {
    track: Arc<PublishedTrack>,
    /// The RFC 6464 extension's id, for audio.
    level_id: Option<u8>,
}

#[derive(Default)]
struct Negotiation {
    offer_outstanding: bool,
    dirty: bool,
}

/// A participant: a WebSocket client or a WHIP publisher.
pub struct Participant {
    /// Participant id, unique in the process.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The application's identity for this participant, from its token (see
    /// [`crate::TokenValidator::identity`]).
    identity: std::sync::OnceLock<String>,
    /// What its token allows (everything until set at join).
    may_publish: AtomicBool,
    may_subscribe: AtomicBool,
    room: Weak<Room>,
    outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
    publish_pc: tokio::sync::Mutex<Option<Arc<Connection>>>,
    subscribe_pc: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// The publish connection's remote tracks.
    inbound: Mutex<HashMap<String, Inbound>>,
    /// One subscription sync at a time: two at once (a join's initial sync and a new track's)
    /// could both add the same track, and the browser refuses an offer with a track twice.
    sync_lock: tokio::sync::Mutex<()>,
    decls: Mutex<HashMap<String, TrackSource>>,
    publish_sdp: Mutex<String>,
    tracks: Mutex<HashMap<String, Arc<PublishedTrack>>>,
    subs: Mutex<HashMap<String, Subscription>>,
    filter: Mutex<Option<HashSet<String>>>,
    negotiation: tokio::sync::Mutex<Negotiation>,
    max_bitrate: AtomicU64,
    /// The REMB estimates of this participant's subscribe connection.
    remb: Mutex<BandwidthEstimator>,
    video_sizes: Mutex<HashMap<String, u32>>,
    subscribes: bool,
    closed: AtomicBool,
    /// Latest client statistics (from `stats` messages).
    pub stats: Mutex<Option<serde_json::Value>>,
}

struct PeerHandler {
    participant: Weak<Participant>,
    target: Target,
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

impl Room {
    /// Room name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Participants now.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        lock(&self.participants).values().cloned().collect()
    }

    /// The active speaker now.
    pub fn active_speaker(&self) -> Option<String> {
        lock(&self.speaker).current().map(str::to_owned)
    }

    fn sfu(&self) -> Option<Sfu> {
        self.sfu.upgrade().map(|inner| Sfu { inner })
    }

    fn broadcast(&self, msg: &ServerMessage, except: Option<&str>) {
        for p in lock(&self.participants).values() {
            if Some(p.id.as_str()) != except {
                p.send(msg.clone());
            }
        }
    }

    fn all_tracks(&self) -> Vec<Arc<PublishedTrack>> {
        lock(&self.participants).values().flat_map(|p| lock(&p.tracks).values().cloned().collect::<Vec<_>>()).collect()
    }

    /// Adds a participant. `outbox` receives server messages (None for WHIP publishers, who
    /// do not subscribe).
    pub fn join(
        self: &Arc<Self>,
        name: String,
        outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Arc<Participant>> {
        self.join_as(name, None, outbox)
    }

    /// Adds a participant known to the application by `identity` (its token's).
    pub fn join_as(
        self: &Arc<Self>,
        name: String,
        identity: Option<String>,
        outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Arc<Participant>> {
        let sfu = self.sfu().ok_or_else(|| Error::Internal("sfu is gone".into()))?;
        let subscribes = outbox.is_some();
        let p = Arc::new(Participant {
            id: sfu.next_id("PA_"),
            name,
            identity: identity.map(std::sync::OnceLock::from).unwrap_or_default(),
            may_publish: AtomicBool::new(true),
            may_subscribe: AtomicBool::new(true),
            room: Arc::downgrade(self),
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
            negotiation: tokio::sync::Mutex::new(Negotiation::default()),
            max_bitrate: AtomicU64::new(0),
            remb: Mutex::new(BandwidthEstimator::default()),
            video_sizes: Mutex::new(HashMap::new()),
            subscribes,
            closed: AtomicBool::new(false),
            stats: Mutex::new(None),
        });
        let others: Vec<ParticipantInfo> = {
            let mut ps = lock(&self.participants);
            if ps.len() >= sfu.inner.config.max_participants {
                return Err(Error::Conflict("room is full".into()));
            }
            let others = ps.values().map(|o| o.info()).collect();
            ps.insert(p.id.clone(), Arc::clone(&p));
            others
        };
        p.send(ServerMessage::Joined {
            participant_id: p.id.clone(),
            room: self.name.clone(),
            participants: others,
            active_speaker: self.active_speaker(),
            // Per-participant credentials: the signalling fills them in (it knows the token).
            ice_servers: Vec::new(),
        });
        self.broadcast(&ServerMessage::ParticipantJoined { participant: p.info() }, Some(&p.id));
        tracing::info!(room = %self.name, participant = %p.id, "joined");
        if let Some(o) = sfu.inner.observer.get() {
            o.participant_joined(&p.event(&self.name));
        }
        Ok(p)
    }

    fn on_audio_level(self: &Arc<Self>, participant: &str, level: u8, now: Instant) {
        let change = {
            let mut s = lock(&self.speaker);
            s.on_level(participant, level, now);
            s.tick(now)
        };
        if let Some(who) = change {
            self.announce_speaker(Some(who));
        }
    }

    fn announce_speaker(&self, who: Option<String>) {
        self.broadcast(&ServerMessage::ActiveSpeaker { participant_id: who.clone() }, None);
        if let Some(h) = self.sfu.upgrade().and_then(|s| s.handoff.clone()) {
            h.push(HandoffEvent::Speaker(self.name.clone(), who));
        }
    }
}

impl Participant {
    fn event(&self, room: &str) -> ParticipantEvent {
        ParticipantEvent {
            room: room.to_owned(),
            participant_id: self.id.clone(),
            identity: self.identity().map(str::to_owned),
            name: self.name.clone(),
        }
    }

    fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            name: self.name.clone(),
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

    fn config(&self) -> Option<SfuConfig> {
        self.room.upgrade()?.sfu.upgrade().map(|s| s.config.clone())
    }

    async fn peer(self: &Arc<Self>, target: Target) -> Result<Arc<Connection>> {
        let slot = match target {
            Target::Publish => &self.publish_pc,
            Target::Subscribe => &self.subscribe_pc,
        };
        let mut pc = slot.lock().await;
        if let Some(pc) = pc.as_ref() {
            return Ok(Arc::clone(pc));
        }
        let sfu = self.room.upgrade().and_then(|r| r.sfu.upgrade()).ok_or_else(|| Error::Conflict("room is gone".into()))?;
        let transport = (Sfu { inner: Arc::clone(&sfu) }).transport()?;
        let role = match target {
            Target::Publish => Role::Both,
            Target::Subscribe => Role::SendOnly,
        };
        let (core, ufrag) = build_core(Arc::clone(&sfu.counters), role)?;
        let handler = Box::new(PeerHandler { participant: Arc::downgrade(self), target });
        let conn = Connection::open(transport, core, &ufrag, handler)?;
        *pc = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Our SDP as the client should see it (public addresses in the candidates).
    fn advertised(&self, sdp: &str) -> String {
        match self.config() {
            Some(cfg) => advertise_public_ips(sdp, &cfg),
            None => sdp.to_owned(),
        }
    }

    /// Handles a publish offer: returns the answer SDP (with all server candidates).
    pub async fn publish_offer(self: &Arc<Self>, sdp: String, decls: Vec<TrackDecl>) -> Result<String> {
        if self.is_closed() {
            return Err(Error::Conflict("participant has left".into()));
        }
        if !self.may_publish.load(Ordering::Relaxed) {
            return Err(Error::Forbidden("this participant's token does not allow publishing".into()));
        }
        validate_sdp(&sdp)?;
        {
            let mut d = lock(&self.decls);
            for t in decls {
                d.insert(t.track_id, t.source);
            }
        }
        *lock(&self.publish_sdp) = sdp.clone();
        let pc = self.peer(Target::Publish).await?;
        let answer = pc.answer(sdp)?;
        Ok(self.advertised(&answer))
    }

    /// Adds a trickled remote candidate.
    pub async fn add_candidate(self: &Arc<Self>, target: Target, c: Candidate) -> Result<()> {
        let pc = match target {
            Target::Publish => self.publish_pc.lock().await.clone(),
            Target::Subscribe => self.subscribe_pc.lock().await.clone(),
        };
        let pc = pc.ok_or_else(|| Error::BadRequest("candidate before offer/answer".into()))?;
        if c.candidate.is_empty() {
            return Ok(());
        }
        pc.add_remote_candidate(RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: None,
            url: None,
        })
    }

    /// Applies the client's answer to our subscribe offer.
    pub async fn subscribe_answer(self: &Arc<Self>, sdp: String) -> Result<()> {
        validate_sdp(&sdp)?;
        let pc = self.subscribe_pc.lock().await.clone().ok_or_else(|| Error::BadRequest("no subscribe offer".into()))?;
        let mut neg = self.negotiation.lock().await;
        if !neg.offer_outstanding {
            return Err(Error::BadRequest("no subscribe offer outstanding".into()));
        }
        let applied = pc.accept_answer(sdp);
        neg.offer_outstanding = false;
        let dirty = std::mem::take(&mut neg.dirty);
        drop(neg);
        applied?;
        self.resolve_payload_types(&pc);
        if dirty {
            self.renegotiate().await?;
        }
        Ok(())
    }

    fn resolve_payload_types(&self, pc: &Connection) {
        type Entry = (Arc<DownTrack>, RTCRtpSenderId, Option<Arc<PublishedTrack>>);
        let subs: Vec<Entry> =
            lock(&self.subs).values().map(|s| (Arc::clone(&s.down), s.sender, s.track.upgrade())).collect();
        for (down, sender, track) in subs {
            let Some(track) = track else { continue };
            let codecs = pc.sender_codecs(sender);
            let codecs = &codecs;
            let same_mime = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
                c.rtp_codec.mime_type.eq_ignore_ascii_case(&track.codec.mime_type)
            };
            let pt = codecs
                .iter()
                .filter(same_mime)
                .find(|c| c.rtp_codec.sdp_fmtp_line == track.codec.sdp_fmtp_line)
                .or_else(|| codecs.iter().find(same_mime))
                .map(|c| c.payload_type);
            if let Some(pt) = pt {
                down.payload_type.store(pt, Ordering::Relaxed);
            }
        }
    }

    /// Creates and sends a new subscribe offer (or marks one as due when an offer is out).
    async fn renegotiate(self: &Arc<Self>) -> Result<()> {
        if !self.subscribes || self.is_closed() {
            return Ok(());
        }
        let pc = self.peer(Target::Subscribe).await?;
        let mut neg = self.negotiation.lock().await;
        if neg.offer_outstanding {
            neg.dirty = true;
            return Ok(());
        }
        let offer = pc.offer()?;
        neg.offer_outstanding = true;
        drop(neg);
        self.send(ServerMessage::SubscribeOffer { sdp: self.advertised(&offer) });
        Ok(())
    }

    fn wants(&self, publisher: &str) -> bool {
        self.subscribes && publisher != self.id && lock(&self.filter).as_ref().is_none_or(|f| f.contains(publisher))
    }

    /// Subscribes to `track` (adds a sender to the subscribe connection). Returns whether
    /// renegotiation is due.
    async fn subscribe_to(self: &Arc<Self>, track: &Arc<PublishedTrack>) -> Result<bool> {
        if !self.wants(&track.participant_id) || lock(&self.subs).contains_key(&track.id) {
            return Ok(false);
        }
        let pc = self.peer(Target::Subscribe).await?;
        let ssrc = random_u32();
        let kind = if track.forwarder_is_video() { RtpCodecKind::Video } else { RtpCodecKind::Audio };
        let local = MediaStreamTrack::new(
            track.id.clone(),
            track.id.clone(),
            format!("{}-{}", track.participant_id, track.id),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    // Video retransmissions go on their own SSRC (RFC 4588 RTX) when the
                    // subscriber accepts RTX; otherwise they are resent as they were.
                    rtx: (kind == RtpCodecKind::Video).then(|| RTCRtpRtxParameters { ssrc: random_u32() }),
                    ..Default::default()
                },
                codec: track.codec.clone(),
                ..Default::default()
            }],
        );
        let sender = pc.add_track(local)?;
        let arrivals = self.room.upgrade().and_then(|r| r.sfu.upgrade()).map(|s| s.delay_probe.log(ssrc));
        let conn = Arc::clone(&pc);
        let output = Output::Callback(Box::new(move |p, arrived| {
            if let Some(log) = &arrivals {
                log.arrived(p.header.sequence_number, arrived);
            }
            conn.write_rtp(sender, p)
        }));
        let down = Arc::new(DownTrack::new(self.id.clone(), ssrc, PT_UNKNOWN, track.codec.clock_rate, output));
        if let Some(h) = lock(&self.video_sizes).get(&track.id) {
            down.set_max_height(*h);
        }
        lock(&self.subs)
            .insert(track.id.clone(), Subscription { down: Arc::clone(&down), sender, track: Arc::downgrade(track) });
        self.apply_bandwidth(Instant::now());
        track.forwarder.add_down(Arc::clone(&down));
        track.request_keyframe(0);
        Ok(true)
    }

    async fn unsubscribe_from(self: &Arc<Self>, track_id: &str) -> bool {
        let sub = lock(&self.subs).remove(track_id);
        let Some(sub) = sub else { return false };
        if let Some(t) = sub.track.upgrade() {
            t.forwarder.remove_down(&self.id);
        }
        let pc = self.subscribe_pc.lock().await.clone();
        if let Some(pc) = pc {
            pc.remove_track(sub.sender);
        }
        true
    }

    /// Subscribes to every wanted track in the room, then renegotiates once.
    pub async fn sync_subscriptions(self: &Arc<Self>) -> Result<()> {
        let Some(room) = self.room.upgrade() else { return Ok(()) };
        // A token without the subscribe grant receives nothing (no subscribe offers).
        if !self.may_subscribe.load(Ordering::Relaxed) {
            return Ok(());
        }
        let _one_at_a_time = self.sync_lock.lock().await;
        let mut changed = false;
        let tracks = room.all_tracks();
        let live: HashSet<String> = tracks.iter().map(|t| t.id.clone()).collect();
        for t in &tracks {
            if self.wants(&t.participant_id) {
                // One track this connection cannot take (e.g. a codec it did not negotiate)
                // must not keep the others from this subscriber.
                match self.subscribe_to(t).await {
                    Ok(c) => changed |= c,
                    Err(e) => tracing::warn!(participant = %self.id, track = %t.id, mime = %t.codec.mime_type, "cannot forward this track: {e}"),
                }
            }
        }
        let stale: Vec<String> = lock(&self.subs)
            .iter()
            .filter(|(id, s)| !live.contains(*id) || s.track.upgrade().is_none_or(|t| !self.wants(&t.participant_id)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            changed |= self.unsubscribe_from(&id).await;
        }
        if changed {
            self.renegotiate().await?;
        }
        Ok(())
    }

    /// Chooses whose tracks to receive (`None`: everyone).
    pub async fn set_subscriptions(self: &Arc<Self>, participants: Option<Vec<String>>) -> Result<()> {
        if !self.may_subscribe.load(Ordering::Relaxed) {
            return Err(Error::Forbidden("this participant's token does not allow subscribing".into()));
        }
        *lock(&self.filter) = participants.map(|v| v.into_iter().collect());
        self.sync_subscriptions().await
    }

    /// Caps this participant's receive bitrate (0: no cap), shared among its video tracks.
    pub fn set_max_bitrate(&self, bps: u64) {
        self.max_bitrate.store(bps, Ordering::Relaxed);
        self.apply_bandwidth(Instant::now());
    }

    /// A receiver report arrived on this participant's subscribe connection: loss is what
    /// tells a slow link from a busy receiver (see [`BandwidthEstimator`]). Audio and video
    /// share the connection's path, and Chromium reports each stream on its own schedule
    /// (its audio far more regularly under loss), so any of its streams counts.
    fn on_receiver_report(&self, rr: &ReceiverReport, now: Instant) {
        let lost = {
            let subs = lock(&self.subs);
            rr.reports.iter().filter(|b| subs.values().any(|s| s.down.ssrc == b.ssrc)).map(|b| b.fraction_lost).max()
        };
        if let Some(lost) = lost {
            lock(&self.remb).on_loss(lost, now);
        }
    }

    /// A REMB estimate (bit/s) arrived on this participant's subscribe connection.
    fn on_remb(&self, bitrate: f32, now: Instant) {
        let bps = if bitrate.is_finite() && bitrate > 0.0 { bitrate.min(u64::MAX as f32) as u64 } else { 0 };
        // What the SFU sent this subscriber (RTP headers counted as 12 bytes, SRTP and RTCP
        // not at all: close enough to tell congestion from an estimate that fits).
        let sent: u64 = lock(&self.subs).values().map(|s| s.down.forwarded_bytes() + 12 * s.down.forwarded()).sum();
        lock(&self.remb).on_remb(bps, sent, now);
        self.apply_bandwidth(now);
    }

    /// The receive bandwidth its layers are chosen from (bit/s, 0: no limit): the smaller of
    /// the cap the client set and the limit its REMB estimates set (see
    /// [`BandwidthEstimator`]: only congestion limits, and the top layer is probed again).
    pub fn effective_bandwidth(&self, now: Instant) -> u64 {
        lock(&self.remb).effective(self.max_bitrate.load(Ordering::Relaxed), now)
    }

    /// Shares [`Self::effective_bandwidth`] among the video tracks this participant receives.
    fn apply_bandwidth(&self, now: Instant) {
        let bps = self.effective_bandwidth(now);
        let subs = lock(&self.subs);
        let videos: Vec<&Subscription> =
            subs.values().filter(|s| s.track.upgrade().is_some_and(|t| t.forwarder_is_video())).collect();
        let audio_reserve = 64_000u64;
        let share = if bps == 0 || videos.is_empty() {
            bps
        } else {
            bps.saturating_sub(audio_reserve).max(1) / videos.len() as u64
        };
        for s in videos {
            s.down.set_bandwidth(share);
        }
    }

    /// Sets the preferred maximum height of one subscribed video track.
    pub fn set_video_size(&self, track_id: &str, max_height: Option<u32>) {
        let h = max_height.unwrap_or(0);
        lock(&self.video_sizes).insert(track_id.to_owned(), h);
        if let Some(s) = lock(&self.subs).get(track_id) {
            s.down.set_max_height(h);
        }
    }

    /// Mutes or unmutes one of my tracks and tells the room.
    pub fn set_muted(&self, track_id: &str, muted: bool) -> Result<()> {
        let t = lock(&self.tracks).get(track_id).cloned().ok_or_else(|| Error::NotFound(format!("track {track_id}")))?;
        t.muted.store(muted, Ordering::Relaxed);
        if let Some(room) = self.room.upgrade() {
            room.broadcast(
                &ServerMessage::Mute { track_id: track_id.to_owned(), participant_id: self.id.clone(), muted },
                Some(&self.id),
            );
        }
        Ok(())
    }

    /// A remote track's first packet arrived (or a new simulcast layer's): publishes it.
    fn on_track_open(self: &Arc<Self>, conn: &Arc<Connection>, open: TrackOpen) {
        let Some(room) = self.room.upgrade() else { return };
        let receiver = (Arc::downgrade(conn), open.receiver_id);
        let known = lock(&self.inbound).get(&open.track_id).map(|i| Arc::clone(&i.track));
        if let Some(track) = known {
            let layer = track.forwarder.layer_of_rid(open.rid.as_deref());
            track.forwarder.set_layer_ssrc(open.ssrc, layer);
            let mut r = lock(&track.receivers);
            if !r.iter().any(|(_, id)| *id == open.receiver_id) {
                r.push(receiver);
            }
            return;
        }
        let Some(codec) = open.codec.clone() else {
            tracing::warn!(participant = %self.id, track = %open.track_id, "track without codec");
            return;
        };
        let Some(sfu) = room.sfu() else { return };
        let source = lock(&self.decls).get(&open.track_id).copied().unwrap_or(match open.kind {
            RtpCodecKind::Audio => TrackSource::Audio,
            _ => TrackSource::Camera,
        });
        let rids = simulcast_rids(&lock(&self.publish_sdp), &open.track_id);
        let (ktx, krx) = mpsc::unbounded_channel();
        let track = Arc::new(PublishedTrack {
            id: sfu.next_id("TR_"),
            participant_id: self.id.clone(),
            source,
            forwarder: TrackForwarder::new(&codec.mime_type, rids),
            codec: codec.clone(),
            payload_type: 0,
            muted: AtomicBool::new(false),
            receivers: Mutex::new(vec![receiver]),
            keyframe_tx: ktx,
            handoff_info: Mutex::new(None),
        });
        let layer = track.forwarder.layer_of_rid(open.rid.as_deref());
        track.forwarder.set_layer_ssrc(open.ssrc, layer);
        let level_id =
            if open.kind == RtpCodecKind::Audio { extmap_id(&lock(&self.publish_sdp), AUDIO_LEVEL_URI) } else { None };
        lock(&self.tracks).insert(track.id.clone(), Arc::clone(&track));
        lock(&self.inbound).insert(open.track_id.clone(), Inbound { track: Arc::clone(&track), level_id });
        spawn_keyframe_requests(Arc::downgrade(&track), krx, sfu.inner.config.keyframe_request_interval);
        tracing::info!(room = %room.name, track = %track.id, mime = %codec.mime_type, layers = track.forwarder.layer_count(), "published");
        self.attach_handoff(&room, &track);
        // The publisher hears of its own tracks too: their server ids are what `mute` takes.
        room.broadcast(&ServerMessage::TrackPublished { track: track.info() }, None);
        for p in room.participants() {
            if p.id != self.id {
                tokio::spawn(async move {
                    if let Err(e) = p.sync_subscriptions().await {
                        tracing::warn!("subscribe failed: {e}");
                    }
                });
            }
        }
    }

    /// The publisher stopped sending a track (renegotiated away, or the connection closed).
    fn on_track_closed(self: &Arc<Self>, track_id: &str) {
        let Some(gone) = lock(&self.inbound).remove(track_id) else { return };
        let me = Arc::clone(self);
        tokio::spawn(async move { me.unpublish(&gone.track.id).await });
    }

    /// A published track's packet, read from the socket at `now`: forwarded at once.
    fn on_rtp(&self, track_id: &str, pkt: rtp::Packet, now: Instant) {
        let Some((track, level_id)) = lock(&self.inbound).get(track_id).map(|i| (Arc::clone(&i.track), i.level_id)) else {
            return;
        };
        if let Some(id) = level_id
            && let Some(ext) = pkt.header.get_extension(id)
            && let Some((level, _)) = parse_audio_level(&ext)
            && let Some(room) = self.room.upgrade()
        {
            let level = if track.muted.load(Ordering::Relaxed) { 127 } else { level };
            room.on_audio_level(&self.id, level, now);
        }
        if let Some(layer) = track.forwarder.on_rtp(&pkt, now) {
            track.request_keyframe(layer);
        }
    }

    /// RTCP from the publisher about one of its tracks: sender reports go to the hand-off.
    fn on_publisher_rtcp(&self, track_id: &str, pkts: &[Box<dyn rtcp::Packet>]) {
        let Some(track) = lock(&self.inbound).get(track_id).map(|i| Arc::clone(&i.track)) else { return };
        let Some(room) = self.room.upgrade() else { return };
        for p in pkts {
            if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                track.on_sender_report(sr, &room);
            }
        }
    }

    /// RTCP from this subscriber about the track it receives as `track_id`: keyframe requests
    /// go to the publisher (rate limited there); receiver reports and REMB estimates (for the
    /// whole connection, delivered with whichever track they name first) set the bandwidth of
    /// all its video tracks.
    fn on_subscriber_rtcp(&self, track_id: &str, pkts: &[Box<dyn rtcp::Packet>]) {
        let Some((track, down)) = lock(&self.subs).get(track_id).map(|s| (s.track.clone(), Arc::clone(&s.down))) else {
            return;
        };
        let now = Instant::now();
        let mut keyframe = false;
        for p in pkts {
            let a = p.as_any();
            if let Some(remb) = a.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                self.on_remb(remb.bitrate, now);
            } else if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                self.on_receiver_report(rr, now);
            } else if a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() {
                keyframe = true;
            }
        }
        if keyframe && let Some(t) = track.upgrade() {
            t.request_keyframe(down.current_layer().unwrap_or(0));
        }
    }

    fn attach_handoff(&self, room: &Arc<Room>, track: &Arc<PublishedTrack>) {
        let Some(h) = room.sfu.upgrade().and_then(|s| s.handoff.clone()) else { return };
        let ssrc = random_u32();
        let pt = if track.payload_type != 0 { track.payload_type } else { default_pt(&track.codec.mime_type) };
        let info = TrackInfo {
            room: room.name.clone(),
            participant_id: self.id.clone(),
            participant_name: self.name.clone(),
            participant_identity: self.identity().map(str::to_owned),
            track_id: track.id.clone(),
            source: track.source,
            mime_type: track.codec.mime_type.clone(),
            payload_type: pt,
            clock_rate: track.codec.clock_rate,
            channels: track.codec.channels,
            fmtp: track.codec.sdp_fmtp_line.clone(),
            ssrc,
        };
        let (ktx, mut krx) = mpsc::unbounded_channel::<()>();
        let weak = Arc::downgrade(track);
        tokio::spawn(async move {
            while krx.recv().await.is_some() {
                let Some(t) = weak.upgrade() else { return };
                t.request_keyframe(t.forwarder.layer_count().saturating_sub(1));
            }
        });
        let gate = MediaGate::default();
        h.push(HandoffEvent::Published(info.clone(), KeyframeRequester { tx: ktx, gate: gate.clone() }));
        let id: Arc<str> = Arc::from(track.id.as_str());
        let h2 = Arc::clone(&h);
        let down = DownTrack::new(
            String::from("\u{0}handoff"),
            ssrc,
            pt,
            track.codec.clock_rate,
            Output::Callback(Box::new(move |p: rtc::rtp::Packet, _| {
                if !gate.is_open() {
                    return true;
                }
                if let Ok(b) = p.marshal() {
                    h2.push(HandoffEvent::Rtp(Arc::clone(&id), b.to_vec()));
                }
                true
            })),
        );
        track.forwarder.set_handoff(Some(Arc::new(down)));
        *lock(&track.handoff_info) = Some(info);
    }

    /// Removes one of my tracks from the room.
    pub async fn unpublish(self: &Arc<Self>, track_id: &str) {
        let Some(track) = lock(&self.tracks).remove(track_id) else { return };
        lock(&self.inbound).retain(|_, i| i.track.id != track.id);
        let Some(room) = self.room.upgrade() else { return };
        tracing::info!(room = %room.name, track = %track.id, "unpublished");
        track.forwarder.set_handoff(None);
        if let (Some(info), Some(h)) = (lock(&track.handoff_info).take(), room.sfu.upgrade().and_then(|s| s.handoff.clone())) {
            h.push(HandoffEvent::Unpublished(info));
        }
        room.broadcast(
            &ServerMessage::TrackUnpublished { track_id: track.id.clone(), participant_id: self.id.clone() },
            Some(&self.id),
        );
        for p in room.participants() {
            if p.id != self.id && p.unsubscribe_from(&track.id).await {
                let _ = p.renegotiate().await;
            }
        }
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
        tracing::info!(room = %room.name, participant = %self.id, "left");
        if let Some(sfu) = room.sfu() {
            if let Some(o) = sfu.inner.observer.get() {
                o.participant_left(&self.event(&room.name));
            }
            sfu.remove_room_if_empty(&room.name);
        }
    }
}

impl PublishedTrack {
    fn forwarder_is_video(&self) -> bool {
        self.codec.mime_type.to_ascii_lowercase().starts_with("video/")
    }

    fn on_sender_report(&self, sr: &SenderReport, room: &Room) {
        let Some(h) = room.sfu.upgrade().and_then(|s| s.handoff.clone()) else { return };
        let Some(info) = lock(&self.handoff_info).clone() else { return };
        let Some(rtp_time) = self.forwarder.handoff_sender_report_time(sr.ssrc, sr.rtp_time) else { return };
        h.push(HandoffEvent::SenderReport(
            Arc::from(self.id.as_str()),
            SenderReportInfo {
                ssrc: info.ssrc,
                ntp_time: sr.ntp_time,
                rtp_time,
                packet_count: sr.packet_count,
                octet_count: sr.octet_count,
            },
        ));
    }
}

/// Sends rate-limited PLIs to the publisher for the requested layers.
fn spawn_keyframe_requests(track: Weak<PublishedTrack>, mut rx: mpsc::UnboundedReceiver<usize>, interval: Duration) {
    tokio::spawn(async move {
        let mut limiters: HashMap<usize, KeyframeRequestLimiter> = HashMap::new();
        while let Some(layer) = rx.recv().await {
            let Some(t) = track.upgrade() else { return };
            let now = Instant::now();
            if !limiters.entry(layer).or_insert_with(|| KeyframeRequestLimiter::new(interval)).allow(now) {
                continue;
            }
            let Some(ssrc) = t.forwarder.layer_ssrc(layer) else { continue };
            let receiver = lock(&t.receivers).iter().find_map(|(c, id)| c.upgrade().map(|c| (c, *id)));
            if let Some((conn, id)) = receiver {
                conn.write_receiver_rtcp(id, vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })]);
            }
        }
    });
}

/// Our media engine's payload type for a MIME type (used for the hand-off stream).
fn default_pt(mime: &str) -> u8 {
    match mime.to_ascii_lowercase().as_str() {
        "audio/opus" => 111,
        "video/vp8" => 96,
        "video/vp9" => 98,
        "video/h264" => 102,
        "video/av1" => 41,
        _ => 96,
    }
}

/// Cheap structural checks before an SDP reaches the WebRTC stack.
pub(crate) fn validate_sdp(sdp: &str) -> Result<()> {
    if sdp.len() > 64 * 1024 {
        return Err(Error::BadRequest("SDP larger than 64 KiB".into()));
    }
    let t = sdp.trim_start();
    if !t.starts_with("v=0") {
        return Err(Error::BadRequest("SDP must start with v=0".into()));
    }
    if !sdp.lines().any(|l| l.starts_with("m=")) {
        return Err(Error::BadRequest("SDP has no media section".into()));
    }
    Ok(())
}
