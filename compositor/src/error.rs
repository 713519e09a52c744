//! The compositor crate's one error type.

use crate::layout::LayoutError;

#[derive(Debug, thiserror::Error)]
pub enum CompositorError {
    #[error("GStreamer element `{0}` is missing; install the Debian GStreamer plugin packages (scripts/install-deps)")]
    MissingElement(&'static str),
    #[error("invalid program configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("invalid layout: {0}")]
    Layout(#[from] LayoutError),
    #[error("invalid track: {0}")]
    InvalidTrack(String),
    #[error("unknown track {0}")]
    UnknownTrack(u64),
    #[error("unknown output {0}")]
    UnknownOutput(u64),
    #[error("unknown destination {0}")]
    UnknownDestination(u64),
    #[error("invalid destination: {field}: {reason}")]
    InvalidDestination { field: String, reason: String },
    #[error("invalid RTP packet: {0}")]
    InvalidRtp(&'static str),
    #[error("the program is not running")]
    NotRunning,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("GStreamer: {0}")]
    Gst(String),
}

impl From<gst::glib::BoolError> for CompositorError {
    fn from(e: gst::glib::BoolError) -> Self {
        CompositorError::Gst(e.to_string())
    }
}

impl From<gst::StateChangeError> for CompositorError {
    fn from(e: gst::StateChangeError) -> Self {
        CompositorError::Gst(e.to_string())
    }
}

impl From<gst::PadLinkError> for CompositorError {
    fn from(e: gst::PadLinkError) -> Self {
        CompositorError::Gst(format!("pad link failed: {e:?}"))
    }
}

pub type Result<T, E = CompositorError> = std::result::Result<T, E>;
