use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::Plan;
use crate::lock;
use crate::recorder::{OutcomeHook, Recorder};
use crate::sink::{self, DEFAULT_FINISH_TIMEOUT_MS, message_structure, state_name};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tesserarecordingsink",
        gst::DebugColorFlags::empty(),
        Some("Tessera recording sinks (spool, journal, upload)"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    spool_dir: Option<PathBuf>,
    finish_timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { spool_dir: None, finish_timeout_ms: DEFAULT_FINISH_TIMEOUT_MS }
    }
}

/// Between `start` and `stop`.
#[derive(Default)]
struct State {
    recorder: Option<Recorder>,
    /// Set after upstream seeked back (see `segment`): later data is dropped.
    discarding: bool,
}

/// Lock order: `settings` is a leaf, copied out. `state` is held while the recorder writes or
/// finishes, so the recorder's journal and the uploader's feed are taken under it, one at a
/// time (see `recorder.rs`).
#[derive(Default)]
pub struct RecordingSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl RecordingSink {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The subclass's plan (its `RecordingSinkImpl::plan`).
    fn plan(&self) -> Result<Plan, gst::ErrorMessage> {
        let obj = self.obj();
        let plan = obj.class().as_ref().plan.expect("only subclasses of the abstract recording sink are made");
        plan(&obj)
    }

    fn post(&self, s: gst::Structure) {
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    /// mp4mux without `streamable=true` seeks back at EOS to rewrite its header: appending
    /// that would corrupt the file, and the fragments play without it, so it is dropped.
    fn segment(&self, segment: &gst::Segment) {
        let Some(start) = segment.downcast_ref::<gst::format::Bytes>().and_then(|s| s.start()) else { return };
        let mut state = self.state();
        let written = state.recorder.as_ref().map_or(0, Recorder::bytes_written);
        if *start != written && !state.discarding {
            state.discarding = true;
            gst::warning!(
                CAT,
                imp = self,
                "upstream seeks to byte {} at {written} (mp4mux without streamable=true?): dropping what follows",
                *start
            );
        }
    }

    /// End of stream: waits up to `timeout` for the upload; false on a local error.
    fn finish(&self, timeout: Duration) -> bool {
        let mut state = self.state();
        let Some(rec) = state.recorder.as_mut() else { return true };
        match rec.finish(Duration::ZERO) {
            Err(e) => {
                gst::element_imp_error!(self, gst::ResourceError::Write, ["Cannot finish the recording: {}", e]);
                return false;
            }
            Ok(Some(_)) => return true,
            Ok(None) => {}
        }
        let feed = rec.feed();
        let dest = rec.destination().clone();
        drop(state); // don't block stop() while waiting
        if feed.wait_outcome(timeout).is_none() {
            gst::warning!(
                CAT,
                imp = self,
                "upload to {dest} not finished after {timeout:?}; continuing in the background"
            );
            self.post(message_structure("pending", &dest, None));
        }
        true
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RecordingSink {
    const NAME: &'static str = "TesseraRecordingSink";
    const ABSTRACT: bool = true;
    type Type = super::RecordingSink;
    type ParentType = gst_base::BaseSink;
    type Class = super::Class;
}

impl ObjectImpl for RecordingSink {
    fn constructed(&self) {
        self.parent_constructed();
        // Like filesink: write as fast as data comes, no clock sync.
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                sink::string_pspec(
                    "spool-dir",
                    "Directory for the spool file and journal (default: $TMPDIR/tessera-spool; use persistent storage)",
                ),
                glib::ParamSpecUInt::builder("finish-timeout")
                    .blurb("Milliseconds EOS waits for the upload to complete before it goes on in the background")
                    .default_value(DEFAULT_FINISH_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "spool-dir" => s.spool_dir = sink::opt_string(value).map(PathBuf::from),
            "finish-timeout" => s.finish_timeout_ms = value.get().unwrap_or(DEFAULT_FINISH_TIMEOUT_MS),
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "spool-dir" => s.spool_dir.map(|p| p.display().to_string()).to_value(),
            "finish-timeout" => s.finish_timeout_ms.to_value(),
            _ => None::<String>.to_value(),
        }
    }
}

impl GstObjectImpl for RecordingSink {}

impl ElementImpl for RecordingSink {
    /// Inherited by the subclasses.
    fn pad_templates() -> &'static [gst::PadTemplate] {
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
}

impl BaseSinkImpl for RecordingSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings();
        let plan = self.plan()?;
        let spool_dir = settings.spool_dir.unwrap_or(plan.default_spool_dir);
        let weak = self.obj().downgrade();
        let hook: OutcomeHook = Box::new(move |o, dest| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().post(message_structure(state_name(o), dest, Some(o)));
            }
        });
        let rec = Recorder::start(plan.target, &spool_dir, plan.min_part_size, hook)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ["Cannot start the recording: {}", e]))?;
        gst::info!(CAT, imp = self, "recording to {} via spool {}", rec.destination(), rec.spool_path().display());
        *self.state() = State { recorder: Some(rec), discarding: false };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(mut rec) = self.state().recorder.take() {
            // Without EOS the file ends at the last whole fragment; the upload goes on in
            // the background (or in recovery).
            rec.abandon();
            gst::info!(CAT, imp = self, "stopped after {} bytes", rec.bytes_written());
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = self.state();
        let State { recorder, discarding } = &mut *state;
        let rec = recorder.as_mut().ok_or(gst::FlowError::Flushing)?;
        if *discarding {
            return Ok(gst::FlowSuccess::Ok);
        }
        if let Some(reason) = rec.failure() {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Upload failed: {}", reason),
                ["spool kept at {}", rec.spool_path().display()]
            );
            return Err(gst::FlowError::Error);
        }
        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
        rec.write(&map).map_err(|e| {
            gst::element_imp_error!(self, gst::ResourceError::Write, ["Recording failed: {}", e]);
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }

    /// Handles EOS (false when it could not be recorded: error posted) and segments, then
    /// lets the base class do its part.
    fn event(&self, event: gst::Event) -> bool {
        let handled = match event.view() {
            gst::EventView::Eos(_) => self.finish(Duration::from_millis(self.settings().finish_timeout_ms.into())),
            gst::EventView::Segment(s) => {
                self.segment(s.segment());
                true
            }
            _ => true,
        };
        handled && self.parent_event(event)
    }
}
