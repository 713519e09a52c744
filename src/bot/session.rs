//! A session: join, offer the publish connection, answer subscribe offers, keep the socket
//! alive, leave.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tessera_sfu::TrackSource;
use tessera_sfu::signal::{ClientMessage, ServerMessage, TrackDecl};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};

use crate::bot::media::{MediaOptions, PacketRx, SyntheticMedia};
use crate::bot::peer::{ClientIce, ClientPeer, LocalTrack};
use crate::bot::pumps::{Counters, drain, start_publishing};
use crate::bot::signalling::{Ws, connect, next_message, send};
use crate::bot::{BotError, BotReport, ServerUrl, announce};

/// Keeps the WebSocket busy through idle-closing proxies.
const PING_EVERY: Duration = Duration::from_secs(15);

/// How a session ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Told to stop (or its time was up): the bot is done.
    Stopped,
    /// The node is going away (`reconnect`): join again through the node at this base URL.
    Reconnect(String),
}

pub struct Session {
    server: ServerUrl,
    token: String,
    room: String,
    name: String,
    opts: MediaOptions,
    counters: Arc<Counters>,
    /// ICE servers from `joined`; `relay_only` from `--relay-only`.
    ice: ClientIce,
}

impl Session {
    /// A session with `server`; `counters` go on from an earlier session of the same bot.
    pub fn new(
        server: ServerUrl,
        token: String,
        room: String,
        name: String,
        opts: MediaOptions,
        relay_only: bool,
        counters: Arc<Counters>,
    ) -> Self {
        let ice = ClientIce { servers: Vec::new(), relay_only };
        Session { server, token, room, name, opts, counters, ice }
    }

    /// Joins, publishes `media` (if any) and stays until `stop` or until the node asks it to
    /// join again elsewhere; then leaves.
    pub async fn run(
        mut self,
        media: Option<(SyntheticMedia, Option<PacketRx>, PacketRx)>,
        stop: impl Future<Output = ()>,
    ) -> Result<(BotReport, SessionEnd), BotError> {
        let mut ws = connect(&self.server).await?;
        send(
            &mut ws,
            &ClientMessage::Join {
                room: self.room.clone(),
                token: self.token.clone(),
                name: Some(self.name.clone()),
                subscribe: None,
            },
        )
        .await?;
        let participant_id = loop {
            match next_message(&mut ws).await? {
                ServerMessage::Joined { participant_id, participants, ice_servers, .. } => {
                    let turn = ice_servers.iter().flat_map(|s| &s.urls).filter(|u| u.starts_with("turn")).count();
                    if self.ice.relay_only && turn == 0 {
                        return Err(BotError::Config("--relay-only: the server offers no TURN server".into()));
                    }
                    self.ice.servers = ice_servers;
                    announce(
                        "joined",
                        json!({ "room": self.room, "participant_id": participant_id, "others": participants.len(), "turn_urls": turn, "relay_only": self.ice.relay_only }),
                    );
                    break participant_id;
                }
                ServerMessage::Error { code, message, .. } => return Err(BotError::Refused { code, message }),
                _ => {}
            }
        };

        let Some((media, video_rx, audio_rx)) = media else {
            return self.receive_only(ws, participant_id, stop).await;
        };
        let media = Arc::new(media);
        let mut publish = ClientPeer::new(&self.server.host, self.server.port, &self.ice).await?;
        let stream_id = format!("bot-{participant_id}");
        let video = match video_rx {
            Some(_) => Some(LocalTrack::add(&publish.pc, &stream_id, Some(self.opts.codec)).await?),
            None => None,
        };
        let audio = LocalTrack::add(&publish.pc, &stream_id, None).await?;
        let offer = publish.pc.create_offer(None).await?;
        publish.pc.set_local_description(offer).await?;
        let mut tracks = vec![TrackDecl { track_id: audio.id.clone(), source: TrackSource::Audio }];
        if let Some(v) = &video {
            tracks.push(TrackDecl { track_id: v.id.clone(), source: TrackSource::Camera });
        }
        send(&mut ws, &ClientMessage::PublishOffer { sdp: publish.local_sdp().await?, tracks }).await?;

        let mut subscribe: Option<ClientPeer> = None;
        let mut pumps = Vec::new();
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut published = false;
        let mut answered = false;
        let mut pending_media = Some((video_rx, audio_rx));
        tokio::pin!(stop);
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(SessionEnd::Stopped),
                _ = ping.tick() => send(&mut ws, &ClientMessage::Ping).await?,
                changed = publish.state.changed() => {
                    let state = *publish.state.borrow();
                    if changed.is_err() || matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                        break Err(BotError::WebRtc(format!("the publish connection is {state}")));
                    }
                    // Media starts once DTLS is up: packets before that would only be dropped.
                    if state == RTCPeerConnectionState::Connected && answered && !published {
                        published = true;
                        if let Some((video_rx, audio_rx)) = pending_media.take() {
                            let video = video.as_ref().zip(video_rx);
                            pumps.extend(start_publishing(&self.opts, &media, video, (&audio, audio_rx), &self.counters).await?);
                        }
                        announce("published", json!({ "participant_id": participant_id, "tracks": video.iter().chain([&audio]).map(|t| t.id.clone()).collect::<Vec<_>>() }));
                    }
                }
                Some(track) = recv_track(&mut subscribe) => {
                    pumps.push(tokio::spawn(drain(track, Arc::clone(&self.counters))));
                }
                msg = next_message(&mut ws) => match msg? {
                    ServerMessage::PublishAnswer { sdp } => {
                        let answer = RTCSessionDescription::answer(sdp).map_err(BotError::signalling("bad answer"))?;
                        publish.pc.set_remote_description(answer).await?;
                        answered = true;
                    }
                    ServerMessage::SubscribeOffer { sdp } => answer_subscribe(&mut ws, &mut subscribe, &self.server, &self.ice, sdp).await?,
                    ServerMessage::Error { code, message, fatal } => {
                        if fatal {
                            break Err(BotError::Refused { code, message });
                        }
                        tracing::warn!(%code, %message, "the server reported an error");
                    }
                    ServerMessage::ParticipantJoined { participant } => tracing::info!(id = %participant.id, name = %participant.name, "participant joined"),
                    ServerMessage::ParticipantLeft { participant_id } => tracing::info!(id = %participant_id, "participant left"),
                    ServerMessage::Reconnect { url } => break Ok(SessionEnd::Reconnect(url)),
                    _ => {}
                },
            }
            if let Some(err) = media.error() {
                break Err(BotError::Media(err));
            }
        };

        let _ = send(&mut ws, &ClientMessage::Leave).await;
        let _ = ws.close(None).await;
        for task in &pumps {
            task.abort();
        }
        let _ = publish.pc.close().await;
        if let Some(sub) = subscribe {
            let _ = sub.pc.close().await;
        }
        let end = outcome?;
        Ok((self.report(participant_id), end))
    }

    /// `--no-publish`: only answers subscribe offers and counts what arrives, until `stop`.
    async fn receive_only(
        self,
        mut ws: Ws,
        participant_id: String,
        stop: impl Future<Output = ()>,
    ) -> Result<(BotReport, SessionEnd), BotError> {
        let mut subscribe: Option<ClientPeer> = None;
        let mut drains = Vec::new();
        let mut ping = tokio::time::interval(PING_EVERY);
        tokio::pin!(stop);
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(SessionEnd::Stopped),
                _ = ping.tick() => send(&mut ws, &ClientMessage::Ping).await?,
                Some(track) = recv_track(&mut subscribe) => drains.push(tokio::spawn(drain(track, Arc::clone(&self.counters)))),
                msg = next_message(&mut ws) => match msg? {
                    ServerMessage::SubscribeOffer { sdp } => answer_subscribe(&mut ws, &mut subscribe, &self.server, &self.ice, sdp).await?,
                    ServerMessage::Error { code, message, fatal: true } => break Err(BotError::Refused { code, message }),
                    ServerMessage::Reconnect { url } => break Ok(SessionEnd::Reconnect(url)),
                    _ => {}
                },
            }
        };
        let _ = send(&mut ws, &ClientMessage::Leave).await;
        let _ = ws.close(None).await;
        for task in &drains {
            task.abort();
        }
        if let Some(sub) = subscribe {
            let _ = sub.pc.close().await;
        }
        let end = outcome?;
        Ok((self.report(participant_id), end))
    }

    fn report(&self, participant_id: String) -> BotReport {
        let c = &self.counters;
        BotReport {
            participant_id,
            video_packets_sent: c.video.load(Ordering::Relaxed),
            audio_packets_sent: c.audio.load(Ordering::Relaxed),
            packets_received: c.received.load(Ordering::Relaxed),
            keyframe_requests: c.keyframe_requests.load(Ordering::Relaxed),
        }
    }
}

/// Answers a subscribe offer on the subscribe connection (created on the first offer).
pub(crate) async fn answer_subscribe(
    ws: &mut Ws,
    subscribe: &mut Option<ClientPeer>,
    server: &ServerUrl,
    ice: &ClientIce,
    sdp: String,
) -> Result<(), BotError> {
    let offer = RTCSessionDescription::offer(sdp).map_err(BotError::signalling("bad offer"))?;
    if subscribe.is_none() {
        *subscribe = Some(ClientPeer::new(&server.host, server.port, ice).await?);
    }
    if let Some(sub) = subscribe.as_mut() {
        sub.pc.set_remote_description(offer).await?;
        let answer = sub.pc.create_answer(None).await?;
        sub.pc.set_local_description(answer).await?;
        let sdp = sub.local_sdp().await?;
        send(ws, &ClientMessage::SubscribeAnswer { sdp }).await?;
    }
    Ok(())
}

/// The next track of the subscribe connection; never, while there is none.
async fn recv_track(subscribe: &mut Option<ClientPeer>) -> Option<Arc<dyn TrackRemote>> {
    match subscribe {
        Some(peer) => peer.tracks.recv().await,
        None => std::future::pending().await,
    }
}
