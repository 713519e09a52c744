//! What both sink elements share: the recorder behind a mutex, and bus messages.
//!
//! Completion is observed on the bus: an element message named `tessera-recording` with
//! `state` = `complete` (fields `bytes`, `parts`), `empty`, `failed` (`reason`; the journal
//! and spool are kept) or `pending` (the upload did not finish within `finish-timeout`; it
//! goes on in the background, and recovery finishes it if the process exits first), plus
//! `backend` and `bucket`/`key` or `location`. On EOS the element posts it before the EOS
//! message when the upload finishes within `finish-timeout`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::engine::Outcome;
use crate::journal::Destination;
use crate::recorder::{OutcomeHook, Recorder, Target};

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

fn post(element: &gst::Element, s: gst::Structure) {
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// Runtime state of a sink element.
#[derive(Default)]
pub(crate) struct SinkCore {
    recorder: Mutex<Option<Recorder>>,
    /// Set after upstream seeked back (see `event`): later data is dropped.
    discarding: AtomicBool,
}

impl SinkCore {
    fn lock(&self) -> MutexGuard<'_, Option<Recorder>> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(
        &self,
        element: &gst::Element,
        target: Target,
        spool_dir: &std::path::Path,
        min_part_size: u64,
    ) -> Result<(), gst::ErrorMessage> {
        let weak = element.downgrade();
        let hook: OutcomeHook = Box::new(move |o, dest| {
            if let Some(el) = weak.upgrade() {
                post(&el, message_structure(state_name(o), dest, Some(o)));
            }
        });
        let rec = Recorder::start(target, spool_dir, min_part_size, hook)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ["Cannot start the recording: {}", e]))?;
        gst::info!(
            crate::CAT,
            obj = element,
            "recording to {} via spool {}",
            rec.destination(),
            rec.spool_path().display()
        );
        *self.lock() = Some(rec);
        self.discarding.store(false, Ordering::Relaxed);
        Ok(())
    }

    pub fn stop(&self, element: &gst::Element) {
        if let Some(mut rec) = self.lock().take() {
            // Without EOS the file ends at the last whole fragment; the upload goes on in
            // the background (or in recovery).
            rec.abandon();
            gst::info!(crate::CAT, obj = element, "stopped after {} bytes", rec.bytes_written());
        }
    }

    pub fn render(&self, element: &gst::Element, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.lock();
        let rec = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        if self.discarding.load(Ordering::Relaxed) {
            return Ok(gst::FlowSuccess::Ok);
        }
        if let Some(reason) = rec.failure() {
            gst::element_error!(
                element,
                gst::ResourceError::Write,
                ("Upload failed: {}", reason),
                ["spool kept at {}", rec.spool_path().display()]
            );
            return Err(gst::FlowError::Error);
        }
        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
        rec.write(&map).map_err(|e| {
            gst::element_error!(element, gst::ResourceError::Write, ["Recording failed: {}", e]);
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }

    /// Handles EOS and segments; false when EOS could not be recorded (error posted).
    pub fn event(&self, element: &gst::Element, event: &gst::Event, finish_timeout: Duration) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => self.finish(element, finish_timeout),
            gst::EventView::Segment(s) => {
                self.segment(element, s.segment());
                true
            }
            _ => true,
        }
    }

    /// mp4mux without `streamable=true` seeks back at EOS to rewrite its header: appending
    /// that would corrupt the file, and the fragments play without it, so it is dropped.
    fn segment(&self, element: &gst::Element, segment: &gst::Segment) {
        let Some(start) = segment.downcast_ref::<gst::format::Bytes>().and_then(|s| s.start()) else { return };
        let written = self.lock().as_ref().map_or(0, Recorder::bytes_written);
        if *start != written && !self.discarding.swap(true, Ordering::Relaxed) {
            gst::warning!(
                crate::CAT,
                obj = element,
                "upstream seeks to byte {} at {written} (mp4mux without streamable=true?): dropping what follows",
                *start
            );
        }
    }

    /// End of stream: waits up to `timeout` for the upload; false on a local error.
    fn finish(&self, element: &gst::Element, timeout: Duration) -> bool {
        let mut guard = self.lock();
        let Some(rec) = guard.as_mut() else { return true };
        match rec.finish(Duration::ZERO) {
            Err(e) => {
                gst::element_error!(element, gst::ResourceError::Write, ["Cannot finish the recording: {}", e]);
                return false;
            }
            Ok(Some(_)) => return true,
            Ok(None) => {}
        }
        let feed = rec.feed();
        let dest = rec.destination().clone();
        drop(guard); // don't block stop() while waiting
        if feed.wait_outcome(timeout).is_none() {
            gst::warning!(
                crate::CAT,
                obj = element,
                "upload to {dest} not finished after {timeout:?}; continuing in the background"
            );
            post(element, message_structure("pending", &dest, None));
        }
        true
    }
}

pub(crate) fn string_pspec(name: &str, blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder(name).blurb(blurb).mutable_ready().build()
}

/// Credentials: write-only, never read back.
pub(crate) fn secret_pspec(name: &str, blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder(name).blurb(blurb).write_only().mutable_ready().build()
}

pub(crate) fn finish_timeout_pspec() -> glib::ParamSpec {
    glib::ParamSpecUInt::builder("finish-timeout")
        .blurb("Milliseconds EOS waits for the upload to complete before it goes on in the background")
        .default_value(DEFAULT_FINISH_TIMEOUT_MS)
        .mutable_ready()
        .build()
}

pub(crate) fn spool_dir_pspec() -> glib::ParamSpec {
    string_pspec(
        "spool-dir",
        "Directory for the spool file and journal (default: $TMPDIR/tessera-spool; use persistent storage)",
    )
}

pub(crate) fn opt_string(value: &glib::Value) -> Option<String> {
    value.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty())
}
