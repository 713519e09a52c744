//! What the recording sinks say on the bus, and helpers for their properties. The elements
//! themselves share one base class, [`RecordingSink`](crate::recordingsink::RecordingSink).
//!
//! Completion is observed on the bus: an element message named `tessera-recording` with
//! `state` = `complete` (fields `bytes`, `parts`), `empty`, `failed` (`reason`; the journal
//! and spool are kept) or `pending` (the upload did not finish within `finish-timeout`; it
//! goes on in the background, and recovery finishes it if the process exits first), plus
//! `backend` and `bucket`/`key` or `location`. On EOS the element posts it before the EOS
//! message when the upload finishes within `finish-timeout`.

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use crate::engine::Outcome;
use crate::journal::Destination;

pub const MESSAGE_NAME: &str = "tessera-recording";
pub const DEFAULT_FINISH_TIMEOUT_MS: u32 = 60_000;

pub(crate) fn default_spool_dir() -> PathBuf {
    std::env::temp_dir().join("tessera-spool")
}

pub(crate) fn message_structure(state: &str, dest: &Destination, outcome: Option<&Outcome>) -> gst::Structure {
    let mut b = gst::Structure::builder(MESSAGE_NAME).field("state", state);
    b = match dest {
        Destination::S3 { bucket, key, .. } => b.field("backend", "s3").field("bucket", bucket).field("key", key),
        Destination::Local { location } => {
            b.field("backend", "local").field("location", location.display().to_string())
        }
    };
    match outcome {
        Some(Outcome::Complete { bytes, parts }) => b.field("bytes", *bytes).field("parts", *parts).build(),
        Some(Outcome::Failed { reason }) => b.field("reason", reason).build(),
        _ => b.build(),
    }
}

pub(crate) fn state_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Complete { .. } => "complete",
        Outcome::Empty => "empty",
        Outcome::Failed { .. } => "failed",
    }
}

pub(crate) fn string_pspec(name: &str, blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder(name).blurb(blurb).mutable_ready().build()
}

/// Credentials: write-only, never read back.
pub(crate) fn secret_pspec(name: &str, blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder(name).blurb(blurb).write_only().mutable_ready().build()
}

pub(crate) fn opt_string(value: &glib::Value) -> Option<String> {
    value.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty())
}
