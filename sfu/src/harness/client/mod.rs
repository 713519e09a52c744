//! A test client: what a browser on the web client does, with two `rtc` peer connections
//! (publish and subscribe, as `build_client_peer` sets them up) driven by the harness instead
//! of sockets, and the participant's signalling called directly (its outbox read as the
//! WebSocket handler would).
//!
//! - this file: the [`Client`], what it receives (RTP, keyframe requests, the SFU's messages)
//!   and its answers to subscribe offers;
//! - `publish.rs`: what it publishes, negotiated and sent;
//! - `peer.rs`: one of its peer connections.

mod peer;
mod publish;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use tokio::sync::mpsc;

pub(crate) use peer::Peer;
use publish::Outgoing;

use crate::codecs::{codec_list, register_codecs};
use crate::core::keyframe::VideoCodec;
use crate::participant::Participant;
use crate::signal::ServerMessage;

/// An RTP packet a client received on its subscribe connection, decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The track it arrived on (the SFU names a subscriber's tracks by their server ids).
    pub track_id: String,
    /// When (the network's time).
    pub at: Instant,
    pub packet: rtp::Packet,
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
    /// Answers a subscribe offer on its subscribe connection (made on the first).
    pub(crate) async fn answer(&mut self, offer: String, now: Instant) {
        let addr = SocketAddr::new(self.base.ip(), self.base.port() + 1);
        let peer = self.subscribe.get_or_insert_with(|| {
            let mut codecs = MediaEngine::default();
            register_codecs(&mut codecs).expect("codecs");
            Peer::new(addr, now, codecs, true)
        });
        let offer = RTCSessionDescription::offer(offer).expect("offer SDP");
        peer.pc.set_remote_description(now, offer).expect("the SFU's offer applies");
        let answer = peer.pc.create_answer(None).expect("subscribe answer");
        peer.pc.set_local_description(now, answer).expect("local answer");
        let sdp = peer.pc.local_description().expect("answer").sdp;
        self.participant.subscribe_answer(sdp).await.expect("the SFU takes the answer");
    }

    /// Asks for a keyframe of a video track it receives (by its server id), as a browser's
    /// decoder does after a loss: a PLI on its subscribe connection. Whether it went out.
    pub fn send_pli(&mut self, track_id: &str, now: Instant) -> bool {
        let ssrc = self.received.iter().rev().find(|r| r.track_id == track_id).map(|r| r.packet.header.ssrc);
        let (Some(ssrc), Some(v), Some(peer)) = (ssrc, self.video_in.get(track_id), self.subscribe.as_mut()) else {
            return false;
        };
        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
        peer.pc.rtp_receiver(v.receiver).is_some_and(|mut r| r.write_rtcp(now, vec![Box::new(pli)]).is_ok())
    }

    /// Takes in what its peer connections produced for the application: state changes,
    /// received RTP, keyframe requests.
    pub(crate) fn poll(&mut self, now: Instant) {
        let mut pli = Vec::new();
        let publishes = self.publish.is_some();
        for (i, peer) in self.publish.iter_mut().chain(self.subscribe.iter_mut()).enumerate() {
            while let Some(e) = peer.pc.poll_event() {
                match e {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => peer.state = s,
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let video = peer
                            .pc
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
            while let Some(m) = peer.pc.poll_read() {
                match m.message {
                    RTCMessage::RtpPacket(track_id, packet) => {
                        // A browser's decoder waits for a keyframe, and asks for one meanwhile.
                        if let Some(v) = self.video_in.get_mut(&track_id) {
                            v.decoding |= starts_keyframe(packet.header.payload_type, &packet.payload);
                            if !v.decoding && v.asked.is_none_or(|t| now >= t + PLI_INTERVAL) {
                                v.asked = Some(now);
                                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: packet.header.ssrc };
                                if let Some(mut r) = peer.pc.rtp_receiver(v.receiver)
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
            self.keyframe_requested(ssrc);
        }
    }
}

/// Whether a received payload starts a keyframe, by the codec of its payload type (the client
/// registered the SFU's codecs, so the SFU's offers keep their types): the harness's VP8
/// frames, or H.264 from a local publisher.
fn starts_keyframe(payload_type: u8, payload: &[u8]) -> bool {
    codec_list()
        .iter()
        .find(|(c, _)| c.payload_type == payload_type)
        .and_then(|(c, _)| VideoCodec::from_mime(&c.rtp_codec.mime_type))
        .is_some_and(|codec| crate::core::is_keyframe(codec, payload))
}
