//! Room and participant webhooks, from what the SFU says of joins and leaves and what the hub
//! says of programs: `room.started` at a room's first join, `participant.joined`/`left` for
//! everyone (publishing or only subscribing), `room.ended` once the last participant has left
//! and nothing records or streams the room any more. In a cluster these are this node's part
//! of the room; `cluster::room_webhooks` makes the room's own events cluster-wide.

use std::collections::HashMap;
use std::sync::Mutex;

use tessera_sfu::{ParticipantEvent, RoomObserver};

use crate::locks::lock;
use crate::webhooks::Webhooks;

/// One room's life as the webhooks tell it (a pure decider: events in, webhook names out).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RoomLife {
    participants: usize,
    program: bool,
    /// `room.started` was sent and `room.ended` not yet.
    started: bool,
}

impl RoomLife {
    fn joined(&mut self) -> Option<&'static str> {
        self.participants += 1;
        (!std::mem::replace(&mut self.started, true)).then_some("room.started")
    }

    fn left(&mut self) -> Option<&'static str> {
        self.participants = self.participants.saturating_sub(1);
        self.end_if_over()
    }

    fn program(&mut self, running: bool) -> Option<&'static str> {
        self.program = running;
        self.end_if_over()
    }

    fn end_if_over(&mut self) -> Option<&'static str> {
        let over = self.started && self.participants == 0 && !self.program;
        if over {
            self.started = false;
        }
        over.then_some("room.ended")
    }

    /// Nothing left to remember.
    fn is_blank(&self) -> bool {
        *self == RoomLife::default()
    }
}

/// A room or participant webhook this node decided on.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// This node's part of the room started (its first participant here joined).
    Started(String),
    /// This node's part of the room is over (its last participant left, no program here).
    Ended(String),
    /// A participant webhook (`event`, room, data), sent as is.
    Participant(&'static str, String, serde_json::Value),
}

/// Where a cluster node's room events go: the cluster sends `room.started` and `room.ended`
/// once for the whole room (see `cluster::room_webhooks`), in order with the participant
/// webhooks. Must not block.
pub trait RoomEventSink: Send + Sync {
    fn push(&self, event: RoomEvent);
}

/// Sends the room and participant webhooks.
///
/// Lock order: `rooms` is a leaf; `sink` is set once.
#[derive(Default)]
pub struct RoomLifecycle {
    webhooks: Webhooks,
    rooms: Mutex<HashMap<String, RoomLife>>,
    /// In a cluster: the room events go there instead of straight to the webhooks.
    sink: std::sync::OnceLock<std::sync::Arc<dyn RoomEventSink>>,
}

impl RoomLifecycle {
    pub fn new(webhooks: Webhooks) -> Self {
        RoomLifecycle { webhooks, rooms: Mutex::default(), sink: std::sync::OnceLock::new() }
    }

    /// From now on the room events go to `sink` (a cluster node); set once.
    pub fn set_sink(&self, sink: std::sync::Arc<dyn RoomEventSink>) {
        let _ = self.sink.set(sink);
    }

    fn emit(&self, event: RoomEvent) {
        if let Some(sink) = self.sink.get() {
            return sink.push(event);
        }
        match event {
            RoomEvent::Started(room) => self.webhooks.send("room.started", &room, serde_json::json!({})),
            RoomEvent::Ended(room) => self.webhooks.send("room.ended", &room, serde_json::json!({})),
            RoomEvent::Participant(name, room, data) => self.webhooks.send(name, &room, data),
        }
    }

    /// The room's program started (`true`) or stopped.
    pub fn program(&self, room: &str, running: bool) {
        let event = self.update(room, |life| life.program(running));
        self.send_room(room, event);
    }

    fn update(&self, room: &str, change: impl FnOnce(&mut RoomLife) -> Option<&'static str>) -> Option<&'static str> {
        let mut rooms = lock(&self.rooms);
        let life = rooms.entry(room.to_owned()).or_default();
        let event = change(life);
        if life.is_blank() {
            rooms.remove(room);
        }
        event
    }

    fn send_room(&self, room: &str, event: Option<&'static str>) {
        match event {
            Some("room.started") => self.emit(RoomEvent::Started(room.to_owned())),
            Some(_) => self.emit(RoomEvent::Ended(room.to_owned())),
            None => {}
        }
    }
}

fn participant_data(p: &ParticipantEvent) -> serde_json::Value {
    serde_json::json!({ "participant_id": p.participant_id, "identity": p.identity, "name": p.name })
}

impl RoomObserver for RoomLifecycle {
    fn participant_joined(&self, p: &ParticipantEvent) {
        let started = self.update(&p.room, RoomLife::joined);
        self.send_room(&p.room, started);
        self.emit(RoomEvent::Participant("participant.joined", p.room.clone(), participant_data(p)));
    }

    fn participant_left(&self, p: &ParticipantEvent) {
        let ended = self.update(&p.room, RoomLife::left);
        self.emit(RoomEvent::Participant("participant.left", p.room.clone(), participant_data(p)));
        self.send_room(&p.room, ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_starts_at_its_first_join_and_ends_when_the_last_leaves() {
        let mut life = RoomLife::default();
        assert_eq!(life.joined(), Some("room.started"));
        assert_eq!(life.joined(), None);
        assert_eq!(life.left(), None);
        assert_eq!(life.left(), Some("room.ended"));
        assert!(life.is_blank());
    }

    #[test]
    fn a_recording_keeps_an_empty_room_going() {
        let mut life = RoomLife::default();
        assert_eq!(life.joined(), Some("room.started"));
        assert_eq!(life.program(true), None);
        assert_eq!(life.left(), None, "the program still records the room");
        assert_eq!(life.program(false), Some("room.ended"));
        assert!(life.is_blank());
    }

    #[test]
    fn a_program_alone_neither_starts_nor_ends_a_room() {
        let mut life = RoomLife::default();
        assert_eq!(life.program(true), None);
        assert_eq!(life.program(false), None);
        // A join after the program had stopped starts the room once.
        assert_eq!(life.joined(), Some("room.started"));
        assert_eq!(life.program(true), None);
        assert_eq!(life.left(), None);
        assert_eq!(life.joined(), None, "the room never ended in between");
    }
}
