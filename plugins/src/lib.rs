//! Tessera GStreamer elements.
//!
//! - `tesseras3sink` ([`S3MultipartSink`]) and `tesseralocalsink` ([`LocalRecordingSink`]):
//!   crash-safe recording of a fragmented MP4 stream (`mp4mux fragment-duration=… streamable=true`).
//!   Every fragment goes to a local spool file and a journal before it is stored; the streaming
//!   thread never waits for the network. See [`recovery`] for finishing recordings after a
//!   crash, and [`sink`] for how completion is reported on the bus.

use std::sync::LazyLock;

use gst::glib;

pub mod engine;
pub mod error;
pub mod isobmff;
pub mod journal;
pub mod localsink;
pub mod planner;
mod recorder;
pub mod recovery;
pub mod s3sink;
pub mod sink;
pub mod storage;

pub use engine::{Outcome, UPLOAD_RETRIES, UPLOADED_BYTES};
pub use error::Error;
pub use localsink::LocalRecordingSink;
pub use recovery::{RecoveryOptions, RecoveryOutcome, RecoveryReport, recover_spool_dir};
pub use s3sink::S3MultipartSink;
pub use storage::s3::S3Config;

pub(crate) static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("tessera", gst::DebugColorFlags::empty(), Some("Tessera elements")));

/// Registers the elements for this process (initialises GStreamer if needed). Can be
/// called any number of times.
pub fn register_static() -> Result<(), glib::BoolError> {
    gst::init().map_err(|e| glib::bool_error!("GStreamer init failed: {}", e))?;
    register(None)
}

fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    s3sink::register(plugin)?;
    localsink::register(plugin)
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    register(Some(plugin))
}

pub(crate) fn sink_pad_templates() -> &'static [gst::PadTemplate] {
    static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
        // Any ISO-BMFF byte stream; mp4mux announces video/quicktime.
        let caps = gst::Caps::new_any();
        vec![
            gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                .expect("valid pad template"),
        ]
    });
    TEMPLATES.as_ref()
}

// The library file is libtessera_plugins.so, so GStreamer looks for this plugin name.
gst::plugin_define!(
    tessera_plugins,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "unknown",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY")
);
