//! Other nodes' participants in this node's rooms: created, changed and removed as their node's
//! part of the room changes ([`NodeRoomState`]), and their tracks fed from the relay link.
//! To this node's clients and program they are participants like any other; their `node`
//! says where they are hosted.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;
use tokio::sync::mpsc;

use super::state::{NodeRoomState, RemoteParticipant, RemoteTrack};
use super::{Cascade, RelaySource};
use crate::core::parse_audio_level;
use crate::forward::TrackForwarder;
use crate::participant::Participant;
use crate::room::Room;
use crate::sfu::Sfu;
use crate::signal::ServerMessage;
use crate::sync::{lock, read, write};
use crate::track::{PublishedTrack, spawn_keyframe_requests};

/// Another node's track layer, as received here.
pub(crate) struct RemoteEntry {
    pub(crate) room: Weak<Room>,
    pub(crate) participant: String,
    pub(crate) track: Weak<PublishedTrack>,
    pub(crate) layer: usize,
    pub(crate) level_id: Option<u8>,
}

impl Cascade {
    /// Applies `node`'s part of `room` (an empty state: the node has left the room).
    pub(crate) fn apply(&self, sfu: &Sfu, room_name: &str, node: &str, state: NodeRoomState) {
        let before = lock(&self.applied).get(room_name).and_then(|r| r.get(node)).cloned().unwrap_or_default();
        if before == state {
            return;
        }
        let room = sfu.room(room_name);
        let old: HashMap<&str, &RemoteParticipant> = before.participants.iter().map(|p| (p.id.as_str(), p)).collect();
        let new: HashMap<&str, &RemoteParticipant> = state.participants.iter().map(|p| (p.id.as_str(), p)).collect();
        for (id, _) in old.iter().filter(|(id, _)| !new.contains_key(*id)) {
            if let Some(p) = lock(&room.participants).get(*id).cloned() {
                tokio::spawn(async move { p.leave().await });
            }
        }
        for (id, p) in &new {
            let existing = lock(&room.participants).get(*id).cloned();
            let participant = match existing {
                Some(e) if e.node.as_deref() == Some(node) => e,
                Some(_) => continue,
                None => self.add_participant(&room, node, p),
            };
            let old_tracks: Vec<&RemoteTrack> = old.get(id).map(|o| o.tracks.iter().collect()).unwrap_or_default();
            for t in &p.tracks {
                match old_tracks.iter().find(|o| o.id == t.id) {
                    Some(o) if o.layers == t.layers => {
                        if o.muted != t.muted {
                            let _ = participant.set_muted(&t.id, t.muted);
                        }
                    }
                    _ => self.add_track(&room, node, &participant, t),
                }
            }
            for o in old_tracks.iter().filter(|o| !p.tracks.iter().any(|t| t.id == o.id)) {
                let (participant, id) = (Arc::clone(&participant), o.id.clone());
                tokio::spawn(async move { participant.unpublish(&id).await });
            }
        }
        let mut applied = lock(&self.applied);
        let nodes = applied.entry(room_name.to_owned()).or_default();
        if state.participants.is_empty() {
            nodes.remove(node);
        } else {
            nodes.insert(node.to_owned(), state);
        }
        if nodes.is_empty() {
            applied.remove(room_name);
        }
        drop(applied);
        if room.participants().is_empty() {
            sfu.remove_room_if_empty(room_name);
        }
    }

    /// `node` died: its participants of `room` are marked lost, then leave.
    pub(crate) fn node_lost(&self, sfu: &Sfu, room_name: &str, node: &str) {
        if let Some(room) = sfu.get_room(room_name) {
            for p in room.participants().iter().filter(|p| p.node.as_deref() == Some(node)) {
                p.lost.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.apply(sfu, room_name, node, NodeRoomState::default());
    }

    fn add_participant(&self, room: &Arc<Room>, node: &str, p: &RemoteParticipant) -> Arc<Participant> {
        let mut participant = Participant::new(
            p.id.clone(),
            p.name.clone(),
            p.identity.clone(),
            Arc::downgrade(room),
            None,
            Some(node.to_owned()),
        );
        participant.in_process = p.in_process;
        let participant = Arc::new(participant);
        lock(&room.participants).insert(p.id.clone(), Arc::clone(&participant));
        room.broadcast(&ServerMessage::ParticipantJoined { participant: participant.info() }, Some(&p.id));
        tracing::info!(room = %room.name, participant = %p.id, node, "joined on another node");
        participant
    }

    fn add_track(&self, room: &Arc<Room>, node: &str, participant: &Arc<Participant>, t: &RemoteTrack) {
        if lock(&participant.tracks).contains_key(&t.id) || t.layers.is_empty() {
            return;
        }
        let rids: Vec<String> =
            if t.layers.len() > 1 { (0..t.layers.len()).map(|i| i.to_string()).collect() } else { Vec::new() };
        let (ktx, krx) = mpsc::unbounded_channel();
        let track = Arc::new(PublishedTrack {
            id: t.id.clone(),
            participant_id: participant.id.clone(),
            source: t.source,
            forwarder: TrackForwarder::new(&t.mime_type, rids),
            codec: t.codec(),
            payload_type: 0,
            muted: AtomicBool::new(t.muted),
            receivers: Mutex::new(Vec::new()),
            keyframe_tx: ktx,
            handoff_info: Mutex::new(None),
            relayed_from: Some(RelaySource { hub: Arc::downgrade(&self.hub), node: node.to_owned() }),
            local: None,
            in_process: participant.in_process,
        });
        for (layer, ssrc) in t.layers.iter().enumerate() {
            track.forwarder.set_layer_ssrc(*ssrc, layer);
            write(&self.remotes).insert(
                (node.to_owned(), *ssrc),
                RemoteEntry {
                    room: Arc::downgrade(room),
                    participant: participant.id.clone(),
                    track: Arc::downgrade(&track),
                    layer,
                    level_id: t.audio_level_id,
                },
            );
        }
        lock(&participant.tracks).insert(track.id.clone(), Arc::clone(&track));
        let interval = room.sfu().map(|s| s.inner.config.keyframe_request_interval).unwrap_or_default();
        spawn_keyframe_requests(Arc::downgrade(&track), krx, interval);
        participant.attach_handoff(room, &track);
        room.broadcast(&ServerMessage::TrackPublished { track: track.info() }, None);
        for p in room.participants() {
            if p.node.is_none() {
                tokio::spawn(async move {
                    if let Err(e) = p.sync_subscriptions().await {
                        tracing::warn!("subscribe failed: {e}");
                    }
                });
            }
        }
        tracing::info!(room = %room.name, track = %track.id, node, layers = t.layers.len(), "relayed track");
    }

    /// Drops the link SSRCs of another node's track that is gone.
    pub(crate) fn forget_remote_track(&self, track: &Arc<PublishedTrack>) {
        write(&self.remotes).retain(|_, e| e.track.as_ptr() != Arc::as_ptr(track));
    }

    /// A packet of another node's track, from `node`'s link.
    pub(crate) fn on_remote_rtp(&self, node: &str, pkt: rtp::Packet, now: Instant) {
        let Some((track, room, participant, level_id, layer)) = read(&self.remotes)
            .get(&(node.to_owned(), pkt.header.ssrc))
            .and_then(|e| Some((e.track.upgrade()?, e.room.clone(), e.participant.clone(), e.level_id, e.layer)))
        else {
            return;
        };
        if let Some(id) = level_id
            && let Some(ext) = pkt.header.get_extension(id)
            && let Some((level, _)) = parse_audio_level(&ext)
            && let Some(room) = room.upgrade()
        {
            let level = if track.is_muted() { 127 } else { level };
            room.on_audio_level(&participant, level, now);
        }
        let _ = layer;
        if let Some(want) = track.forwarder.on_rtp(&pkt, now) {
            track.request_keyframe(want);
        }
    }

    /// A sender report of another node's track: to the hand-off, for lip sync.
    pub(crate) fn on_remote_sender_report(&self, node: &str, sr: &SenderReport) {
        let found = read(&self.remotes)
            .get(&(node.to_owned(), sr.ssrc))
            .and_then(|e| Some((e.track.upgrade()?, e.room.upgrade()?)));
        if let Some((track, room)) = found {
            track.on_sender_report(sr, &room);
        }
    }
}
