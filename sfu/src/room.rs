//! A room: its participants, who joins and leaves, what it tells them all, and its active
//! speaker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::core::ActiveSpeakerDetector;
use crate::error::{Error, Result};
use crate::handoff::HandoffEvent;
use crate::participant::Participant;
use crate::sfu::{Sfu, SfuInner};
use crate::signal::{ParticipantInfo, ServerMessage};
use crate::sync::lock;
use crate::track::PublishedTrack;

/// A room: participants who publish to and subscribe from each other.
///
/// Lock order: the SFU's `rooms`, then a room's `participants`, then a participant's
/// `tracks`; `speaker` is a leaf.
pub struct Room {
    pub(crate) name: String,
    pub(crate) sfu: Weak<SfuInner>,
    pub(crate) participants: Mutex<HashMap<String, Arc<Participant>>>,
    pub(crate) speaker: Mutex<ActiveSpeakerDetector>,
}

impl Room {
    /// Room name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Participants now.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        lock(&self.participants).values().cloned().collect()
    }

    /// The active speaker now.
    pub fn active_speaker(&self) -> Option<String> {
        lock(&self.speaker).current().map(str::to_owned)
    }

    pub(crate) fn sfu(&self) -> Option<Sfu> {
        self.sfu.upgrade().map(|inner| Sfu { inner })
    }

    pub(crate) fn broadcast(&self, msg: &ServerMessage, except: Option<&str>) {
        for p in lock(&self.participants).values() {
            if Some(p.id.as_str()) != except {
                p.send(msg.clone());
            }
        }
    }

    pub(crate) fn all_tracks(&self) -> Vec<Arc<PublishedTrack>> {
        lock(&self.participants).values().flat_map(|p| lock(&p.tracks).values().cloned().collect::<Vec<_>>()).collect()
    }

    /// Adds a participant. `outbox` receives server messages (None for WHIP publishers, who
    /// do not subscribe).
    pub fn join(
        self: &Arc<Self>,
        name: String,
        outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Arc<Participant>> {
        self.join_as(name, None, outbox)
    }

    /// Adds a participant known to the application by `identity` (its token's).
    pub fn join_as(
        self: &Arc<Self>,
        name: String,
        identity: Option<String>,
        outbox: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Arc<Participant>> {
        let sfu = self.sfu().ok_or_else(|| Error::Internal("sfu is gone".into()))?;
        let p = Arc::new(Participant::new(sfu.next_id("PA_"), name, identity, Arc::downgrade(self), outbox, None));
        self.admit(&sfu, Arc::clone(&p))?;
        Ok(p)
    }

    /// Adds this node's participant `p` and tells everyone. One made in this process (the
    /// program, [`Participant::is_in_process`]) takes no client's place (it is not counted
    /// against `max_participants`, nor refused by it) and is not told to the observer: the
    /// observer's joins and leaves are the room's people (its webhooks, and the room's life,
    /// which follows the program on its own).
    pub(crate) fn admit(self: &Arc<Self>, sfu: &Sfu, p: Arc<Participant>) -> Result<()> {
        let others: Vec<ParticipantInfo> = {
            let mut ps = lock(&self.participants);
            let clients = ps.values().filter(|o| !o.in_process).count();
            if !p.in_process && clients >= sfu.inner.config.max_participants {
                return Err(Error::Conflict("room is full".into()));
            }
            let others = ps.values().map(|o| o.info()).collect();
            ps.insert(p.id.clone(), Arc::clone(&p));
            others
        };
        p.send(ServerMessage::Joined {
            participant_id: p.id.clone(),
            room: self.name.clone(),
            participants: others,
            active_speaker: self.active_speaker(),
            // Per-participant credentials: the signalling fills them in (it knows the token).
            ice_servers: Vec::new(),
        });
        self.broadcast(&ServerMessage::ParticipantJoined { participant: p.info() }, Some(&p.id));
        tracing::info!(room = %self.name, participant = %p.id, in_process = p.in_process, "joined");
        if let Some(o) = sfu.inner.observer.get().filter(|_| !p.in_process) {
            o.participant_joined(&p.event(&self.name));
        }
        sfu.local_room_changed(&self.name);
        Ok(())
    }

    pub(crate) fn on_audio_level(self: &Arc<Self>, participant: &str, level: u8, now: Instant) {
        let change = {
            let mut s = lock(&self.speaker);
            s.on_level(participant, level, now);
            s.tick(now)
        };
        if let Some(who) = change {
            self.announce_speaker(Some(who));
        }
    }

    pub(crate) fn announce_speaker(&self, who: Option<String>) {
        self.broadcast(&ServerMessage::ActiveSpeaker { participant_id: who.clone() }, None);
        if let Some(h) = self.sfu.upgrade().and_then(|s| s.handoff.clone()) {
            h.push(&self.name, HandoffEvent::Speaker(self.name.clone(), who));
        }
    }
}
