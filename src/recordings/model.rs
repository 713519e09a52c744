//! A recording as the API shows it and as it is kept on disk.

use serde::{Deserialize, Serialize};

use super::store::RecordingLocation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    Starting,
    Recording,
    Stopping,
    Completed,
    Failed,
}

impl RecordingStatus {
    pub const ALL: [RecordingStatus; 5] = [
        RecordingStatus::Starting,
        RecordingStatus::Recording,
        RecordingStatus::Stopping,
        RecordingStatus::Completed,
        RecordingStatus::Failed,
    ];

    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            RecordingStatus::Starting => "starting",
            RecordingStatus::Recording => "recording",
            RecordingStatus::Stopping => "stopping",
            RecordingStatus::Completed => "completed",
            RecordingStatus::Failed => "failed",
        }
    }
}

/// A recording as the API shows it (and as it is kept on disk).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    pub id: String,
    pub room: String,
    pub status: RecordingStatus,
    /// Built-in layout name, or `custom`.
    pub layout: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_s: f64,
    pub bytes: u64,
    pub location: RecordingLocation,
    pub error: Option<String>,
    /// A presigned GET URL of a completed S3 recording: made afresh for each answer, never
    /// kept on disk nor sent in webhooks.
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub download_url: Option<String>,
    /// In a cluster, the node that records it (set in answers and shared records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}
