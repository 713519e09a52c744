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

use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

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

/// Locks `m`, recovering it if a thread panicked while holding it.
///
/// Every `std::sync` lock in this crate is taken through [`lock`], [`wait`] and
/// [`wait_timeout`], never with `.lock().unwrap()` or an inline
/// `unwrap_or_else(|e| e.into_inner())`.
///
/// Why a poisoned lock is recovered rather than propagated: a lock is poisoned when a thread
/// panicked while holding it. Passing the poison on would make the other thread of the
/// recording panic too (the streaming thread on its next buffer, or the uploader on its next
/// journal line), and one bug would take the whole recording down with it: no more parts
/// stored, no outcome for `finish`, nothing reported. Recovering lets the other thread carry
/// on with what is there (the streaming thread keeps spooling and journaling, the uploader
/// keeps storing journaled fragments), and the spool and journal stay usable for recovery
/// either way. The data behind these locks stays consistent when a holder panics:
/// - an element's settings are plain values, each property set by one assignment;
/// - the journal is append-only: each entry is serialised whole in memory, then written with
///   its newline in one `write_all`, so a panic while it is held leaves no new line or a whole
///   one (and replay skips a line that is not a whole entry anyway);
/// - the uploader's feed only grows: boundaries are appended by the streaming thread and
///   trimmed behind the uploader, `durable_end` only moves up, `final_end` and `outcome` are set
///   once, so a half-done update only means the uploader sees less than it could yet;
/// - a recording sink's state is its recorder and a flag, replaced whole at start and stop;
///   what the recorder wrote counts for recovery only once the journal says so.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `c` with `guard`, recovering the mutex like [`lock`]. Wakes spuriously like
/// [`Condvar::wait`]: callers recheck their condition.
pub(crate) fn wait<'a, T>(c: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    c.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// Waits on `c` with `guard` for at most `timeout`, recovering the mutex like [`lock`].
/// Returns on a notification, a spurious wake-up or the timeout alike: callers recheck their
/// condition and the clock.
pub(crate) fn wait_timeout<'a, T>(c: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> MutexGuard<'a, T> {
    c.wait_timeout(guard, timeout).unwrap_or_else(|e| e.into_inner()).0
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
