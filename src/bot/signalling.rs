//! The bot's side of the signalling protocol (`sfu/PROTOCOL.md`): mint a token, join, offer the
//! publish connection, answer subscribe offers, keep the socket alive, leave.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::shared::marshal::Unmarshal;
use serde_json::{Value, json};
use tessera_sfu::TrackSource;
use tessera_sfu::signal::{ClientMessage, ServerMessage, TrackDecl};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};

use crate::bot::media::{MediaOptions, PacketRx, SyntheticMedia};
use crate::bot::pacer::{self, Pacer};
use crate::bot::peer::{ClientIce, ClientPeer, LocalTrack};
use crate::bot::{BotError, BotReport, ServerUrl, announce};
use crate::cli::BotArgs;

/// Keeps the WebSocket busy through idle-closing proxies.
const PING_EVERY: Duration = Duration::from_secs(15);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /v1/rooms/{room}/tokens` with the API key.
pub async fn mint_token(server: &ServerUrl, key: &str, args: &BotArgs) -> Result<String, BotError> {
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => {
            let base: String =
                args.name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(40).collect();
            let base = if base.is_empty() { "bot".to_owned() } else { base };
            format!("{base}-{:06x}", getrandom::u32().unwrap_or(0) & 0xff_ffff)
        }
    };
    let body = json!({ "identity": identity, "name": args.name, "publish": true, "subscribe": args.subscribe });
    let client = crate::http_client::https_client().map_err(BotError::Token)?;
    let request = hyper::Request::post(format!("{}/v1/rooms/{}/tokens", server.http, args.room))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {key}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| BotError::Token(e.to_string()))?;
    let response = tokio::time::timeout(HTTP_TIMEOUT, client.request(request))
        .await
        .map_err(|_| BotError::Token(format!("{} did not answer", server.http)))?
        .map_err(|e| BotError::Token(format!("{}: {e}", server.http)))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| BotError::Token(e.to_string()))?.to_bytes();
    let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = reply["error"]["message"].as_str().unwrap_or("no details");
        return Err(BotError::Token(format!("HTTP {status}: {message}")));
    }
    reply["token"].as_str().map(str::to_owned).ok_or_else(|| BotError::Token("no token in the reply".into()))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &ServerUrl) -> Result<Ws, BotError> {
    let connector = if server.ws.starts_with("wss:") {
        let config = crate::http_client::tls_client_config().map_err(BotError::Signalling)?;
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
    } else {
        None
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(server.ws.as_str(), None, false, connector);
    let (ws, _) = tokio::time::timeout(HTTP_TIMEOUT, connecting)
        .await
        .map_err(|_| BotError::Signalling(format!("{} did not answer", server.ws)))?
        .map_err(|e| BotError::Signalling(format!("{}: {e}", server.ws)))?;
    Ok(ws)
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), BotError> {
    let text = serde_json::to_string(msg).map_err(|e| BotError::Signalling(e.to_string()))?;
    ws.send(Message::text(text)).await.map_err(|e| BotError::Signalling(format!("send: {e}")))
}

/// Packet counters shared with the pump tasks.
#[derive(Default)]
struct Counters {
    video: AtomicU64,
    audio: AtomicU64,
    received: AtomicU64,
    keyframe_requests: AtomicU64,
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
    pub fn new(
        server: ServerUrl,
        token: String,
        room: String,
        name: String,
        opts: MediaOptions,
        relay_only: bool,
    ) -> Self {
        let ice = ClientIce { servers: Vec::new(), relay_only };
        Session { server, token, room, name, opts, counters: Arc::default(), ice }
    }

    /// Joins, publishes `media` (if any) and stays until `stop`; then leaves.
    pub async fn run(
        mut self,
        media: Option<(SyntheticMedia, Option<PacketRx>, PacketRx)>,
        stop: impl Future<Output = ()>,
    ) -> Result<BotReport, BotError> {
        let mut ws = connect(&self.server).await?;
        send(
            &mut ws,
            &ClientMessage::Join { room: self.room.clone(), token: self.token.clone(), name: Some(self.name.clone()) },
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
                _ = &mut stop => break Ok(()),
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
                            if let (Some(v), Some(rx)) = (&video, video_rx) {
                                let pt = v.payload_type().await?;
                                let pacer = self.opts.pace_factor.map(|f| Pacer::new(self.opts.bitrate_kbps, f));
                                pumps.push(tokio::spawn(pump(Arc::clone(&v.track), rx, v.ssrc, pt, None, pacer, Arc::clone(&self.counters))));
                                pumps.push(tokio::spawn(keyframes(Arc::clone(&v.track), Arc::clone(&media), Arc::clone(&self.counters))));
                                media.request_keyframe();
                            }
                            // RFC 6464: a steady tone is "voice" at -10 dBov; silence is 127.
                            let level = self.opts.tone.map_or(127, |_| 10);
                            let ext = AudioLevelExtension { level, voice: level < 127 };
                            let pt = audio.payload_type().await?;
                            pumps.push(tokio::spawn(pump(Arc::clone(&audio.track), audio_rx, audio.ssrc, pt, Some(ext), None, Arc::clone(&self.counters))));
                        }
                        announce("published", json!({ "participant_id": participant_id, "tracks": video.iter().chain([&audio]).map(|t| t.id.clone()).collect::<Vec<_>>() }));
                    }
                }
                Some(track) = recv_track(&mut subscribe) => {
                    pumps.push(tokio::spawn(drain(track, Arc::clone(&self.counters))));
                }
                msg = next_message(&mut ws) => match msg? {
                    ServerMessage::PublishAnswer { sdp } => {
                        let answer = RTCSessionDescription::answer(sdp).map_err(|e| BotError::Signalling(format!("bad answer: {e}")))?;
                        publish.pc.set_remote_description(answer).await?;
                        answered = true;
                    }
                    ServerMessage::SubscribeOffer { sdp } => self.answer_subscribe(&mut ws, &mut subscribe, sdp).await?,
                    ServerMessage::Error { code, message, fatal } => {
                        if fatal {
                            break Err(BotError::Refused { code, message });
                        }
                        tracing::warn!(%code, %message, "the server reported an error");
                    }
                    ServerMessage::ParticipantJoined { participant } => tracing::info!(id = %participant.id, name = %participant.name, "participant joined"),
                    ServerMessage::ParticipantLeft { participant_id } => tracing::info!(id = %participant_id, "participant left"),
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
        outcome?;
        Ok(self.report(participant_id))
    }

    /// Answers a subscribe offer on the subscribe connection (created on the first offer).
    async fn answer_subscribe(
        &self,
        ws: &mut Ws,
        subscribe: &mut Option<ClientPeer>,
        sdp: String,
    ) -> Result<(), BotError> {
        let offer = RTCSessionDescription::offer(sdp).map_err(|e| BotError::Signalling(format!("bad offer: {e}")))?;
        if subscribe.is_none() {
            *subscribe = Some(ClientPeer::new(&self.server.host, self.server.port, &self.ice).await?);
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

    /// `--no-publish`: only answers subscribe offers and counts what arrives, until `stop`.
    async fn receive_only(
        self,
        mut ws: Ws,
        participant_id: String,
        stop: impl Future<Output = ()>,
    ) -> Result<BotReport, BotError> {
        let mut subscribe: Option<ClientPeer> = None;
        let mut drains = Vec::new();
        let mut ping = tokio::time::interval(PING_EVERY);
        tokio::pin!(stop);
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                _ = ping.tick() => send(&mut ws, &ClientMessage::Ping).await?,
                Some(track) = recv_track(&mut subscribe) => drains.push(tokio::spawn(drain(track, Arc::clone(&self.counters)))),
                msg = next_message(&mut ws) => match msg? {
                    ServerMessage::SubscribeOffer { sdp } => self.answer_subscribe(&mut ws, &mut subscribe, sdp).await?,
                    ServerMessage::Error { code, message, fatal: true } => break Err(BotError::Refused { code, message }),
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
        outcome?;
        Ok(self.report(participant_id))
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

/// The next protocol message; messages this build does not know are skipped.
async fn next_message(ws: &mut Ws) -> Result<ServerMessage, BotError> {
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| BotError::Signalling("the server closed the connection".into()))?
            .map_err(|e| BotError::Signalling(e.to_string()))?;
        match frame {
            Message::Text(text) => match serde_json::from_str::<ServerMessage>(&text) {
                Ok(msg) => return Ok(msg),
                Err(e) => tracing::debug!(%e, "skipping a message this bot does not know"),
            },
            Message::Close(_) => return Err(BotError::Signalling("the server closed the connection".into())),
            _ => {}
        }
    }
}

async fn recv_track(subscribe: &mut Option<ClientPeer>) -> Option<Arc<dyn TrackRemote>> {
    match subscribe {
        Some(peer) => peer.tracks.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends GStreamer's RTP packets on `track` with our SSRC and the negotiated payload type;
/// audio (the track with a `level`) carries its RFC 6464 audio level; a `pacer` spreads the
/// packets over time.
async fn pump(
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
    mut rx: PacketRx,
    ssrc: u32,
    payload_type: u8,
    level: Option<AudioLevelExtension>,
    mut pacer: Option<Pacer>,
    counters: Arc<Counters>,
) {
    while let Some(bytes) = rx.recv().await {
        if let Some(p) = &mut pacer {
            let now = std::time::Instant::now();
            let due = p.due(bytes.len(), now);
            if due > now + pacer::SLACK {
                tokio::time::sleep(due - now).await;
            }
        }
        let mut buf = &bytes[..];
        let Ok(mut packet) = rtc::rtp::Packet::unmarshal(&mut buf) else { continue };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type;
        let sent = match &level {
            Some(ext) => track.write_rtp_with_extensions(packet, &[HeaderExtension::AudioLevel(*ext)]).await,
            None => track.write_rtp(packet).await,
        };
        match sent {
            Ok(()) => {
                let counter = if level.is_some() { &counters.audio } else { &counters.video };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(%e, "packet not sent"),
        }
    }
}

/// Turns the server's PLI/FIR about our video into keyframes.
async fn keyframes(
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
    media: Arc<SyntheticMedia>,
    counters: Arc<Counters>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else { continue };
        let wants_keyframe = packets.iter().any(|p| {
            let any = p.as_any();
            any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
        });
        if wants_keyframe {
            counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            media.request_keyframe();
        }
    }
}

/// Receives (and counts) a subscribed track, as a browser's decoder would consume it.
async fn drain(track: Arc<dyn TrackRemote>, counters: Arc<Counters>) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(_) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}
