//! Tessera GStreamer elements.
//!
//! - `tesseras3sink` ([`S3MultipartSink`]) and `tesseralocalsink` ([`LocalRecordingSink`]):
//!   crash-safe recording of a fragmented MP4 stream (`mp4mux fragment-duration=… streamable=true`).
//!   Every fragment goes to a local spool file and a journal before it is stored; the streaming
//!   thread never waits for the network. With `tail-objects` on, `tesseras3sink` also keeps
//!   the fragments not yet in a part in the bucket, so that [`complete_abandoned`] can finish
//!   the upload from another machine if this one dies. Both are subclasses of one base, [`RecordingSink`]
//!   (`recordingsink/`), each element in its own folder (`mod.rs` + `imp.rs`). See
//!   [`recovery`] for finishing recordings after a crash, and [`sink`] for how completion is
//!   reported on the bus.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;

pub mod abandoned;
pub mod engine;
pub mod error;
pub mod isobmff;
pub mod journal;
pub mod localsink;
pub mod planner;
mod recorder;
pub mod recordingsink;
pub mod recovery;
pub mod s3sink;
pub mod sink;
pub mod storage;

pub use abandoned::{AbandonedOutcome, complete_abandoned};
pub use engine::{Outcome, TAIL_OBJECTS, UPLOAD_RETRIES, UPLOADED_BYTES};
pub use error::Error;
pub use localsink::LocalRecordingSink;
pub use recordingsink::RecordingSink;
pub use recovery::{RecoveryOptions, RecoveryOutcome, RecoveryReport, recover_spool_dir};
pub use s3sink::S3MultipartSink;
pub use storage::StorageError;
pub use storage::s3::S3Config;

/// The uploader's and recovery's category; each element has its own (`tesseras3sink`,
/// `tesseralocalsink`, and `tesserarecordingsink` for what their base class does).
pub(crate) static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("tessera", gst::DebugColorFlags::empty(), Some("Tessera elements")));

/// Locks `m`, also after a panic on another thread (what it guards stays usable: settings,
/// the journal, a recording's state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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
