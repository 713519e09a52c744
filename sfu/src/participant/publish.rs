//! The participant's own tracks: opened as their RTP arrives on the publish connection,
//! forwarded packet by packet, handed to the room's program, muted, and unpublished.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::shared::marshal::Marshal;
use rtc::{rtcp, rtp};
use tokio::sync::mpsc;

use super::{Inbound, Participant};
use crate::core::parse_audio_level;
use crate::error::{Error, Result};
use crate::forward::{DownTrack, Output, TrackForwarder};
use crate::handoff::{HandoffEvent, KeyframeRequester, MediaGate, TrackInfo, TrackSource};
use crate::peer::{AUDIO_LEVEL_URI, extmap_id, simulcast_rids};
use crate::room::Room;
use crate::signal::ServerMessage;
use crate::sync::{lock, random_u32};
use crate::track::{PublishedTrack, default_pt, spawn_keyframe_requests};
use crate::transport::{Connection, TrackOpen};

impl Participant {
    /// Mutes or unmutes one of my tracks and tells the room.
    pub fn set_muted(&self, track_id: &str, muted: bool) -> Result<()> {
        let t =
            lock(&self.tracks).get(track_id).cloned().ok_or_else(|| Error::NotFound(format!("track {track_id}")))?;
        t.muted.store(muted, Ordering::Relaxed);
        if let Some(sfu) = self.room.upgrade().and_then(|r| r.sfu())
            && self.node.is_none()
        {
            sfu.local_room_changed(&self.room.upgrade().map(|r| r.name.clone()).unwrap_or_default());
        }
        if let Some(room) = self.room.upgrade() {
            room.broadcast(
                &ServerMessage::Mute { track_id: track_id.to_owned(), participant_id: self.id.clone(), muted },
                Some(&self.id),
            );
        }
        Ok(())
    }

    /// A remote track's first packet arrived (or a new simulcast layer's): publishes it.
    pub(crate) fn on_track_open(self: &Arc<Self>, conn: &Arc<Connection>, open: TrackOpen) {
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
            relayed_from: None,
            local: None,
            in_process: false,
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
        if let Some(cascade) = sfu.cascade() {
            cascade.relay_local_track(&room.name, &track);
        }
        sfu.local_room_changed(&room.name);
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
    pub(crate) fn on_track_closed(self: &Arc<Self>, track_id: &str) {
        let Some(gone) = lock(&self.inbound).remove(track_id) else { return };
        let me = Arc::clone(self);
        tokio::spawn(async move { me.unpublish(&gone.track.id).await });
    }

    /// A published track's packet, read from the socket at `now`: forwarded at once.
    pub(crate) fn on_rtp(&self, track_id: &str, pkt: rtp::Packet, now: Instant) {
        let Some((track, level_id)) = lock(&self.inbound).get(track_id).map(|i| (Arc::clone(&i.track), i.level_id))
        else {
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
    pub(crate) fn on_publisher_rtcp(&self, track_id: &str, pkts: &[Box<dyn rtcp::Packet>]) {
        let Some(track) = lock(&self.inbound).get(track_id).map(|i| Arc::clone(&i.track)) else { return };
        let Some(room) = self.room.upgrade() else { return };
        for p in pkts {
            if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                track.on_sender_report(sr, &room);
                if let Some(cascade) = room.sfu().and_then(|s| s.cascade()) {
                    cascade.relay_sender_report(&track, sr);
                }
            }
        }
    }

    pub(crate) fn attach_handoff(&self, room: &Arc<Room>, track: &Arc<PublishedTrack>) {
        // The room's program publishing into the room: handing its tracks to the program
        // would have it composite itself, a feedback loop.
        if track.in_process {
            return;
        }
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
        h.push(&room.name, HandoffEvent::Published(info.clone(), KeyframeRequester { tx: ktx, gate: gate.clone() }));
        let program_wants = gate.clone();
        let id: Arc<str> = Arc::from(track.id.as_str());
        // The room's lane, looked up once: each packet goes straight into its queue.
        let h2 = Arc::clone(h.lane(&room.name));
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
        )
        .with_wanted(move || program_wants.is_open());
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
        if let Some(sfu) = room.sfu() {
            if let Some(cascade) = sfu.cascade() {
                cascade.forget_track(&track);
            }
            if self.node.is_none() {
                sfu.local_room_changed(&room.name);
            }
        }
        if let (Some(info), Some(h)) =
            (lock(&track.handoff_info).take(), room.sfu.upgrade().and_then(|s| s.handoff.clone()))
        {
            if self.lost.load(std::sync::atomic::Ordering::Relaxed) {
                h.push(&room.name, HandoffEvent::Lost(info));
            } else {
                h.push(&room.name, HandoffEvent::Unpublished(info));
            }
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
}
