//! Live-streaming destinations: RTMP(S) URLs whose stream keys never leave this module in
//! full, the per-destination connection state machine (connecting, live, reconnecting,
//! failed) with exponential backoff, and the ingest presets. Plain logic: time is an
//! argument, so tests need no clock. The program runs them in `program::live`.

mod preset;
mod state;
mod tls;
mod url;

pub use preset::{CustomLimits, IngestPreset, IvsChannelType, PresetError};
pub use state::{DestinationState, DestinationStatus, ReconnectPolicy};
pub use tls::trust_extra_ca_file;
pub use url::{RtmpUrl, UrlError};

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DestinationId(pub u64);

impl std::fmt::Display for DestinationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "destination-{}", self.0)
    }
}

/// A destination to stream the program to.
#[derive(Debug, Clone)]
pub struct DestinationSpec {
    pub url: RtmpUrl,
    pub preset: IngestPreset,
    pub reconnect: ReconnectPolicy,
    /// A picture other than the program's own (a rendition of its size, with its layout);
    /// None streams the program as it is.
    pub rendition: Option<crate::program::RenditionRequest>,
}

impl DestinationSpec {
    pub fn new(url: RtmpUrl) -> Self {
        DestinationSpec { url, preset: IngestPreset::default(), reconnect: ReconnectPolicy::default(), rendition: None }
    }
    pub fn with_preset(mut self, preset: IngestPreset) -> Self {
        self.preset = preset;
        self
    }
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }
    pub fn with_rendition(mut self, rendition: crate::program::RenditionRequest) -> Self {
        self.rendition = Some(rendition);
        self
    }
}

/// What a destination is doing; safe to log and return (the stream key is masked).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DestinationInfo {
    pub id: DestinationId,
    /// `rtmp://host/app/****`
    pub url: String,
    pub preset: String,
    pub status: DestinationStatus,
    /// Connection attempts after the first one.
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// Video frames handed to the connection, over all attempts.
    pub video_frames: u64,
    /// Bytes written to the network, over all attempts.
    pub bytes_sent: u64,
    /// How long the current connection has been live.
    pub live_for: Option<Duration>,
}
