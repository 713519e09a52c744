//! WHEP playback viewers (draft-ietf-wish-whep): someone who receives one participant's tracks
//! (the room's program) over a connection of its own, answered from its `recvonly` offer.
//!
//! A viewer is an audience, not a participant: it is in no room's participant list, nobody is
//! told of it (no `participant_joined`, no [`crate::RoomObserver`], not in the cascade's room
//! state), and it takes no place under `max_participants`. It holds its connection and one
//! [`DownTrack`] per track it receives, fed by the track's forwarder like a subscription's. Its
//! down tracks are attached once its connection is up (ICE and DTLS), and a keyframe is asked
//! for then, so its first video is a keyframe. It ends on `DELETE`, when its connection fails
//! or closes, when the participant it plays leaves, or when the SFU closes its viewers; each
//! end calls [`WhepSource::release`] once.

mod offer;

use offer::{OfferedCodec, offer_sections, plan_tracks};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};

use crate::codecs::same_format;
use crate::error::Error;
use crate::forward::{DownTrack, Output};
use crate::peer::{Role, advertise_public_ips, build_sfu_peer};
use crate::sfu::{Sfu, SfuInner};
use crate::sync::{lock, random_u32};
use crate::track::PublishedTrack;
use crate::transport::{Connection, ConnectionHandler};

/// Where WHEP viewers' media comes from (the binary: the room's program, started on demand).
pub trait WhepSource: Send + Sync + 'static {
    /// A viewer wants `room`: make sure its source is published and return the participant id
    /// to play (called on a blocking thread; may take seconds). Err(message) refuses (503).
    fn acquire(&self, room: &str) -> std::result::Result<String, String>;
    /// A viewer of `room` is gone (DELETE, connection failed or closed, server stopping);
    /// called once per successful acquire.
    fn release(&self, room: &str);
}

/// Why a viewer could not be made, for its HTTP answer.
#[derive(Debug)]
pub(crate) enum ViewerError {
    /// The offer cannot receive the source's codec (422).
    Codec(String),
    /// The source is not (or no longer) in the room (503).
    Unavailable(String),
    /// Anything else, with the status its kind calls for.
    Other(Error),
}

impl From<Error> for ViewerError {
    fn from(e: Error) -> Self {
        ViewerError::Other(e)
    }
}

/// One track a viewer receives.
struct ViewerTrack {
    track: Weak<PublishedTrack>,
    down: Arc<DownTrack>,
}

/// A WHEP viewer (see the module docs).
pub(crate) struct Viewer {
    pub(crate) id: String,
    pub(crate) room: String,
    /// The participant it plays.
    pub(crate) source_participant: String,
    source: Arc<dyn WhepSource>,
    sfu: Weak<SfuInner>,
    conn: Mutex<Option<Arc<Connection>>>,
    /// By the published track's id (the id of the track it is sent as).
    tracks: Mutex<HashMap<String, ViewerTrack>>,
    started: AtomicBool,
    closed: AtomicBool,
}

struct ViewerHandler {
    viewer: Weak<Viewer>,
}

impl ConnectionHandler for ViewerHandler {
    fn on_state(&self, _conn: &Arc<Connection>, state: RTCPeerConnectionState) {
        let Some(v) = self.viewer.upgrade() else { return };
        tracing::debug!(viewer = %v.id, "viewer connection {state}");
        match state {
            RTCPeerConnectionState::Connected => v.start(),
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => v.end(),
            _ => {}
        }
    }

    fn on_rtcp(&self, track_id: &str, pkts: Vec<Box<dyn rtcp::Packet>>) {
        let Some(v) = self.viewer.upgrade() else { return };
        let keyframe =
            pkts.iter().any(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>());
        if keyframe && let Some(t) = lock(&v.tracks).get(track_id).and_then(|t| t.track.upgrade()) {
            t.request_keyframe(0);
        }
    }
}

impl Viewer {
    /// The connection is up: its down tracks start, video from a keyframe asked for now.
    fn start(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let tracks: Vec<(Arc<PublishedTrack>, Arc<DownTrack>)> =
            lock(&self.tracks).values().filter_map(|t| Some((t.track.upgrade()?, Arc::clone(&t.down)))).collect();
        for (track, down) in tracks {
            track.forwarder.add_down(down);
            if track.forwarder_is_video() {
                track.request_keyframe(0);
            }
        }
        tracing::info!(room = %self.room, viewer = %self.id, source = %self.source_participant, "WHEP viewer started");
    }

    /// Ends the viewer (once): its down tracks stop, its connection closes, the source is
    /// released.
    pub(crate) fn end(self: &Arc<Self>) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(sfu) = self.sfu.upgrade() {
            lock(&sfu.viewers).remove(&self.id);
        }
        let tracks: Vec<ViewerTrack> = lock(&self.tracks).drain().map(|(_, t)| t).collect();
        for t in tracks {
            if let Some(track) = t.track.upgrade() {
                track.forwarder.remove_down(&self.id);
            }
        }
        let conn = lock(&self.conn).take();
        if let Some(conn) = conn {
            conn.close();
        }
        tracing::info!(room = %self.room, viewer = %self.id, "WHEP viewer ended");
        release(Arc::clone(&self.source), self.room.clone());
    }
}

/// Calls `source.release(room)` on a blocking thread (or here, outside a runtime).
pub(crate) fn release(source: Arc<dyn WhepSource>, room: String) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(move || source.release(&room));
        }
        Err(_) => source.release(&room),
    }
}

impl Sfu {
    /// Where WHEP viewers' media comes from; without one, `POST /whep/{room}` answers 503.
    /// A later call replaces it (viewers already playing release the source they acquired).
    pub fn set_whep_source(&self, source: Arc<dyn WhepSource>) {
        *lock(&self.inner.whep_source) = Some(source);
    }

    pub(crate) fn whep_source(&self) -> Option<Arc<dyn WhepSource>> {
        lock(&self.inner.whep_source).clone()
    }

    /// The WHEP viewers of `room` now, by id.
    pub fn whep_viewers(&self, room: &str) -> Vec<String> {
        lock(&self.inner.viewers).values().filter(|v| v.room == room).map(|v| v.id.clone()).collect()
    }

    /// Ends every WHEP viewer (the server is stopping); each releases its source.
    pub fn close_whep_viewers(&self) {
        let all: Vec<Arc<Viewer>> = lock(&self.inner.viewers).values().cloned().collect();
        for v in all {
            v.end();
        }
    }

    /// Ends the viewer `id` of `room`; false when there is none.
    pub(crate) fn end_viewer(&self, room: &str, id: &str) -> bool {
        let v = lock(&self.inner.viewers).get(id).filter(|v| v.room == room).cloned();
        v.map(|v| v.end()).is_some()
    }

    /// The participant `participant` left: the viewers that play it end.
    pub(crate) fn end_viewers_of(&self, participant: &str) {
        let theirs: Vec<Arc<Viewer>> =
            lock(&self.inner.viewers).values().filter(|v| v.source_participant == participant).cloned().collect();
        for v in theirs {
            v.end();
        }
    }

    /// Makes a viewer of `room` playing participant `source_participant` (acquired from
    /// `source`) for the client's `offer`; returns it and our answer (with our candidates).
    /// On error nothing is left behind, and releasing the source is the caller's.
    pub(crate) fn start_viewer(
        &self,
        room: &str,
        source: Arc<dyn WhepSource>,
        source_participant: &str,
        offer: String,
    ) -> std::result::Result<(Arc<Viewer>, String), ViewerError> {
        let unavailable = || ViewerError::Unavailable(format!("{source_participant} is not publishing in {room}"));
        let publisher = self
            .get_room(room)
            .and_then(|r| r.participants().into_iter().find(|p| p.id == source_participant))
            .filter(|p| !p.is_closed())
            .ok_or_else(unavailable)?;
        let mut published = publisher.tracks();
        // Audio first, then video: the usual order of an offer's sections.
        published.sort_by_key(|t| (t.forwarder_is_video(), t.id.clone()));
        if published.is_empty() {
            return Err(unavailable());
        }
        let sections = offer_sections(&offer);
        let plan = plan_tracks(&sections, &published).map_err(ViewerError::Codec)?;

        let transport = self.transport()?;
        let (peer, ufrag) = build_sfu_peer(Arc::clone(&self.inner.counters), Role::SendOnly)?;
        let viewer = Arc::new(Viewer {
            id: self.next_id("VW_"),
            room: room.to_owned(),
            source_participant: source_participant.to_owned(),
            source,
            sfu: Arc::downgrade(&self.inner),
            conn: Mutex::new(None),
            tracks: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let handler = Box::new(ViewerHandler { viewer: Arc::downgrade(&viewer) });
        let conn = Connection::open(transport, peer, &ufrag, handler)?;
        *lock(&viewer.conn) = Some(Arc::clone(&conn));
        let fail = |e: ViewerError| {
            // Not registered yet: closing it is all (the caller releases the source).
            viewer.closed.store(true, Ordering::Release);
            conn.close();
            e
        };

        let mut locals = Vec::new();
        let mut ssrcs = Vec::new();
        for (track, offered) in &plan {
            let ssrc = random_u32();
            let kind = if track.forwarder_is_video() { RtpCodecKind::Video } else { RtpCodecKind::Audio };
            // The client's own format of the codec: `rtc` answers with the payload type it
            // offered for it.
            let codec = RTCRtpCodec { sdp_fmtp_line: offered.fmtp.clone(), ..track.codec.clone() };
            locals.push(MediaStreamTrack::new(
                format!("{}-{}", track.participant_id, track.id),
                track.id.clone(),
                track.id.clone(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                    codec,
                    ..Default::default()
                }],
            ));
            ssrcs.push(ssrc);
        }
        let (answer, senders) = conn.answer_with_tracks(offer, locals).map_err(|e| fail(e.into()))?;
        for (((track, offered), sender), ssrc) in plan.iter().zip(senders).zip(ssrcs) {
            let pt = negotiated_pt(&conn, sender, offered).ok_or_else(|| {
                fail(ViewerError::Codec(format!(
                    "{} could not be negotiated as payload type {}",
                    track.codec.mime_type, offered.pt
                )))
            })?;
            let out = Arc::clone(&conn);
            let output = Output::Callback(Box::new(move |p, _| out.write_rtp(sender, p)));
            let down = Arc::new(DownTrack::new(viewer.id.clone(), ssrc, pt, track.codec.clock_rate, output));
            lock(&viewer.tracks).insert(track.id.clone(), ViewerTrack { track: Arc::downgrade(track), down });
        }
        // The source may have left meanwhile: its leave ended the viewers it found.
        lock(&self.inner.viewers).insert(viewer.id.clone(), Arc::clone(&viewer));
        if publisher.is_closed() {
            viewer.closed.store(true, Ordering::Release);
            lock(&self.inner.viewers).remove(&viewer.id);
            conn.close();
            return Err(unavailable());
        }
        tracing::info!(room, viewer = %viewer.id, source = source_participant, "WHEP viewer answered");
        let answer = advertise_public_ips(&answer, &self.inner.config);
        Ok((viewer, answer))
    }
}

/// The payload type a sender goes out as: the one chosen from the offer when `rtc`
/// negotiated it, else its negotiated codec of the same format.
fn negotiated_pt(conn: &Connection, sender: RTCRtpSenderId, offered: &OfferedCodec) -> Option<u8> {
    let codecs = conn.sender_codecs(sender);
    if codecs.iter().any(|c| c.payload_type == offered.pt) {
        return Some(offered.pt);
    }
    let want = offered.codec();
    codecs.iter().find(|c| same_format(&c.rtp_codec, &want)).map(|c| c.payload_type)
}
