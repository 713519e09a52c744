//! The compositor crate's one error type. A variant with a cause keeps it (`source()`) and
//! also shows it in its message, as the binary's error chain expects (it skips a cause already
//! in the text); a plain string is only for what GStreamer gives as text alone.

use std::path::PathBuf;

use gst::glib;

use crate::hls::HlsError;
use crate::layout::LayoutError;

#[derive(Debug, thiserror::Error)]
pub enum CompositorError {
    #[error("GStreamer element `{0}` is missing; install the Debian GStreamer plugin packages (scripts/install-deps)")]
    MissingElement(&'static str),
    #[error("invalid program configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// The extra CA file for `rtmps://` (`tls_ca_file`) cannot be read.
    #[error("invalid program configuration: tls_ca_file: {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// GIO refuses the CA bundle made with the extra CA file.
    #[error("invalid program configuration: tls_ca_file: {path}: {source}")]
    CaBundle {
        path: PathBuf,
        #[source]
        source: glib::Error,
    },
    /// A file of the program's own (the CA bundle) cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid layout: {0}")]
    Layout(#[from] LayoutError),
    /// The encoders' output cannot be written as LL-HLS (CMAF): a codec record, a size.
    #[error("HLS: {0}")]
    Hls(#[from] HlsError),
    #[error("invalid track: {0}")]
    InvalidTrack(String),
    #[error("unknown track {0}")]
    UnknownTrack(u64),
    #[error("unknown output {0}")]
    UnknownOutput(u64),
    #[error("unknown destination {0}")]
    UnknownDestination(u64),
    #[error("invalid output: {field}: {reason}")]
    InvalidOutput { field: &'static str, reason: String },
    #[error("invalid destination: {field}: {reason}")]
    InvalidDestination { field: String, reason: String },
    #[error("invalid RTP packet: {0}")]
    InvalidRtp(&'static str),
    #[error("the program is not running")]
    NotRunning,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// A thread of the program's own (`what`: its job) cannot be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// GStreamer refused a call.
    #[error("GStreamer: {0}")]
    Glib(#[from] glib::BoolError),
    /// GStreamer refused a call, with what the program was doing.
    #[error("GStreamer: {context}: {source}")]
    GlibCall {
        context: String,
        #[source]
        source: glib::BoolError,
    },
    /// GStreamer failed with an error of its own (initialisation, a pipeline description).
    #[error("GStreamer: {context}: {source}")]
    GlibError {
        context: &'static str,
        #[source]
        source: glib::Error,
    },
    #[error("GStreamer: {0}")]
    StateChange(#[from] gst::StateChangeError),
    #[error("GStreamer: pad link failed: {0}")]
    PadLink(#[from] gst::PadLinkError),
    /// A buffer the program pushes itself was refused downstream.
    #[error("GStreamer: {context}: {source}")]
    Flow {
        context: &'static str,
        #[source]
        source: gst::FlowError,
    },
    /// What GStreamer only says in words (a missing pad, a refused request).
    #[error("GStreamer: {0}")]
    Gst(String),
}

impl CompositorError {
    /// For `map_err`: a refused GStreamer call, with what the program was doing.
    pub(crate) fn glib(context: impl Into<String>) -> impl FnOnce(glib::BoolError) -> Self {
        let context = context.into();
        move |source| CompositorError::GlibCall { context, source }
    }

    /// For `map_err`: a buffer of the program's own refused downstream.
    pub(crate) fn flow(context: &'static str) -> impl FnOnce(gst::FlowError) -> Self {
        move |source| CompositorError::Flow { context, source }
    }
}

pub type Result<T, E = CompositorError> = std::result::Result<T, E>;
