//! A test client: what a browser on the web client does, with two `rtc` peer connection cores
//! (publish and subscribe, as `build_client_peer` sets them up) driven by the harness instead
//! of sockets, and the participant's signalling called directly (its outbox read as the
//! WebSocket handler would).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::mpsc;

use super::media::{Media, Pace, Stream, is_keyframe, next_packet};
use crate::codecs::{codec_list, register_codecs};
use crate::participant::Participant;
use crate::peer::{AUDIO_LEVEL_URI, Role, engines_with_codecs};
use crate::signal::{Candidate, ServerMessage, Target, TrackDecl};
use crate::sync::random_u32;

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// An RTP packet a client received on its subscribe connection, decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The track it arrived on (the SFU names a subscriber's tracks by their server ids).
    pub track_id: String,
    /// When (the network's time).
    pub at: Instant,
    pub packet: rtp::Packet,
}

/// One of a client's peer connections.
pub(crate) struct Peer {
    pub core: RTCPeerConnection,
    /// Its address on the network (its only host candidate).
    pub addr: SocketAddr,
    pub state: RTCPeerConnectionState,
}

impl Peer {
    /// A core with `codecs` and the SFU's extensions and interceptors (those of
    /// `build_client_peer`) at `addr`; with `gathered`, its host candidate is in its SDP,
    /// otherwise the client trickles it (see [`Client::trickle`]).
    fn new(addr: SocketAddr, now: Instant, codecs: MediaEngine, gathered: bool) -> Peer {
        let (me, registry) = engines_with_codecs(codecs, None, Role::Both).expect("media engine");
        let se = SettingEngineBuilder::new().with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        let core = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(se.build())
            .with_interceptor_registry(registry)
            .build(now)
            .expect("client core");
        let mut peer = Peer { core, addr, state: RTCPeerConnectionState::New };
        if gathered {
            peer.gather();
        }
        peer
    }

    /// Adds its host candidate, and the end of candidates; returns the candidate.
    fn gather(&mut self) -> RTCIceCandidateInit {
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.addr.ip().to_string(),
                port: self.addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .expect("host candidate");
        let init = RTCIceCandidate::from(&host).to_json().expect("candidate");
        self.core.add_local_candidate(init.clone()).expect("local candidate");
        self.core.add_local_candidate(RTCIceCandidateInit::default()).expect("end of candidates");
        init
    }

    pub(crate) fn connected(&self) -> bool {
        self.state == RTCPeerConnectionState::Connected
    }

    /// A datagram from the SFU at `from`.
    pub(crate) fn receive(&mut self, from: SocketAddr, data: bytes::BytesMut, now: Instant) {
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        };
        if let Err(e) = self.core.handle_read(msg) {
            tracing::debug!(addr = %self.addr, "client rejected a datagram: {e}");
        }
    }
}

/// A track the client publishes: its sender, streams (one per layer) and negotiated numbers.
struct Outgoing {
    media: Media,
    sender: RTCRtpSenderId,
    streams: Vec<Stream>,
    pace: Pace,
    pt: Option<u8>,
    /// Extension ids: MID (with the m-section's mid), RID, audio level.
    mid: Option<(u8, String)>,
    rid: Option<u8>,
    level: Option<u8>,
}

/// A participant's client.
pub struct Client {
    /// Its display name.
    pub name: String,
    /// Its participant in the room (the signalling's API is called on it directly).
    pub participant: Arc<Participant>,
    outbox: mpsc::UnboundedReceiver<ServerMessage>,
    /// Everything the SFU sent it, in order.
    pub messages: Vec<ServerMessage>,
    /// Subscribe offers are answered as they arrive, as a browser does; when false they wait
    /// in [`Client::held_offers`] until [`super::Net::answer_held`].
    pub auto_answer: bool,
    pub(crate) held: Vec<String>,
    pub(crate) publish: Option<Peer>,
    pub(crate) subscribe: Option<Peer>,
    /// The first of its two addresses (publish; subscribe is the next port).
    base: SocketAddr,
    tracks: Vec<Outgoing>,
    /// The RTP it received, in order.
    pub received: Vec<Received>,
    /// The SSRCs its publish connection was asked for keyframes of (PLI/FIR), in order.
    pub keyframe_requests: Vec<u32>,
    /// The audio level its audio tracks send (RFC 6464: 0 loudest, 127 silence).
    pub audio_level: u8,
    /// Whether it still sends (not after leaving).
    pub(crate) active: bool,
    /// Its publish connection's candidate is trickled (`add_candidate` after the answer)
    /// instead of being in its offer.
    pub trickle: bool,
    /// Its received video tracks: receiver, whether a keyframe came (it can decode), when it
    /// last asked for one.
    video_in: HashMap<String, VideoIn>,
    /// Keyframe requests (PLI) it sent, as a browser does until a track's first keyframe.
    pub plis_sent: usize,
}

struct VideoIn {
    receiver: RTCRtpReceiverId,
    decoding: bool,
    asked: Option<Instant>,
}

/// How often a client asks again for a keyframe it waits for.
const PLI_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

impl Client {
    pub(crate) fn new(
        name: &str,
        participant: Arc<Participant>,
        outbox: mpsc::UnboundedReceiver<ServerMessage>,
        base: SocketAddr,
    ) -> Client {
        Client {
            name: name.to_owned(),
            participant,
            outbox,
            messages: Vec::new(),
            auto_answer: true,
            held: Vec::new(),
            publish: None,
            subscribe: None,
            base,
            tracks: Vec::new(),
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            audio_level: 30,
            active: true,
            trickle: false,
            video_in: HashMap::new(),
            plis_sent: 0,
        }
    }

    /// The subscribe offers waiting for an answer (with `auto_answer` off).
    pub fn held_offers(&self) -> &[String] {
        &self.held
    }

    /// The RTP received on one track (by its server id).
    pub fn received_on(&self, track_id: &str) -> Vec<&rtp::Packet> {
        self.received.iter().filter(|r| r.track_id == track_id).map(|r| &r.packet).collect()
    }

    /// The messages it got that `pick` selects.
    pub fn messages_of<T>(&self, pick: impl Fn(&ServerMessage) -> Option<T>) -> Vec<T> {
        self.messages.iter().filter_map(pick).collect()
    }

    /// How many subscribe offers it got so far.
    pub fn subscribe_offers(&self) -> usize {
        self.messages_of(|m| matches!(m, ServerMessage::SubscribeOffer { .. }).then_some(())).len()
    }

    /// Whether both of its connections that exist are connected (and at least one does).
    pub fn connected(&self) -> bool {
        let peers: Vec<&Peer> = self.peers().collect();
        !peers.is_empty() && peers.iter().all(|p| p.connected())
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.publish.iter().chain(self.subscribe.iter())
    }

    pub(crate) fn peers_mut(&mut self) -> impl Iterator<Item = &mut Peer> {
        self.publish.iter_mut().chain(self.subscribe.iter_mut())
    }

    pub(crate) fn peer_at(&mut self, addr: SocketAddr) -> Option<&mut Peer> {
        self.peers_mut().find(|p| p.addr == addr)
    }

    /// The messages the SFU queued for it since the last call.
    pub(crate) fn take_outbox(&mut self) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        while let Ok(m) = self.outbox.try_recv() {
            self.messages.push(m.clone());
            out.push(m);
        }
        out
    }

    /// Adds `media` to its publish connection and negotiates it (offer, the SFU's answer).
    pub(crate) async fn publish(&mut self, media: Vec<Media>, now: Instant) {
        let base = self.base;
        let gathered = !self.trickle;
        let new = self.publish.is_none();
        let peer = self.publish.get_or_insert_with(|| Peer::new(base, now, publisher_codecs(), gathered));
        let mut decls = Vec::new();
        for m in media {
            let kind = if m.is_video() { RtpCodecKind::Video } else { RtpCodecKind::Audio };
            let mime = if m.is_video() { "video/VP8" } else { "audio/opus" };
            let codec = codec_list()
                .into_iter()
                .find(|(c, _)| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|(c, _)| c.rtp_codec)
                .expect("codec");
            let rids: Vec<Option<String>> =
                if m.is_video() { m.layers.iter().map(|l| l.rid.clone()).collect() } else { vec![None] };
            let streams: Vec<Stream> = rids
                .iter()
                .map(|_| Stream { ssrc: random_u32(), seq: 1, timestamp: random_u32(), keyframe_due: true })
                .collect();
            let encodings = rids
                .iter()
                .zip(&streams)
                .map(|(rid, s)| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: rid.clone().unwrap_or_default(),
                        ssrc: Some(s.ssrc),
                        ..Default::default()
                    },
                    codec: codec.clone(),
                    ..Default::default()
                })
                .collect();
            let track = MediaStreamTrack::new(self.name.clone(), m.id.clone(), m.id.clone(), kind, encodings);
            let sender = peer.core.add_track(track).expect("add track");
            decls.push(TrackDecl { track_id: m.id.clone(), source: m.source });
            let pace = Pace { next: now, every: m.spacing() };
            self.tracks.push(Outgoing { media: m, sender, streams, pace, pt: None, mid: None, rid: None, level: None });
        }
        let offer = peer.core.create_offer(None).expect("publish offer");
        peer.core.set_local_description(now, offer).expect("local offer");
        let sdp = peer.core.local_description().expect("offer").sdp;
        let answer =
            self.participant.publish_offer(sdp.clone(), decls).await.expect("the SFU answers the publish offer");
        let answer = RTCSessionDescription::answer(answer).expect("answer SDP");
        peer.core.set_remote_description(now, answer).expect("the SFU's answer applies");
        if new && !gathered {
            let c = peer.gather();
            // As a browser names it: the first m-section (the connection is bundled).
            let c = Candidate { candidate: c.candidate, sdp_mid: Some("0".to_owned()), sdp_mline_index: Some(0) };
            self.participant.add_candidate(Target::Publish, c).await.expect("the SFU takes the candidate");
            let end = Candidate { candidate: String::new(), sdp_mid: None, sdp_mline_index: None };
            self.participant.add_candidate(Target::Publish, end).await.expect("end of candidates");
        }
        for t in &mut self.tracks {
            let Some(mut s) = peer.core.rtp_sender(t.sender) else { continue };
            let params = s.get_parameters();
            t.pt = params.rtp_parameters.codecs.first().map(|c| c.payload_type);
            let ext =
                |uri: &str| params.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
            t.mid = ext(MID_URI).zip(mid_of(&sdp, &t.media.id));
            t.rid = ext(RID_URI);
            t.level = ext(AUDIO_LEVEL_URI);
        }
    }

    /// Answers a subscribe offer on its subscribe connection (made on the first).
    pub(crate) async fn answer(&mut self, offer: String, now: Instant) {
        let addr = SocketAddr::new(self.base.ip(), self.base.port() + 1);
        let peer = self.subscribe.get_or_insert_with(|| {
            let mut codecs = MediaEngine::default();
            register_codecs(&mut codecs).expect("codecs");
            Peer::new(addr, now, codecs, true)
        });
        let offer = RTCSessionDescription::offer(offer).expect("offer SDP");
        peer.core.set_remote_description(now, offer).expect("the SFU's offer applies");
        let answer = peer.core.create_answer(None).expect("subscribe answer");
        peer.core.set_local_description(now, answer).expect("local answer");
        let sdp = peer.core.local_description().expect("answer").sdp;
        self.participant.subscribe_answer(sdp).await.expect("the SFU takes the answer");
    }

    /// Sends every packet due at `now` (once its publish connection is up); returns how many.
    pub(crate) fn send_due(&mut self, now: Instant) -> usize {
        let Some(peer) = self.publish.as_mut().filter(|p| p.connected() && self.active) else { return 0 };
        let mut sent = 0;
        for t in &mut self.tracks {
            let Some(pt) = t.pt else { continue };
            while t.pace.due(now) {
                for (layer, s) in t.streams.iter_mut().enumerate() {
                    let mut p = next_packet(&t.media, layer, s, pt);
                    if let Some((id, mid)) = &t.mid {
                        let _ = p.header.set_extension(*id, Bytes::from(mid.clone().into_bytes()));
                    }
                    if let (Some(id), Some(rid)) = (t.rid, t.media.layers.get(layer).and_then(|l| l.rid.clone())) {
                        let _ = p.header.set_extension(id, Bytes::from(rid.into_bytes()));
                    }
                    if let Some(id) = t.level {
                        let _ = p.header.set_extension(id, Bytes::from(vec![0x80 | self.audio_level.min(127)]));
                    }
                    if let Some(mut sender) = peer.core.rtp_sender(t.sender) {
                        match sender.write_rtp(now, p) {
                            Ok(()) => sent += 1,
                            Err(e) => tracing::debug!("client write: {e}"),
                        }
                    }
                }
            }
        }
        sent
    }

    /// When it sends its next packet (none before its publish connection is up).
    pub(crate) fn next_send(&self) -> Option<Instant> {
        if !self.active || !self.publish.as_ref().is_some_and(Peer::connected) {
            return None;
        }
        self.tracks.iter().filter(|t| t.pt.is_some()).map(|t| t.pace.next).min()
    }

    /// Takes in what its cores produced for the application: state changes, received RTP,
    /// keyframe requests.
    pub(crate) fn poll(&mut self, now: Instant) {
        let mut pli = Vec::new();
        let publishes = self.publish.is_some();
        for (i, peer) in self.publish.iter_mut().chain(self.subscribe.iter_mut()).enumerate() {
            while let Some(e) = peer.core.poll_event() {
                match e {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => peer.state = s,
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let video = peer
                            .core
                            .rtp_receiver(init.receiver_id)
                            .is_some_and(|r| r.track().kind() == RtpCodecKind::Video);
                        if video {
                            let v = VideoIn { receiver: init.receiver_id, decoding: false, asked: None };
                            self.video_in.insert(init.track_id.clone(), v);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(m) = peer.core.poll_read() {
                match m.message {
                    RTCMessage::RtpPacket(track_id, packet) => {
                        // A browser's decoder waits for a keyframe, and asks for one meanwhile.
                        if let Some(v) = self.video_in.get_mut(&track_id) {
                            v.decoding |= is_keyframe(&packet.payload);
                            if !v.decoding && v.asked.is_none_or(|t| now >= t + PLI_INTERVAL) {
                                v.asked = Some(now);
                                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: packet.header.ssrc };
                                if let Some(mut r) = peer.core.rtp_receiver(v.receiver)
                                    && r.write_rtcp(now, vec![Box::new(pli)]).is_ok()
                                {
                                    self.plis_sent += 1;
                                }
                            }
                        }
                        self.received.push(Received { track_id, at: now, packet });
                    }
                    RTCMessage::RtcpPacket(_, pkts) if i == 0 && publishes => {
                        for p in pkts {
                            let a = p.as_any();
                            if let Some(p) = a.downcast_ref::<PictureLossIndication>() {
                                pli.push(p.media_ssrc);
                            } else if let Some(f) = a.downcast_ref::<FullIntraRequest>() {
                                pli.extend(f.fir.iter().map(|e| e.ssrc));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for ssrc in pli {
            self.keyframe_requests.push(ssrc);
            for s in self.tracks.iter_mut().flat_map(|t| t.streams.iter_mut()) {
                if s.ssrc == ssrc {
                    s.keyframe_due = true;
                }
            }
        }
    }

    /// The SSRC it sends a layer of one of its tracks with.
    pub fn ssrc_of(&self, media_id: &str, layer: usize) -> Option<u32> {
        self.tracks.iter().find(|t| t.media.id == media_id)?.streams.get(layer).map(|s| s.ssrc)
    }
}

/// Opus, VP8 and VP8's RTX on payload types other than the SFU's (Firefox's numbers), so that
/// what reaches a subscriber shows the SFU rewrote them. A client receives on the SFU's.
fn publisher_codecs() -> MediaEngine {
    let mut me = MediaEngine::default();
    for (mut c, kind) in codec_list() {
        let (pt, fmtp) = match (c.rtp_codec.mime_type.to_ascii_lowercase().as_str(), c.payload_type) {
            ("audio/opus", _) => (109, None),
            ("video/vp8", _) => (120, None),
            ("video/rtx", 97) => (124, Some("apt=120")),
            _ => continue,
        };
        c.payload_type = pt;
        if let Some(f) = fmtp {
            c.rtp_codec.sdp_fmtp_line = f.to_owned();
        }
        me.register_codec(c, kind).expect("codec");
    }
    me
}

/// The `a=mid` of the m-section whose `a=msid` names `track_id`.
fn mid_of(sdp: &str, track_id: &str) -> Option<String> {
    sdp.split("\nm=").find_map(|section| {
        let lines = || section.lines().map(str::trim);
        lines()
            .any(|l| l.strip_prefix("a=msid:").and_then(|m| m.split_whitespace().nth(1)) == Some(track_id))
            .then_some(())?;
        lines().find_map(|l| l.strip_prefix("a=mid:")).map(str::to_owned)
    })
}
