//! This node's life in the cluster: its background tasks (heartbeat, room clean-up, takeover
//! of down nodes' recordings, the cascade), a start refused for lack of capacity, the drain
//! on SIGTERM (participants sent elsewhere) and the leaving.

use super::{ClusterNode, IDLE_RELEASE_AFTER, RECONCILE_INTERVAL, load};
use crate::locks::lock;
use crate::server::Media;

impl ClusterNode {
    /// Starts the heartbeat (this node's load every 2 s) and the release of rooms that ended
    /// here.
    pub fn run(&self, media: Media) {
        let reported = media.clone();
        let heartbeat = self.cluster.spawn_heartbeat(move || load::of(&reported));
        let node = self.clone();
        let rooms = media.clone();
        let reconcile = tokio::spawn(async move { node.release_idle_rooms(rooms).await });
        let node = self.clone();
        let relayed = media.clone();
        let takeover = tokio::spawn(async move { node.take_over_from_down_nodes(media).await });
        lock(&self.tasks).extend([heartbeat, reconcile, takeover]);
        let node = self.clone();
        tokio::spawn(async move {
            if let Err(err) = node.start_cascade(&relayed, node.relay_port).await {
                tracing::error!(%err, "relay links cannot start: rooms stay on one node's participants");
            }
        });
    }

    /// A start refused here for lack of capacity: if nothing runs in the room, its placement
    /// goes, so that the next try is placed by the load of that moment (the heartbeats the
    /// placement read may have been 2 s old).
    pub async fn refused(&self, media: &Media, room: &str) {
        if !load::hosts(media, room) && self.cluster.release(room).await.unwrap_or(false) {
            tracing::info!(%room, "room released: this node has no capacity for it");
        }
    }

    /// Draining (SIGTERM): the cluster places no new room here, and learns it at once rather
    /// than at the next heartbeat.
    pub async fn drain(&self, media: &Media) {
        self.cluster.set_draining();
        let _ = self.cluster.heartbeat(load::of(media)).await;
        self.send_participants_elsewhere(media).await;
    }

    /// Asks this node's participants to join again through the least loaded other serving
    /// node (of this node's region, if it has one and a node there takes rooms); their call
    /// goes on there, their media reaching the room's other nodes over relay links.
    async fn send_participants_elsewhere(&self, media: &Media) {
        let Ok(nodes) = self.cluster.nodes().await else {
            tracing::warn!("draining: the other nodes cannot be listed; participants stay until the end");
            return;
        };
        let others: Vec<tessera_cluster::NodeInfo> = nodes.into_iter().filter(|n| n.id() != self.node_id()).collect();
        let region = self.cluster.config().region.as_deref();
        let Some(target) = tessera_cluster::placement::least_loaded(&others, self.cluster.config().admission, region)
        else {
            tracing::warn!("draining: no other node takes participants; they stay until the end");
            return;
        };
        let asked = media.sfu.ask_to_reconnect(target.url());
        tracing::info!(asked, node = target.id(), "draining: participants asked to join again through another node");
    }

    /// The end of a graceful stop, once recordings and streams are finished: their final
    /// records written (until `deadline` at the latest), the rooms placed here released, and
    /// the node marked `down` so that nobody forwards to it any more.
    pub async fn leave(&self, media: &Media, deadline: tokio::time::Instant) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        if !self.records.flush_all(deadline).await {
            tracing::warn!("some recording or stream records did not reach redis before the exit");
        }
        if let Ok(rooms) = self.cluster.placed_here().await {
            for room in rooms {
                let _ = self.cluster.release(&room).await;
            }
        }
        let _ = self.cluster.leave(load::of(media)).await;
    }

    /// Rooms placed on this node that have nothing going on here (their participants left,
    /// their recordings and streams ended, or nobody ever came) are released, so that their
    /// next use places them by the load of that moment.
    async fn release_idle_rooms(&self, media: Media) {
        let mut idle_since: std::collections::HashMap<String, tokio::time::Instant> = Default::default();
        let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
        loop {
            tick.tick().await;
            let _ = self.cluster.forget_departed().await;
            let Ok(placed) = self.cluster.placed_here().await else { continue };
            // Rooms running here that Redis does not know as ours (it restarted without
            // them): claimed again, so that requests for them come here.
            for room in load::rooms(&media) {
                if !placed.contains(&room) && self.cluster.claim(&room).await.unwrap_or(false) {
                    tracing::info!(%room, "room placement restored in redis");
                }
            }
            let now = tokio::time::Instant::now();
            idle_since.retain(|room, _| placed.contains(room));
            for room in placed {
                if load::hosts(&media, &room) {
                    idle_since.remove(&room);
                    continue;
                }
                let since = *idle_since.entry(room.clone()).or_insert(now);
                if now.duration_since(since) >= IDLE_RELEASE_AFTER && self.cluster.release(&room).await.is_ok() {
                    tracing::info!(%room, "room released: nothing going on here");
                    idle_since.remove(&room);
                }
            }
        }
    }
}
