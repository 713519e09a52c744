//! Where recordings go, and finishing the ones a crashed process left behind.
//!
//! A recording is the room program's fragmented MP4 fed to one of our crash-safe sinks
//! (`tesseras3sink` when a bucket is configured, `tesseralocalsink` otherwise). Both spool
//! every fragment and journal it under `DATA_DIR/spool` first, so after a crash the next start
//! finds the journals and completes the objects or files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;
use serde::{Deserialize, Serialize};
use tessera_compositor::OutputSpec;
use tessera_plugins::{RecoveryOptions, RecoveryOutcome, RecoveryReport};

use crate::config::{DEFAULT_DOWNLOAD_URL_TTL, MAX_DOWNLOAD_URL_TTL, StorageConfig};

/// Fragment length: a crash costs at most one fragment plus the pipeline's latency (~0.1 s),
/// so half a second keeps a killed recording within 1 s of the kill.
pub const FRAGMENT_DURATION: Duration = Duration::from_millis(500);
/// How long a stopped recording's sink waits for its upload before it goes on in the
/// background (and, if the process exits first, start-up recovery finishes it).
const FINISH_TIMEOUT_MS: u32 = 30_000;

/// Where one recording is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RecordingLocation {
    S3 { bucket: String, key: String },
    Local { path: PathBuf },
}

/// Where recordings are stored refused; a variant with a cause keeps it (`source()`).
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The sinks could not be registered.
    #[error("the recording sinks are unavailable: {0}")]
    Elements(#[source] gst::glib::BoolError),
    /// One sink could not be made.
    #[error("the recording sinks are unavailable: {factory}: {source}")]
    Element {
        factory: &'static str,
        #[source]
        source: gst::glib::BoolError,
    },
    #[error("invalid recording name {0:?}: use letters, digits, '-', '_' and '.'")]
    Name(String),
}

/// Makes recording outputs and recovers interrupted recordings.
#[derive(Debug, Clone)]
pub struct RecordingStore {
    storage: StorageConfig,
    data_dir: PathBuf,
    spool_dir: PathBuf,
    local_dir: PathBuf,
    state_dir: PathBuf,
    download_url_ttl: Duration,
    /// Cluster mode: S3 recordings also keep their tail (the fragments not yet in a part) in
    /// the bucket, so that another node can complete them if this one dies.
    tail_objects: bool,
    /// Presigns download URLs; built from the standard AWS configuration on first use.
    s3: Arc<tokio::sync::OnceCell<aws_sdk_s3::Client>>,
}

impl RecordingStore {
    /// Creates `DATA_DIR/spool` and `DATA_DIR/recordings` and registers the sinks.
    pub fn new(data_dir: &Path, storage: StorageConfig) -> Result<Self, RecordingError> {
        let spool_dir = data_dir.join("spool");
        let local_dir = data_dir.join("recordings");
        let state_dir = data_dir.join("state").join("recordings");
        for dir in [&spool_dir, &local_dir, &state_dir] {
            std::fs::create_dir_all(dir).map_err(|source| RecordingError::Dir { path: dir.clone(), source })?;
        }
        tessera_plugins::register_static().map_err(RecordingError::Elements)?;
        Ok(RecordingStore {
            storage,
            data_dir: data_dir.to_owned(),
            spool_dir,
            local_dir,
            state_dir,
            download_url_ttl: DEFAULT_DOWNLOAD_URL_TTL,
            tail_objects: false,
            s3: Arc::default(),
        })
    }

    /// S3 recordings keep their tail in the bucket too (cluster mode: see
    /// `tessera_plugins::complete_abandoned`).
    pub fn with_tail_objects(mut self, on: bool) -> Self {
        self.tail_objects = on;
        self
    }

    /// How long presigned download URLs stay valid (at most [`MAX_DOWNLOAD_URL_TTL`]).
    pub fn with_download_url_ttl(mut self, ttl: Duration) -> Self {
        self.download_url_ttl = ttl.min(MAX_DOWNLOAD_URL_TTL);
        self
    }

    /// A presigned GET URL for an S3 recording, valid for the configured time from now;
    /// `None` for local recordings or when it cannot be signed (logged without the URL).
    pub async fn download_url(&self, location: &RecordingLocation) -> Option<String> {
        let RecordingLocation::S3 { bucket, key } = location else { return None };
        let client = self
            .s3
            .get_or_try_init(|| tokio::task::spawn_blocking(|| tessera_plugins::S3Config::default().client()))
            .await
            .ok()?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(self.download_url_ttl).ok()?;
        // Signing is local, but loading credentials may not be: bounded.
        let signed = tokio::time::timeout(
            Duration::from_secs(10),
            client.get_object().bucket(bucket).key(key).presigned(config),
        )
        .await;
        match signed {
            Ok(Ok(request)) => Some(request.uri().to_string()),
            Ok(Err(err)) => {
                tracing::warn!(%bucket, %key, err = %aws_sdk_s3::error::DisplayErrorContext(err), "cannot presign a download URL");
                None
            }
            Err(_) => {
                tracing::warn!(%bucket, %key, "cannot presign a download URL: no credentials within 10 s");
                None
            }
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The bucket and key prefix S3 storage uses, if it is configured.
    pub fn s3_bucket(&self) -> Option<(String, String)> {
        self.storage.s3_bucket.clone().map(|b| (b, self.storage.s3_prefix.clone()))
    }

    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// Where the recordings' metadata is kept across restarts.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where a recording of `room` named `id` goes.
    pub fn location(&self, room: &str, id: &str) -> Result<RecordingLocation, RecordingError> {
        for part in [room, id] {
            if !is_safe_name(part) {
                return Err(RecordingError::Name(part.to_string()));
            }
        }
        Ok(match &self.storage.s3_bucket {
            Some(bucket) => RecordingLocation::S3 {
                bucket: bucket.clone(),
                key: format!("{}{room}/{id}.mp4", self.storage.s3_prefix),
            },
            None => RecordingLocation::Local { path: self.local_dir.join(room).join(format!("{id}.mp4")) },
        })
    }

    /// The output to attach to a room program for a recording at `location`.
    pub fn output(&self, location: &RecordingLocation) -> Result<OutputSpec, RecordingError> {
        let sink = match location {
            RecordingLocation::S3 { bucket, key } => {
                let sink = make("tesseras3sink")?;
                sink.set_property("bucket", bucket);
                sink.set_property("key", key);
                if self.tail_objects && sink.find_property("tail-objects").is_some() {
                    sink.set_property("tail-objects", true);
                }
                sink
            }
            RecordingLocation::Local { path } => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| RecordingError::Dir { path: dir.to_owned(), source })?;
                }
                let sink = make("tesseralocalsink")?;
                sink.set_property("location", path.to_string_lossy().to_string());
                sink
            }
        };
        sink.set_property("spool-dir", self.spool_dir.to_string_lossy().to_string());
        sink.set_property("finish-timeout", FINISH_TIMEOUT_MS);
        Ok(OutputSpec::FragmentedMp4 { sink, fragment_duration: FRAGMENT_DURATION })
    }

    /// Finishes every recording an earlier process left unfinished (blocking: S3 calls).
    /// Connection settings come from the standard AWS configuration; bucket and key from
    /// each journal.
    pub fn recover(&self) -> Vec<RecoveryReport> {
        let reports = tessera_plugins::recover_spool_dir(&self.spool_dir, &RecoveryOptions::default());
        for r in &reports {
            let what = r.destination.as_ref().map(|d| d.to_string()).unwrap_or_else(|| r.journal.display().to_string());
            match &r.outcome {
                RecoveryOutcome::Done(outcome) => {
                    tracing::info!(recording = %what, outcome = ?outcome, "recovered an interrupted recording")
                }
                RecoveryOutcome::Failed { reason } => {
                    tracing::warn!(recording = %what, %reason, "cannot recover a recording yet; will retry at the next start")
                }
                RecoveryOutcome::InUse => {}
            }
        }
        reports
    }
}

fn make(factory: &'static str) -> Result<gst::Element, RecordingError> {
    gst::ElementFactory::make(factory).build().map_err(|source| RecordingError::Element { factory, source })
}

/// Room and recording names become path segments and object keys.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(bucket: Option<&str>, prefix: &str) -> (tempfile::TempDir, RecordingStore) {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageConfig { s3_bucket: bucket.map(str::to_string), s3_prefix: prefix.into() };
        let store = RecordingStore::new(dir.path(), storage).unwrap();
        (dir, store)
    }

    #[test]
    fn local_by_default_under_the_data_directory() {
        let (dir, s) = store(None, "");
        assert_eq!(
            s.location("standup", "rec-1").unwrap(),
            RecordingLocation::Local { path: dir.path().join("recordings/standup/rec-1.mp4") }
        );
        assert!(dir.path().join("spool").is_dir());
    }

    #[test]
    fn s3_keys_carry_the_prefix() {
        let (_dir, s) = store(Some("calls"), "tessera/");
        assert_eq!(
            s.location("standup", "rec-1").unwrap(),
            RecordingLocation::S3 { bucket: "calls".into(), key: "tessera/standup/rec-1.mp4".into() }
        );
        let json = serde_json::to_value(s.location("a", "b").unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"type": "s3", "bucket": "calls", "key": "tessera/a/b.mp4"}));
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        let (_dir, s) = store(None, "");
        for bad in ["../etc", "a/b", "", ".hidden", "sp ace"] {
            assert!(matches!(s.location(bad, "x"), Err(RecordingError::Name(_))), "{bad}");
        }
    }

    #[test]
    fn outputs_use_the_crash_safe_sinks() {
        let (_dir, s) = store(Some("calls"), "");
        let OutputSpec::FragmentedMp4 { sink, fragment_duration } = s.output(&s.location("r", "1").unwrap()).unwrap()
        else {
            panic!("fragmented MP4 expected")
        };
        assert_eq!(fragment_duration, FRAGMENT_DURATION);
        assert_eq!(sink.factory().unwrap().name(), "tesseras3sink");
        assert_eq!(sink.property::<String>("key"), "r/1.mp4");
    }
}
