//! What a node that died leaves behind, finished by the nodes that are left: its S3
//! recordings are completed from the parts and tail objects it had put in the bucket
//! (`tessera_plugins::complete_abandoned`), its streams are marked stopped. Every surviving
//! node looks every 2 s; a Redis lock per recording makes one of them do it, once.

use std::time::Duration;

use tessera_cluster::{NodeInfo, NodeStatus};

use super::ClusterNode;
use super::records::kind_key;
use crate::recordings::store::RecordingLocation;
use crate::recordings::{Recording, RecordingStatus};
use crate::server::Media;
use crate::streams::{Stream, StreamStatus};

/// How often the nodes that are up look for what down nodes left.
const INTERVAL: Duration = Duration::from_secs(2);
/// Far longer than a completion takes (a few S3 calls and one upload of the tail: under a
/// second, plugins/tests/abandoned.rs); a node that dies while holding it leaves the work to
/// the others after that.
const LOCK_TTL: Duration = Duration::from_secs(120);

impl ClusterNode {
    /// Runs until the process exits.
    pub(super) async fn take_over_from_down_nodes(&self, media: Media) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.cluster.is_draining() {
                continue;
            }
            let Ok(nodes) = self.cluster.nodes().await else { continue };
            let down: Vec<&NodeInfo> =
                nodes.iter().filter(|n| n.status == NodeStatus::Down && n.id() != self.node_id()).collect();
            if down.is_empty() {
                continue;
            }
            // Local recordings are on the dead node's disk: its own recovery finishes them when
            // it starts again.
            let recordings: Vec<Recording> = self.unfinished(kind_key("recording"), &down).await;
            for rec in recordings.into_iter().filter(|r| matches!(r.location, RecordingLocation::S3 { .. })) {
                self.finish_recording(&media, rec).await;
            }
            let streams: Vec<Stream> = self.unfinished(kind_key("stream"), &down).await;
            for stream in streams {
                self.stop_stream(&media, stream).await;
            }
        }
    }

    /// The shared records of `kind` that a down node left running.
    async fn unfinished<T: serde::de::DeserializeOwned>(&self, kind: &str, down: &[&NodeInfo]) -> Vec<T> {
        let Ok(records) = self.cluster.records(kind).await else { return Vec::new() };
        records
            .into_iter()
            .filter(|r| down.iter().any(|n| r["node"].as_str() == Some(n.id())))
            .filter(|r| matches!(r["status"].as_str(), Some("starting" | "recording" | "stopping" | "active")))
            .filter_map(|r| serde_json::from_value(r).ok())
            .collect()
    }

    /// Re-reads the record under its lock (another node may have finished it) and writes the
    /// new version; the webhook goes out from here, once.
    async fn finish_recording(&self, media: &Media, rec: Recording) {
        let lock_name = format!("takeover:recording:{}", rec.id);
        let Ok(Some(lock)) = self.cluster.lock(&lock_name, LOCK_TTL, Duration::ZERO).await else { return };
        let current: Option<Recording> = super::shared_record(self, "recordings", &rec.id).await;
        if let Some(mut rec) = current.filter(|r| {
            matches!(r.status, RecordingStatus::Starting | RecordingStatus::Recording | RecordingStatus::Stopping)
        }) {
            let lost = rec.node.clone().unwrap_or_default();
            tracing::warn!(recording = %rec.id, room = %rec.room, node = %lost, "completing the recording of a node that is down");
            let finished = complete(&rec.location).await;
            rec.ended_at = Some(crate::time::rfc3339(std::time::SystemTime::now()));
            match finished {
                Ok(Finished { bytes, duration_s }) => {
                    rec.status = RecordingStatus::Completed;
                    rec.bytes = bytes;
                    if let Some(d) = duration_s {
                        rec.duration_s = d;
                    }
                    rec.error = Some(format!(
                        "node {lost} was lost; node {} completed the recording up to its last stored fragment",
                        self.node_id()
                    ));
                }
                Err(reason) => {
                    rec.status = RecordingStatus::Failed;
                    rec.error = Some(format!("node {lost} was lost: {reason}"));
                }
            }
            let value = serde_json::to_value(&rec).unwrap_or_default();
            if self.cluster.put_record("recordings", &rec.id, &value).await.is_ok() {
                let event =
                    if rec.status == RecordingStatus::Completed { "recording.completed" } else { "recording.failed" };
                media.hub.webhooks().send(event, &rec.room, value);
                tracing::info!(recording = %rec.id, status = rec.status.name(), "recording of a lost node finished");
            }
        }
        let _ = self.cluster.unlock(lock).await;
    }

    async fn stop_stream(&self, media: &Media, stream: Stream) {
        let lock_name = format!("takeover:stream:{}", stream.id);
        let Ok(Some(lock)) = self.cluster.lock(&lock_name, LOCK_TTL, Duration::ZERO).await else { return };
        let current: Option<Stream> = super::shared_record(self, "streams", &stream.id).await;
        if let Some(mut stream) = current.filter(|s| s.status == StreamStatus::Active) {
            let lost = stream.node.clone().unwrap_or_default();
            stream.status = StreamStatus::Stopped;
            stream.ended_at = Some(crate::time::rfc3339(std::time::SystemTime::now()));
            stream.error = Some(format!("node {lost} was lost"));
            let value = serde_json::to_value(&stream).unwrap_or_default();
            if self.cluster.put_record("streams", &stream.id, &value).await.is_ok() {
                media.hub.webhooks().send("stream.stopped", &stream.room, value);
            }
        }
        let _ = self.cluster.unlock(lock).await;
    }
}

struct Finished {
    bytes: u64,
    duration_s: Option<f64>,
}

/// Completes the upload of a recording whose node died, from the bucket alone.
async fn complete(location: &RecordingLocation) -> Result<Finished, String> {
    let (bucket, key) = match location {
        RecordingLocation::S3 { bucket, key } => (bucket.clone(), key.clone()),
        RecordingLocation::Local { .. } => return Err("a local recording stays on its node's disk".into()),
    };
    let completed = tokio::task::spawn_blocking(move || {
        tessera_plugins::complete_abandoned(&tessera_plugins::S3Config::default(), &bucket, &key)
    })
    .await
    .map_err(|e| format!("the completion stopped: {e}"))?;
    match completed {
        Ok(tessera_plugins::AbandonedOutcome::Completed { bytes, duration_s, .. }) => {
            Ok(Finished { bytes, duration_s })
        }
        Ok(tessera_plugins::AbandonedOutcome::AlreadyComplete { bytes }) => Ok(Finished { bytes, duration_s: None }),
        Ok(tessera_plugins::AbandonedOutcome::Empty) => Err("nothing playable had been stored".into()),
        Err(err) => Err(format!("cannot complete its upload: {err}")),
    }
}
