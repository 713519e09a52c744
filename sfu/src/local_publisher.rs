//! Media made in this process, published into a room as an ordinary participant: the room's
//! composited program (MCU mode), which the compositor encodes and the binary hands over
//! packet by packet. Clients see it join (its `ParticipantInfo` carries its identity,
//! `program`) and publish like anyone else, and receive it when they subscribe to it by id;
//! the other nodes of a cluster get it through the cascade like this node's other
//! participants. The SFU knows nothing of where the packets come from.
//!
//! It is a participant without connections, like another node's (`cascade/remote.rs`), but
//! this node's own (`node` None): its tracks' forwarders are fed by [`LocalPublisher::push_rtp`]
//! instead of a publish connection, and keyframe requests for its video (subscribers' PLIs and
//! FIRs, other nodes', a new subscription's, rate limited per track like any publisher's) go
//! to a callback instead of a PLI. Where it differs from a client is
//! [`Participant::is_in_process`]: its tracks never reach the [`crate::MediaHandoff`] (the
//! program must not composite itself), it is no active speaker (its audio carries everyone's
//! voices; no audio level is read from its packets, here or on other nodes), no
//! [`crate::RoomObserver`] hears of it (webhooks are about people; the binary knows of its
//! program), it takes no client's place under `max_participants`, and `subscribe: null`
//! leaves it out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
use rtc::shared::marshal::Unmarshal;
use tokio::sync::mpsc;

use crate::codecs::registered_codec;
use crate::error::{Error, Result};
use crate::forward::TrackForwarder;
use crate::handoff::TrackSource;
use crate::participant::Participant;
use crate::room::Room;
use crate::sfu::{Sfu, SfuInner};
use crate::signal::ServerMessage;
use crate::sync::lock;
use crate::track::{PublishedTrack, spawn_keyframe_requests};
use crate::transport::Transport;

/// One track of a [`LocalPublisher`]: what its RTP packets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTrackSpec {
    /// `audio` for an audio MIME type; `camera` or `screen` for video.
    pub source: TrackSource,
    /// `video/H264` or `audio/opus` (or `video/VP8`).
    pub mime_type: String,
    /// RTP clock rate: 90000 for video, 48000 for Opus.
    pub clock_rate: u32,
    /// Audio channels (at most 2 for Opus; 0 for video).
    pub channels: u16,
    /// The stream's fmtp. For H.264 (`packetization-mode=1;profile-level-id=640028`) it picks
    /// the registered profile subscribers are offered: constrained baseline, baseline, or high
    /// for main and high (levels are not matched; see `codecs::registered_codec`).
    pub fmtp: String,
    /// The payload type of the packets pushed; packets of another are refused.
    pub payload_type: u8,
    /// Their SSRC (fixed).
    pub ssrc: u32,
}

impl LocalTrackSpec {
    /// A camera-like H.264 track, 90 kHz, with the encoder's `fmtp`.
    pub fn h264(fmtp: &str, payload_type: u8, ssrc: u32) -> Self {
        LocalTrackSpec {
            source: TrackSource::Camera,
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            channels: 0,
            fmtp: fmtp.into(),
            payload_type,
            ssrc,
        }
    }

    /// An Opus track, 48 kHz stereo.
    pub fn opus(payload_type: u8, ssrc: u32) -> Self {
        LocalTrackSpec {
            source: TrackSource::Audio,
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            fmtp: String::new(),
            payload_type,
            ssrc,
        }
    }

    /// The registered codec it goes to subscribers as, if the SFU can forward it.
    fn codec(&self) -> Result<RTCRtpCodecParameters> {
        let codec = registered_codec(&self.mime_type, self.clock_rate, &self.fmtp)?;
        let audio = codec.rtp_codec.mime_type.to_ascii_lowercase().starts_with("audio/");
        if audio != (self.source == TrackSource::Audio) {
            return Err(Error::BadRequest(format!("a {} track cannot be a {:?} source", self.mime_type, self.source)));
        }
        if self.channels > codec.rtp_codec.channels {
            return Err(Error::BadRequest(format!("{} with {} channels", self.mime_type, self.channels)));
        }
        Ok(codec)
    }
}

type KeyframeCallback = Arc<dyn Fn() + Send + Sync>;

/// The SFU's side of a [`LocalPublisher`] that its video tracks hold: where their keyframe
/// requests go, and the clock they are rate limited on.
///
/// Lock order: `keyframes` is a leaf, held only to take the callback (which is called after
/// it is released: it may set another); the SFU's `transport` is taken under nothing.
pub(crate) struct LocalSource {
    keyframes: Mutex<Option<KeyframeCallback>>,
    sfu: Weak<SfuInner>,
    /// The SFU's transport once bound (it is never replaced).
    transport: OnceLock<Weak<Transport>>,
}

impl LocalSource {
    /// A subscriber (or another node, or a new subscription) wants a keyframe; the track's
    /// limiter let it through.
    pub(crate) fn request_keyframe(&self) {
        let callback = lock(&self.keyframes).clone();
        if let Some(f) = callback {
            f();
        }
    }

    /// The time the SFU's connections run on: the wall clock, or a test network's.
    pub(crate) fn now(&self) -> Instant {
        self.transport().map_or_else(Instant::now, |t| t.now())
    }

    fn transport(&self) -> Option<Arc<Transport>> {
        if let Some(t) = self.transport.get() {
            return t.upgrade();
        }
        let t = self.sfu.upgrade().and_then(|s| lock(&s.transport).clone())?;
        let _ = self.transport.set(Arc::downgrade(&t));
        Some(t)
    }
}

/// Media made in this process, published into a room (see the module docs). Leaves the room
/// when dropped.
pub struct LocalPublisher {
    participant: Arc<Participant>,
    /// Each track and the payload type its packets carry, by index.
    tracks: Vec<(Arc<PublishedTrack>, u8)>,
    source: Arc<LocalSource>,
    /// Where the leave of a dropped publisher runs (dropped on any thread).
    runtime: tokio::runtime::Handle,
    refused: AtomicU64,
}

impl Sfu {
    /// Publishes media made in this process into `room` as a participant (`identity`, `name`)
    /// with these tracks: clients see it join and publish like any other participant. Its
    /// participant id is made by the SFU, unique like every other (a client's token may
    /// carry the same identity; only this participant's identity is shown to clients). Must
    /// run inside the Tokio runtime. Refuses a track the SFU cannot forward (its codec, clock
    /// rate or source) before joining.
    pub fn publish_local(
        &self,
        room: &str,
        identity: &str,
        name: &str,
        tracks: Vec<LocalTrackSpec>,
    ) -> Result<LocalPublisher> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Internal("a local publisher must be made inside the Tokio runtime".into()))?;
        if tracks.is_empty() {
            return Err(Error::BadRequest("a local publisher needs a track".into()));
        }
        let codecs = tracks.iter().map(LocalTrackSpec::codec).collect::<Result<Vec<_>>>()?;
        let room = self.room(room);
        let mut participant = Participant::new(
            self.next_id("PA_"),
            name.to_owned(),
            Some(identity.to_owned()),
            Arc::downgrade(&room),
            None,
            None,
        );
        participant.in_process = true;
        // No subscribe connection: it receives nothing.
        participant.may_subscribe = AtomicBool::new(false);
        let participant = Arc::new(participant);
        if let Err(e) = room.admit(self, Arc::clone(&participant)) {
            self.remove_room_if_empty(&room.name);
            return Err(e);
        }
        let source = Arc::new(LocalSource {
            keyframes: Mutex::new(None),
            sfu: Arc::downgrade(&self.inner),
            transport: OnceLock::new(),
        });
        let tracks = tracks
            .iter()
            .zip(codecs)
            .map(|(spec, codec)| {
                (self.publish_local_track(&room, &participant, spec, codec, &source), spec.payload_type)
            })
            .collect();
        self.local_room_changed(&room.name);
        // As for a client's new track: whoever already asked for it gets it (another node's
        // participants are served by their node).
        for p in room.participants() {
            if p.id != participant.id && p.node.is_none() {
                tokio::spawn(async move {
                    if let Err(e) = p.sync_subscriptions().await {
                        tracing::warn!("subscribe failed: {e}");
                    }
                });
            }
        }
        Ok(LocalPublisher { participant, tracks, source, runtime, refused: AtomicU64::new(0) })
    }

    /// One track of a local publisher: its forwarder, its keyframe requests, its relay to
    /// the other nodes; announced to the room. Never handed off (see `attach_handoff`).
    fn publish_local_track(
        &self,
        room: &Arc<Room>,
        participant: &Arc<Participant>,
        spec: &LocalTrackSpec,
        codec: RTCRtpCodecParameters,
        source: &Arc<LocalSource>,
    ) -> Arc<PublishedTrack> {
        let forwarder = TrackForwarder::new(&codec.rtp_codec.mime_type, Vec::new());
        forwarder.set_layer_ssrc(spec.ssrc, 0);
        let (ktx, krx) = mpsc::unbounded_channel();
        let track = Arc::new(PublishedTrack {
            id: self.next_id("TR_"),
            participant_id: participant.id.clone(),
            source: spec.source,
            forwarder,
            codec: codec.rtp_codec,
            payload_type: spec.payload_type,
            muted: AtomicBool::new(false),
            receivers: Mutex::new(Vec::new()),
            keyframe_tx: ktx,
            handoff_info: Mutex::new(None),
            relayed_from: None,
            // Only video asks for keyframes (a PLI a client sends about audio goes nowhere).
            local: (spec.source != TrackSource::Audio).then(|| Arc::clone(source)),
            in_process: true,
        });
        lock(&participant.tracks).insert(track.id.clone(), Arc::clone(&track));
        spawn_keyframe_requests(Arc::downgrade(&track), krx, self.inner.config.keyframe_request_interval);
        if let Some(cascade) = self.cascade() {
            cascade.relay_local_track(&room.name, &track);
        }
        tracing::info!(room = %room.name, track = %track.id, mime = %track.codec.mime_type, pt = spec.payload_type, "published in process");
        room.broadcast(&ServerMessage::TrackPublished { track: track.info() }, None);
        track
    }
}

impl LocalPublisher {
    /// Its participant id (unique; what clients `subscribe` to).
    pub fn participant_id(&self) -> &str {
        &self.participant.id
    }

    /// Its participant.
    pub fn participant(&self) -> &Arc<Participant> {
        &self.participant
    }

    /// Its tracks' server ids, in the order of its specs.
    pub fn track_ids(&self) -> Vec<String> {
        self.tracks.iter().map(|(t, _)| t.id.clone()).collect()
    }

    /// Its track `index` (its forwarder's counters: received, forwarded per subscriber).
    pub fn track(&self, index: usize) -> Option<&Arc<PublishedTrack>> {
        self.tracks.get(index).map(|(t, _)| t)
    }

    /// One serialized RTP packet of track `index`, forwarded to its subscribers (and the
    /// other nodes that want it) before this returns. Never blocks (a subscriber that cannot
    /// take it loses it) and costs what forwarding a client's packet costs; call it from the
    /// thread that made the packet. A packet that does not parse, of an unknown index or of
    /// another payload type is refused and counted ([`Self::refused`]); after leaving,
    /// packets are ignored.
    pub fn push_rtp(&self, index: usize, packet: &[u8]) {
        if self.participant.is_closed() {
            return;
        }
        let mut data = packet;
        let parsed = self.tracks.get(index).zip(rtp::Packet::unmarshal(&mut data).ok());
        let Some(((track, _), pkt)) = parsed.filter(|((_, pt), p)| p.header.payload_type == *pt) else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let forward = |now: Instant| {
            if let Some(layer) = track.forwarder.on_rtp(&pkt, now) {
                track.request_keyframe(layer);
            }
        };
        match self.source.transport() {
            // The datagrams for all subscribers go in one `sendmmsg` per socket, as for a
            // packet from the receive loop.
            Some(t) => t.batched(|| forward(t.now())),
            None => forward(Instant::now()),
        }
    }

    /// Packets [`Self::push_rtp`] refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Calls `f` whenever a keyframe of its video is wanted: a subscriber's PLI or FIR, a new
    /// subscriber, another node. Rate limited per track like any publisher's
    /// (`SfuConfig::keyframe_request_interval`). Called on a Tokio worker: it must return
    /// quickly (ask the encoder, e.g. a force-key-unit event, and return). Replaces the
    /// callback set before.
    pub fn on_keyframe_request(&self, f: impl Fn() + Send + Sync + 'static) {
        *lock(&self.source.keyframes) = Some(Arc::new(f));
    }

    /// Leaves the room now: its tracks are unpublished and it leaves, as a client's
    /// participant does (clients get `track_unpublished` and `participant_left`).
    pub async fn leave(self) {
        self.participant.leave().await;
    }
}

impl Drop for LocalPublisher {
    fn drop(&mut self) {
        if !self.participant.is_closed() {
            let p = Arc::clone(&self.participant);
            self.runtime.spawn(async move { p.leave().await });
        }
    }
}

impl std::fmt::Debug for LocalPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPublisher")
            .field("participant", &self.participant.id)
            .field("tracks", &self.track_ids())
            .finish()
    }
}
