//! This node's tracks as other nodes receive them: each relayed track gets a link SSRC per
//! layer, and a tap on its forwarder sends each packet of a layer to the nodes that want that
//! layer (and only while they keep saying so), once per node whatever the number of
//! subscribers there.

use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;

use super::Cascade;
use super::hub::PeerLink;
use super::state::{NodeRoomState, RemoteParticipant, RemoteTrack};
use crate::forward::RelayTap;
use crate::relay::media_ssrc;
use crate::sync::{random_u32, read, write};
use crate::track::PublishedTrack;

/// Layers a track has at most (simulcast sends three).
const MAX_LAYERS: usize = 8;

/// A node that wants some layers of a track, each until when.
struct Want {
    peer: Arc<PeerLink>,
    /// Bit `l`: layer `l` is wanted (what the packet path reads).
    layers: u64,
    /// Until when each layer is wanted (each lapses on its own).
    until: [Option<Instant>; MAX_LAYERS],
}

/// The relay side of one of this node's tracks.
pub(crate) struct OriginTap {
    pub(crate) room: String,
    track: Weak<PublishedTrack>,
    /// Link SSRC of each layer.
    pub(crate) ssrcs: Vec<u32>,
    video: bool,
    wants: RwLock<Vec<Want>>,
}

impl OriginTap {
    /// `peer` wants `layer` until `until`.
    pub(crate) fn want(&self, peer: &Arc<PeerLink>, layer: usize, until: Instant) {
        if layer >= MAX_LAYERS {
            return;
        }
        let bit = 1u64 << layer;
        let mut wants = write(&self.wants);
        let i = match wants.iter().position(|w| Arc::ptr_eq(&w.peer, peer)) {
            Some(i) => i,
            None => {
                wants.push(Want { peer: Arc::clone(peer), layers: 0, until: [None; MAX_LAYERS] });
                wants.len() - 1
            }
        };
        let w = &mut wants[i];
        w.until[layer] = Some(w.until[layer].map_or(until, |u| u.max(until)));
        let new = w.layers & bit == 0;
        w.layers |= bit;
        drop(wants);
        if new {
            self.request_keyframe(layer);
        }
    }

    /// Forgets the layers whose wants were not repeated in time.
    pub(crate) fn expire(&self, now: Instant) {
        let mut wants = write(&self.wants);
        for w in wants.iter_mut() {
            for (l, until) in w.until.iter_mut().enumerate() {
                if until.is_some_and(|u| u <= now) {
                    *until = None;
                    w.layers &= !(1u64 << l);
                }
            }
        }
        wants.retain(|w| w.layers != 0);
    }

    /// The nodes that want some layer of it now.
    pub(crate) fn wanting_nodes(&self) -> Vec<String> {
        read(&self.wants).iter().map(|w| w.peer.node.clone()).collect()
    }

    pub(crate) fn request_keyframe(&self, layer: usize) {
        if let Some(t) = self.track.upgrade() {
            t.request_keyframe(layer);
        }
    }

    /// How many times the track's set of sending layers changed (0 for audio).
    pub(crate) fn activity_changes(&self) -> u64 {
        match self.track.upgrade() {
            Some(t) if self.video => t.forwarder.activity_changes(),
            _ => 0,
        }
    }

    /// (link SSRC of the lowest layer, each layer's (bit/s, height)) for a video track.
    pub(crate) fn layer_report(&self) -> Option<super::state::LayerReport> {
        if !self.video {
            return None;
        }
        let track = self.track.upgrade()?;
        let layers = track.forwarder.layers().iter().map(|l| (l.bitrate_bps, l.height)).collect();
        Some((*self.ssrcs.first()?, layers))
    }

    /// Sends a publisher's sender report on to the nodes that receive its layer.
    fn sender_report(&self, layer: usize, sr: &SenderReport) {
        let Some(&ssrc) = self.ssrcs.get(layer) else { return };
        let bit = 1u64 << layer.min(63);
        let mut sr = sr.clone();
        sr.ssrc = ssrc;
        sr.reports.clear();
        for w in read(&self.wants).iter().filter(|w| w.layers & bit != 0) {
            let _ = w.peer.with(|l| l.send_rtcp(&[Box::new(sr.clone())]));
        }
    }
}

impl RelayTap for OriginTap {
    fn on_rtp(&self, pkt: &rtp::Packet, layer: usize) {
        let Some(&ssrc) = self.ssrcs.get(layer) else { return };
        let bit = 1u64 << layer.min(63);
        let wants = read(&self.wants);
        let mut out: Option<rtp::Packet> = None;
        for w in wants.iter().filter(|w| w.layers & bit != 0) {
            let p = out.get_or_insert_with(|| {
                let mut p = pkt.clone();
                p.header.ssrc = ssrc;
                p
            });
            let _ = w.peer.with(|l| l.send_rtp(p));
        }
    }
}

impl Cascade {
    /// Makes one of this node's tracks available to the other nodes of `room`.
    pub(crate) fn relay_local_track(&self, room: &str, track: &Arc<PublishedTrack>) {
        let n = track.forwarder.layer_count();
        let mut origins = write(&self.origins);
        let mut ssrcs = Vec::with_capacity(n);
        while ssrcs.len() < n {
            let s = media_ssrc(random_u32());
            if s != 0 && !origins.contains_key(&s) && !ssrcs.contains(&s) {
                ssrcs.push(s);
            }
        }
        let tap = Arc::new(OriginTap {
            room: room.to_owned(),
            track: Arc::downgrade(track),
            ssrcs: ssrcs.clone(),
            video: track.forwarder_is_video(),
            wants: RwLock::new(Vec::new()),
        });
        for (layer, s) in ssrcs.iter().enumerate() {
            origins.insert(*s, (Arc::clone(&tap), layer));
        }
        drop(origins);
        track.forwarder.set_relay(Some(tap));
    }

    /// A track is gone (unpublished here, or its node's participant left).
    pub(crate) fn forget_track(&self, track: &Arc<PublishedTrack>) {
        track.forwarder.set_relay(None);
        let mut origins = write(&self.origins);
        let gone: Vec<u32> =
            origins.iter().filter(|(_, (t, _))| t.track.as_ptr() == Arc::as_ptr(track)).map(|(s, _)| *s).collect();
        for s in &gone {
            origins.remove(s);
        }
        drop(origins);
        for peer in self.hub.peers() {
            peer.with(|l| gone.iter().for_each(|s| l.stop_stream(*s)));
        }
        self.forget_remote_track(track);
    }

    /// A sender report of one of this node's publishers: on to the nodes that receive it.
    pub(crate) fn relay_sender_report(&self, track: &Arc<PublishedTrack>, sr: &SenderReport) {
        let Some(layer) = track.forwarder.layer_of_ssrc(sr.ssrc) else { return };
        let tap = read(&self.origins)
            .values()
            .find(|(t, _)| t.track.as_ptr() == Arc::as_ptr(track))
            .map(|(t, _)| Arc::clone(t));
        if let Some(tap) = tap {
            tap.sender_report(layer, sr);
        }
    }

    /// This node's part of `room`: its own participants and their relayed tracks.
    pub(crate) fn local_state(&self, room: &crate::room::Room) -> NodeRoomState {
        let origins = read(&self.origins);
        let mut participants = Vec::new();
        for p in room.participants().into_iter().filter(|p| p.node.is_none() && !p.is_closed()) {
            let levels: Vec<(String, Option<u8>)> =
                crate::sync::lock(&p.inbound).values().map(|i| (i.track.id.clone(), i.level_id)).collect();
            let tracks = p
                .tracks()
                .into_iter()
                .filter_map(|t| {
                    let tap = origins.values().find(|(tap, _)| tap.track.as_ptr() == Arc::as_ptr(&t))?;
                    Some(RemoteTrack {
                        id: t.id.clone(),
                        source: t.source,
                        mime_type: t.codec.mime_type.clone(),
                        clock_rate: t.codec.clock_rate,
                        channels: t.codec.channels,
                        fmtp: t.codec.sdp_fmtp_line.clone(),
                        feedback: t.codec.rtcp_feedback.iter().map(|f| (f.typ.clone(), f.parameter.clone())).collect(),
                        layers: tap.0.ssrcs.clone(),
                        audio_level_id: levels.iter().find(|(id, _)| *id == t.id).and_then(|(_, l)| *l),
                        muted: t.is_muted(),
                    })
                })
                .collect();
            participants.push(RemoteParticipant {
                id: p.id.clone(),
                name: p.name.clone(),
                identity: p.identity().map(str::to_owned),
                tracks,
                in_process: p.in_process,
            });
        }
        participants.sort_by(|a, b| a.id.cmp(&b.id));
        NodeRoomState { participants }
    }
}
