//! One receive-only subscriber of the load generator: its own token, signalling WebSocket and
//! subscribe connection, like a browser that only watches. Its received tracks are counted
//! packet by packet ([`TrackCounters`]), never decoded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tessera_sfu::signal::{ClientMessage, ServerMessage};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

use super::report::{SubscriberReport, TrackReport};
use super::track::{TrackCounters, TrackKind};
use crate::bot::peer::{ClientIce, ClientPeer};
use crate::bot::session::answer_subscribe;
use crate::bot::signalling::{Ws, connect_with, next_message, send};
use crate::bot::token::{self, Grants};
use crate::bot::{BotError, ServerUrl};
use crate::http_client::HttpsClient;
use crate::locks::lock;

/// Keeps the WebSocket busy through idle-closing proxies (as the single bot does).
const PING_EVERY: Duration = Duration::from_secs(15);

/// What every subscriber of a run shares: the server, one HTTP client (its connection pool)
/// for the tokens, and one TLS configuration for `wss://`.
pub struct Shared {
    pub server: ServerUrl,
    pub http: HttpsClient,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub api_key: String,
    pub room: String,
    pub relay_only: bool,
    /// `--program`: receive the room's program only (its participant named once it is
    /// there; nothing until then).
    pub program_only: bool,
}

/// The participant id of the room's program among `participants`, if it is there.
fn program_id(participants: &[tessera_sfu::signal::ParticipantInfo]) -> Option<String> {
    participants.iter().find(|p| p.identity.as_deref() == Some(PROGRAM_IDENTITY)).map(|p| p.id.clone())
}

/// The identity of the room's program (`sfu/PROTOCOL.md`).
const PROGRAM_IDENTITY: &str = "program";

/// A subscriber, shared between its task and the reports.
pub struct Subscriber {
    id: String,
    identity: String,
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    started_at: Option<Instant>,
    participant_id: Option<String>,
    joined_at: Option<Instant>,
    connected_at: Option<Instant>,
    connected: bool,
    error: Option<String>,
    tracks: Vec<(String, Arc<Mutex<TrackCounters>>)>,
}

/// An error's message followed by those of its causes that it does not already show (e.g.
/// `… client error (Connect): tcp connect error: Connection refused (os error 111)`).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    message
}

fn millis_between(from: Option<Instant>, to: Option<Instant>) -> Option<u64> {
    Some(to?.saturating_duration_since(from?).as_millis() as u64)
}

impl Subscriber {
    pub fn new(id: String, identity: String) -> Self {
        Subscriber { id, identity, progress: Mutex::default() }
    }

    /// Records why it stopped (the first reason only).
    pub fn fail(&self, why: String) {
        let mut p = lock(&self.progress);
        p.connected = false;
        p.error.get_or_insert(why);
    }

    /// The run ended before its turn in the ramp came.
    pub fn never_started(&self) {
        let mut p = lock(&self.progress);
        if p.started_at.is_none() {
            p.error.get_or_insert_with(|| "the run ended before its turn to join".into());
        }
    }

    /// Its entry in the report, with its tracks' figures at `now`.
    pub fn report(&self, now: Instant) -> SubscriberReport {
        let p = lock(&self.progress);
        let mut first_packet: Option<Instant> = None;
        let tracks = p
            .tracks
            .iter()
            .map(|(track_id, counters)| {
                let c = lock(counters);
                if let Some(at) = c.first_packet_at() {
                    first_packet = Some(first_packet.map_or(at, |f| f.min(at)));
                }
                TrackReport { track_id: track_id.clone(), kind: c.kind(), figures: c.figures(now) }
            })
            .collect();
        SubscriberReport {
            id: self.id.clone(),
            identity: self.identity.clone(),
            participant_id: p.participant_id.clone(),
            connected: p.connected,
            joined_ms: millis_between(p.started_at, p.joined_at),
            connected_ms: millis_between(p.started_at, p.connected_at),
            time_to_first_packet_ms: millis_between(p.started_at, first_packet),
            error: p.error.clone(),
            tracks,
        }
    }

    /// Joins, receives until `leave` turns true, then leaves. A failure is kept in its report,
    /// never passed on: the other subscribers go on.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>, mut leave: watch::Receiver<bool>) {
        lock(&self.progress).started_at = Some(Instant::now());
        let joining = self.join(&shared);
        let joined = tokio::select! {
            joined = joining => joined,
            // Leaving before the join finished: dropping the half-open WebSocket is enough.
            _ = until_leave(&mut leave) => return,
        };
        let outcome = match joined {
            Ok((ws, ice)) => self.receive(ws, &shared, ice, leave).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            self.fail(with_causes(&e));
        }
    }

    /// Mints its token, opens its WebSocket and joins.
    async fn join(&self, shared: &Shared) -> Result<(Ws, ClientIce), BotError> {
        let grants = Grants { publish: false, subscribe: true };
        let token =
            token::mint(&shared.http, &shared.server, &shared.api_key, &shared.room, &self.identity, &self.id, grants)
                .await?;
        let mut ws = connect_with(&shared.server, shared.tls.clone()).await?;
        // `--program`: nobody's tracks until the program's id is known (from `joined`).
        let subscribe = shared.program_only.then(Vec::new);
        send(
            &mut ws,
            &ClientMessage::Join { room: shared.room.clone(), token, name: Some(self.id.clone()), subscribe },
        )
        .await?;
        loop {
            match next_message(&mut ws).await? {
                ServerMessage::Joined { participant_id, ice_servers, participants, .. } => {
                    let has_turn = ice_servers.iter().flat_map(|s| &s.urls).any(|u| u.starts_with("turn"));
                    if shared.relay_only && !has_turn {
                        return Err(BotError::Config("--relay-only: the server offers no TURN server".into()));
                    }
                    if shared.program_only
                        && let Some(id) = program_id(&participants)
                    {
                        send(&mut ws, &ClientMessage::Subscribe { participants: Some(vec![id]) }).await?;
                    }
                    let mut p = lock(&self.progress);
                    p.participant_id = Some(participant_id);
                    p.joined_at = Some(Instant::now());
                    return Ok((ws, ClientIce { servers: ice_servers, relay_only: shared.relay_only }));
                }
                ServerMessage::Error { code, message, .. } => return Err(BotError::Refused { code, message }),
                _ => {}
            }
        }
    }

    /// Answers the server's subscribe offers and counts every track that arrives, until
    /// `leave`, a fatal error or a failed connection.
    async fn receive(
        &self,
        mut ws: Ws,
        shared: &Shared,
        ice: ClientIce,
        mut leave: watch::Receiver<bool>,
    ) -> Result<(), BotError> {
        let mut subscribe: Option<ClientPeer> = None;
        let mut counting = Vec::new();
        let mut ping = tokio::time::interval(PING_EVERY);
        let outcome = loop {
            tokio::select! {
                _ = until_leave(&mut leave) => break Ok(()),
                _ = ping.tick() => {
                    if let Err(e) = send(&mut ws, &ClientMessage::Ping).await {
                        break Err(e);
                    }
                }
                event = peer_event(&mut subscribe) => match event {
                    PeerEvent::State(state) => {
                        if let Err(e) = self.connection_state(state) {
                            break Err(e);
                        }
                    }
                    PeerEvent::Track(track) => {
                        let counters = self.add_track(&track).await;
                        counting.push(tokio::spawn(count(track, counters)));
                    }
                },
                msg = next_message(&mut ws) => match msg {
                    Ok(ServerMessage::SubscribeOffer { sdp }) => {
                        if let Err(e) = answer_subscribe(&mut ws, &mut subscribe, &shared.server, &ice, sdp).await {
                            break Err(e);
                        }
                    }
                    Ok(ServerMessage::Error { code, message, fatal: true }) => {
                        break Err(BotError::Refused { code, message });
                    }
                    Ok(ServerMessage::ParticipantJoined { participant }) if shared.program_only => {
                        if let Some(id) = program_id(std::slice::from_ref(&participant)) {
                            let only = ClientMessage::Subscribe { participants: Some(vec![id]) };
                            if let Err(e) = send(&mut ws, &only).await {
                                break Err(e);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break Err(e),
                },
            }
        };
        let _ = send(&mut ws, &ClientMessage::Leave).await;
        let _ = ws.close(None).await;
        for task in &counting {
            task.abort();
        }
        // Gone from the room, its tracks are not frozen from here on.
        for (_, counters) in &lock(&self.progress).tracks {
            lock(counters).end();
        }
        if let Some(sub) = subscribe {
            let _ = sub.pc.close().await;
        }
        outcome
    }

    /// Follows the subscribe connection's state; a failed or closed one ends the subscriber.
    fn connection_state(&self, state: RTCPeerConnectionState) -> Result<(), BotError> {
        let mut p = lock(&self.progress);
        p.connected = state == RTCPeerConnectionState::Connected;
        if p.connected {
            p.connected_at.get_or_insert_with(Instant::now);
        }
        match state {
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                Err(BotError::WebRtc(format!("the subscribe connection is {state}")))
            }
            _ => Ok(()),
        }
    }

    async fn add_track(&self, track: &Arc<dyn TrackRemote>) -> Arc<Mutex<TrackCounters>> {
        let kind = match track.kind().await {
            RtpCodecKind::Video => TrackKind::Video,
            _ => TrackKind::Audio,
        };
        let counters = Arc::new(Mutex::new(TrackCounters::new(kind)));
        let track_id = track.track_id().await;
        lock(&self.progress).tracks.push((track_id, Arc::clone(&counters)));
        counters
    }
}

/// Resolves once the run tells its subscribers to leave (or is gone).
pub async fn until_leave(leave: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: it is dropped here, before any other await.
    let _ = leave.wait_for(|l| *l).await;
}

enum PeerEvent {
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

/// The subscribe connection's next state change or new track; never, while there is none.
async fn peer_event(subscribe: &mut Option<ClientPeer>) -> PeerEvent {
    let Some(peer) = subscribe else { return std::future::pending().await };
    tokio::select! {
        changed = peer.state.changed() => match changed {
            Ok(()) => PeerEvent::State(*peer.state.borrow_and_update()),
            // The connection's event handler is gone: so is the connection.
            Err(_) => PeerEvent::State(RTCPeerConnectionState::Closed),
        },
        Some(track) = peer.tracks.recv() => PeerEvent::Track(track),
    }
}

/// Counts a track's packets until it ends.
async fn count(track: Arc<dyn TrackRemote>, counters: Arc<Mutex<TrackCounters>>) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let h = &packet.header;
                lock(&counters).on_packet(
                    h.sequence_number,
                    h.timestamp,
                    h.marker,
                    packet.payload.len(),
                    Instant::now(),
                );
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    lock(&counters).end();
}
