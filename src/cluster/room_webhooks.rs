//! `room.started` and `room.ended` once per room in a cluster, though each node sees only its
//! own participants join and leave. A node whose first participant of a room joins marks the
//! room live in Redis (set if absent): the node that set it sends `room.started`. A node whose
//! part of a room is over keeps checking, for up to `END_CHECK_FOR`, whether any other node
//! that is up still has a part of it; once none has, it removes the live mark, and the node
//! that removed it sends `room.ended` (of several nodes checking at once, one). The nodes that
//! host some of a room renew its mark, which otherwise lapses (`LIVE_TTL`).
//!
//! Events keep their order: participant webhooks pass through the same queue as the room's.
//! Without Redis a node sends its own `room.started` (at least once beats never).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::ClusterNode;
use crate::room_events::{RoomEvent, RoomEventSink};
use crate::server::Media;
use crate::webhooks::Webhooks;

/// A room's live mark lapses this long after the last node hosting some of it renewed it.
const LIVE_TTL: Duration = Duration::from_secs(60);
/// How often ended parts are checked and live marks renewed.
const CHECK_EVERY: Duration = Duration::from_millis(300);
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long a node whose part ended keeps checking whether the room is over everywhere.
const END_CHECK_FOR: Duration = Duration::from_secs(30);

/// The queue the SFU's observer feeds (it must not wait on Redis).
pub struct ClusterRoomEvents {
    tx: mpsc::UnboundedSender<RoomEvent>,
}

impl RoomEventSink for ClusterRoomEvents {
    fn push(&self, event: RoomEvent) {
        let _ = self.tx.send(event);
    }
}

impl ClusterNode {
    /// The sink for this node's room events, with its worker started.
    pub(super) fn room_events(&self, media: Media, webhooks: Webhooks) -> ClusterRoomEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = self.clone();
        let task = tokio::spawn(async move { node.room_event_worker(media, webhooks, rx).await });
        crate::locks::lock(&self.tasks).push(task);
        ClusterRoomEvents { tx }
    }

    async fn room_event_worker(&self, media: Media, webhooks: Webhooks, mut rx: mpsc::UnboundedReceiver<RoomEvent>) {
        let mut ending: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(RoomEvent::Started(room)) => {
                        ending.remove(&room);
                        // Redis away: this node's own room.started rather than none.
                        if self.cluster.claim_room_live(&room, LIVE_TTL).await.unwrap_or(true) {
                            webhooks.send("room.started", &room, serde_json::json!({}));
                        }
                    }
                    Some(RoomEvent::Ended(room)) => {
                        ending.insert(room, Instant::now());
                    }
                    Some(RoomEvent::Participant(name, room, data)) => webhooks.send(name, &room, data),
                    None => return,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    ending.retain(|_, since| now.duration_since(*since) < END_CHECK_FOR);
                    let rooms: Vec<String> = ending.keys().cloned().collect();
                    for room in rooms {
                        if super::load::hosts(&media, &room) {
                            // Someone joined here again: its room.started decides anew.
                            ending.remove(&room);
                            continue;
                        }
                        if self.room_over_everywhere(&room).await && self.cluster.end_room_live(&room).await.unwrap_or(false) {
                            webhooks.send("room.ended", &room, serde_json::json!({}));
                            ending.remove(&room);
                        }
                    }
                    if now.duration_since(renewed) >= RENEW_EVERY {
                        renewed = now;
                        for room in super::load::rooms(&media) {
                            let _ = self.cluster.keep_room_live(&room, LIVE_TTL).await;
                        }
                    }
                }
            }
        }
    }

    /// Whether no other node that is up has a part of `room` (participants or a program).
    async fn room_over_everywhere(&self, room: &str) -> bool {
        let (Ok(parts), Ok(nodes)) = (self.cluster.room_parts(room).await, self.cluster.nodes().await) else {
            return false;
        };
        !parts.iter().any(|(node, _)| node != self.node_id() && nodes.iter().any(|n| n.id() == node && n.is_up()))
    }

    /// A node's part of `room` went away (it left or died) while this node has none: the room
    /// may be over, and this node checks.
    pub(super) fn room_part_gone(&self, media: &Media, room: &str) {
        if !super::load::hosts(media, room)
            && let Some(sink) = self.cascade.room_events.get()
        {
            sink.push(RoomEvent::Ended(room.to_owned()));
        }
    }
}
