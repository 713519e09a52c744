//! `tessera bot --janus URL --room ID`: the bot in a Janus VideoRoom instead of a Tessera room,
//! for the side-by-side benchmark (`scripts/bench-janus`, `bench/janus.md`). The client is the
//! same as in a Tessera room (the same peer connections, built by `tessera_sfu`, the same
//! GStreamer media, pacer and counters: `pumps.rs`); only the signalling differs, Janus's plain
//! HTTP API (`api.rs`) instead of Tessera's WebSocket protocol.
//!
//! - A publisher (the default) creates a session, attaches `janus.plugin.videoroom`, `join`s
//!   the room as a `publisher`, sends its offer with `publish`, takes Janus's answer, and once
//!   the connection is up sends its media exactly as it would to Tessera.
//! - A receive-only subscriber (`--subscribe --no-publish`) asks the room for its participants
//!   (`listparticipants`) until a publisher is there, `join`s as a `subscriber` of all its
//!   streams, answers Janus's offer with `start`, and counts every packet of every track. A
//!   later offer (Janus renegotiating) is answered with `start` again.
//!
//! Janus offers its candidates in its SDP (half trickle, its default) and so do we, after our
//! gathering (`"trickle": false`): no `trickle` messages either way. Janus never gathers on a
//! loopback interface, and its ICE does not pair a loopback candidate of ours with its own, so
//! our candidates are on the address that reaches Janus's `local-ip` (from `GET /info`), not
//! on the one that reaches its HTTP API (loopback, as a rule).

mod api;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};

use crate::bot::media::{MediaOptions, SyntheticMedia};
use crate::bot::peer::{ClientIce, ClientPeer, LocalTrack};
use crate::bot::pumps::{Counters, drain, start_publishing};
use crate::bot::{BotError, BotReport, ServerUrl, announce};
use crate::cli::BotArgs;
use api::{JanusSession, Jsep};

const VIDEOROOM: &str = "janus.plugin.videoroom";
/// Any port: [`ClientPeer::new`] only asks the kernel which local address routes to the host.
const MEDIA_PORT: u16 = 9;
/// How often a subscriber asks for the room's participants while nobody publishes.
const PUBLISHER_POLL: Duration = Duration::from_millis(250);

/// Runs the bot in the VideoRoom `args.room` of the Janus at `url` until `stop`.
pub async fn run(
    url: &str,
    args: &BotArgs,
    opts: &MediaOptions,
    counters: Arc<Counters>,
    stop: impl Future<Output = ()>,
) -> Result<BotReport, BotError> {
    let room: u64 = args.room.parse().map_err(|_| {
        BotError::Config(format!("--room {}: a Janus VideoRoom is named by a number (e.g. 1234)", args.room))
    })?;
    if args.subscribe && !args.no_publish {
        return Err(BotError::Config(
            "with --janus the bot publishes, or receives with --subscribe --no-publish; not both".into(),
        ));
    }
    let server = ServerUrl::parse(url).map_err(|_| BotError::Config(format!("--janus {url}: not an http:// URL")))?;
    let info = api::server_info(&server.http).await?;
    let media_host = info["local-ip"].as_str().unwrap_or(&server.host).to_owned();
    tracing::info!(version = %info["version_string"], %media_host, "Janus");
    let mut janus = JanusSession::create(&server.http).await?;
    let outcome = async {
        let handle = janus.attach(VIDEOROOM).await?;
        let mut bot = Bot { janus: &mut janus, handle, room, media_host: &media_host, counters: &counters };
        if args.no_publish { bot.subscribe(stop).await } else { bot.publish(&args.name, opts, stop).await }
    }
    .await;
    janus.destroy().await;
    let participant_id = outcome?;
    Ok(BotReport {
        participant_id,
        video_packets_sent: counters.video.load(Ordering::Relaxed),
        audio_packets_sent: counters.audio.load(Ordering::Relaxed),
        packets_received: counters.received.load(Ordering::Relaxed),
        keyframe_requests: counters.keyframe_requests.load(Ordering::Relaxed),
    })
}

/// One handle on the VideoRoom plugin and what its publisher or subscriber needs.
struct Bot<'a> {
    janus: &'a mut JanusSession,
    handle: u64,
    room: u64,
    /// Where Janus's candidates are: our candidates go on the address that reaches it.
    media_host: &'a str,
    counters: &'a Arc<Counters>,
}

/// A participant or feed id as Janus gives it (a number, or a string with `string_ids`).
fn janus_id(data: &Value, what: &str) -> Result<Value, BotError> {
    match data.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => Ok(id.clone()),
        _ => Err(BotError::Signalling(format!("Janus's `{what}` event has no id"))),
    }
}

fn id_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_owned)
}

/// What a session event means for the bot: go on, or stop with an error.
fn on_event(event: &Value) -> Result<(), BotError> {
    match event["janus"].as_str() {
        Some("hangup") => Err(BotError::WebRtc(format!(
            "Janus hung up the connection: {}",
            event["reason"].as_str().unwrap_or("no reason given")
        ))),
        Some("detached") => Err(BotError::Signalling("Janus detached our handle".into())),
        Some("timeout") => Err(BotError::Signalling("Janus timed our session out".into())),
        Some("error") => Err(BotError::Refused {
            code: event["error"]["code"].to_string(),
            message: event["error"]["reason"].as_str().unwrap_or("no reason given").to_owned(),
        }),
        Some(kind) => {
            tracing::debug!(kind, %event, "Janus event");
            Ok(())
        }
        None => Err(BotError::Signalling(format!("Janus sent an event without a type: {event}"))),
    }
}

impl Bot<'_> {
    /// Joins as a publisher, publishes the bot's media, and stays until `stop`. Returns the
    /// publisher's id in the room.
    async fn publish(
        &mut self,
        name: &str,
        opts: &MediaOptions,
        stop: impl Future<Output = ()>,
    ) -> Result<String, BotError> {
        let (media, video_rx, audio_rx) = SyntheticMedia::start(opts)?;
        let media = Arc::new(media);
        let join = json!({ "request": "join", "ptype": "publisher", "room": self.room, "display": name });
        let joined = self.janus.message(self.handle, join, None).await?.data;
        if joined["videoroom"] != "joined" {
            return Err(BotError::Signalling(format!("Janus answered the publisher's join with {joined}")));
        }
        let id = id_text(&janus_id(&joined, "joined")?);
        let others = joined["publishers"].as_array().map_or(0, Vec::len);
        announce("joined", json!({ "server": "janus", "room": self.room, "participant_id": id, "others": others }));

        let mut peer = ClientPeer::new(self.media_host, MEDIA_PORT, &ClientIce::default()).await?;
        let stream_id = format!("bot-{id}");
        let video = match video_rx {
            Some(_) => Some(LocalTrack::add(&peer.pc, &stream_id, Some(opts.codec)).await?),
            None => None,
        };
        let audio = LocalTrack::add(&peer.pc, &stream_id, None).await?;
        let offer = peer.pc.create_offer(None).await?;
        peer.pc.set_local_description(offer).await?;
        let offer = Jsep { kind: "offer".into(), sdp: peer.local_sdp().await? };
        let reply = self.janus.message(self.handle, json!({ "request": "publish" }), Some(offer)).await?;
        let answer = match reply.jsep {
            Some(j) if j.kind == "answer" => j.sdp,
            _ => {
                return Err(BotError::Signalling(format!(
                    "Janus answered `publish` without an SDP answer: {}",
                    reply.data
                )));
            }
        };
        let answer = RTCSessionDescription::answer(answer).map_err(BotError::signalling("Janus's answer"))?;
        peer.pc.set_remote_description(answer).await?;

        let mut pending_media = Some((video_rx, audio_rx));
        let mut pumps = Vec::new();
        tokio::pin!(stop);
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                changed = peer.state.changed() => {
                    let state = *peer.state.borrow();
                    if changed.is_err() || matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                        break Err(BotError::WebRtc(format!("the publish connection is {state}")));
                    }
                    // Media starts once DTLS is up, as in a Tessera room.
                    if state == RTCPeerConnectionState::Connected
                        && let Some((video_rx, audio_rx)) = pending_media.take()
                    {
                        let sending = video.as_ref().zip(video_rx);
                        match start_publishing(opts, &media, sending, (&audio, audio_rx), self.counters).await {
                            Ok(tasks) => pumps.extend(tasks),
                            Err(e) => break Err(e),
                        }
                        let tracks: Vec<String> = video.iter().chain([&audio]).map(|t| t.id.clone()).collect();
                        announce("published", json!({ "participant_id": id, "tracks": tracks }));
                    }
                }
                event = self.janus.next_event() => {
                    if let Err(e) = event.and_then(|e| on_event(&e)) {
                        break Err(e);
                    }
                }
            }
            if let Some(err) = media.error() {
                break Err(BotError::Media(err));
            }
        };
        for task in &pumps {
            task.abort();
        }
        let _ = peer.pc.close().await;
        outcome.map(|()| id)
    }

    /// Waits for a publisher, subscribes to all its streams and counts them until `stop`.
    /// Returns the subscriber's handle id (a subscriber has no participant id in the room).
    async fn subscribe(&mut self, stop: impl Future<Output = ()>) -> Result<String, BotError> {
        tokio::pin!(stop);
        let feed = loop {
            if let Some(feed) = self.first_publisher().await? {
                break feed;
            }
            tokio::select! {
                _ = &mut stop => return Ok(self.handle.to_string()),
                _ = tokio::time::sleep(PUBLISHER_POLL) => {}
            }
        };
        let join =
            json!({ "request": "join", "ptype": "subscriber", "room": self.room, "streams": [{ "feed": feed }] });
        let attached = self.janus.message(self.handle, join, None).await?;
        if attached.data["videoroom"] != "attached" {
            return Err(BotError::Signalling(format!("Janus answered the subscriber's join with {}", attached.data)));
        }
        announce(
            "joined",
            json!({ "server": "janus", "room": self.room, "participant_id": self.handle.to_string(), "feed": feed }),
        );
        let mut peer: Option<ClientPeer> = None;
        self.answer(&mut peer, attached.jsep).await?;

        let mut drains = Vec::new();
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                event = peer_event(&mut peer) => match event {
                    PeerEvent::Track(track) => drains.push(tokio::spawn(drain(track, Arc::clone(self.counters)))),
                    PeerEvent::State(state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) => {
                        break Err(BotError::WebRtc(format!("the subscribe connection is {state}")));
                    }
                    PeerEvent::State(_) => {}
                },
                event = self.janus.next_event() => {
                    let handled = match event {
                        // A renegotiation: Janus's new offer, answered as the first one.
                        Ok(e) if e.get("jsep").is_some_and(|j| j["type"] == "offer") => match api_jsep(&e) {
                            Ok(jsep) => self.answer(&mut peer, Some(jsep)).await,
                            Err(err) => Err(err),
                        },
                        Ok(e) => on_event(&e),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = handled {
                        break Err(e);
                    }
                }
            }
        };
        for task in &drains {
            task.abort();
        }
        if let Some(p) = peer {
            let _ = p.pc.close().await;
        }
        outcome.map(|()| self.handle.to_string())
    }

    /// The id of the first participant of the room that publishes, if any.
    async fn first_publisher(&mut self) -> Result<Option<Value>, BotError> {
        let list = json!({ "request": "listparticipants", "room": self.room });
        let reply = self.janus.message(self.handle, list, None).await?.data;
        let participants = reply["participants"].as_array().ok_or_else(|| {
            BotError::Signalling(format!("Janus answered `listparticipants` without participants: {reply}"))
        })?;
        participants.iter().find(|p| p["publisher"] == true).map(|p| janus_id(p, "listparticipants")).transpose()
    }

    /// Answers Janus's offer on the subscribe connection (made on the first offer) with `start`.
    async fn answer(&mut self, peer: &mut Option<ClientPeer>, offer: Option<Jsep>) -> Result<(), BotError> {
        let offer = match offer {
            Some(j) if j.kind == "offer" => j.sdp,
            _ => return Err(BotError::Signalling("Janus attached the subscriber without an SDP offer".into())),
        };
        let offer = RTCSessionDescription::offer(offer).map_err(BotError::signalling("Janus's offer"))?;
        if peer.is_none() {
            *peer = Some(ClientPeer::new(self.media_host, MEDIA_PORT, &ClientIce::default()).await?);
        }
        let Some(p) = peer.as_mut() else { return Err(BotError::WebRtc("no subscribe connection".into())) };
        p.pc.set_remote_description(offer).await?;
        let answer = p.pc.create_answer(None).await?;
        p.pc.set_local_description(answer).await?;
        let answer = Jsep { kind: "answer".into(), sdp: p.local_sdp().await? };
        self.janus.message(self.handle, json!({ "request": "start" }), Some(answer)).await?;
        Ok(())
    }
}

/// The JSEP of an event known to carry one.
fn api_jsep(event: &Value) -> Result<Jsep, BotError> {
    match (event["jsep"]["type"].as_str(), event["jsep"]["sdp"].as_str()) {
        (Some(kind), Some(sdp)) => Ok(Jsep { kind: kind.to_owned(), sdp: sdp.to_owned() }),
        _ => Err(BotError::Signalling("Janus sent a JSEP without type or sdp".into())),
    }
}

enum PeerEvent {
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

/// The subscribe connection's next state change or new track; never, while there is none.
async fn peer_event(peer: &mut Option<ClientPeer>) -> PeerEvent {
    let Some(p) = peer else { return std::future::pending().await };
    tokio::select! {
        changed = p.state.changed() => match changed {
            Ok(()) => PeerEvent::State(*p.state.borrow_and_update()),
            // The connection's event handler is gone: so is the connection.
            Err(_) => PeerEvent::State(RTCPeerConnectionState::Closed),
        },
        Some(track) = p.tracks.recv() => PeerEvent::Track(track),
    }
}
