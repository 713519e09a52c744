//! The program's bus: failures are contained to the output or track they happen in.

use super::elements::owning_bin_name;
use super::{Inner, OutputId, ProgramEvent};
use crate::error::{CompositorError, Result};
use crate::locks::lock;
use crate::track::TrackId;
use gst::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

pub(super) fn spawn(inner: &Arc<Inner>) -> Result<std::thread::JoinHandle<()>> {
    let bus = inner.pipeline.bus().ok_or(CompositorError::Gst("pipeline has no bus".into()))?;
    let weak: Weak<Inner> = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("room-program-bus".into())
        .spawn(move || {
            loop {
                let msg = bus.timed_pop(gst::ClockTime::from_mseconds(100));
                let Some(inner) = weak.upgrade() else { return };
                if !inner.running.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(msg) = msg {
                    handle(&inner, &msg);
                }
            }
        })
        .map_err(|source| CompositorError::Thread { what: "bus", source })
}

fn handle(inner: &Arc<Inner>, msg: &gst::Message) {
    use gst::MessageView;
    match msg.view() {
        MessageView::Error(err) => {
            let owner = msg.src().and_then(owning_bin_name);
            let text = format!("{} ({:?})", err.error(), err.debug());
            match owner.as_deref() {
                Some(name) if name.starts_with("output-") => {
                    let id = OutputId(parse_id(name));
                    // A destination's connection reconnects on its own schedule (and its
                    // error text has the stream key masked); other outputs are reported.
                    let for_destination = inner.destination_output_failed(id, &text);
                    if !for_destination {
                        tracing::warn!(output = %id, error = %text, "output failed; program continues");
                    }
                    // Teardown waits for streaming threads: do it off the bus thread.
                    let inner2 = inner.clone();
                    std::thread::spawn(move || inner2.drop_failed_output(id));
                    if !for_destination {
                        inner.emit(ProgramEvent::OutputFailed { output: id, error: text });
                    }
                }
                Some(name) if name.starts_with("track-") => {
                    let id = TrackId(parse_id(name));
                    tracing::warn!(track = %id, error = %text, "input track failed; removing it");
                    let inner2 = inner.clone();
                    std::thread::spawn(move || {
                        let _t = lock(&inner2.topology);
                        let _ = inner2.remove_track_locked(id);
                    });
                    inner.emit(ProgramEvent::TrackFailed { track: id, error: text });
                }
                _ => {
                    tracing::error!(error = %text, "program failed");
                    inner.emit(ProgramEvent::ProgramFailed { error: text });
                }
            }
        }
        MessageView::Warning(w) => {
            tracing::debug!(src = ?msg.src().map(|s| s.path_string()), warning = %w.error(), "pipeline warning");
        }
        MessageView::Element(e) => {
            let Some(s) = e.structure() else { return };
            let owner = msg.src().and_then(owning_bin_name);
            if s.name() == super::output_bin::RECORDING_MESSAGE
                && let Some(name) = owner.as_deref()
                && name.starts_with("output-")
            {
                let id = OutputId(parse_id(name));
                let state = s.get::<&str>("state").unwrap_or("");
                tracing::info!(output = %id, state, "recording sink report");
                if state != "started" {
                    inner.output_stored(id);
                }
                inner.emit(ProgramEvent::OutputMessage { output: id, message: s.to_owned() });
            }
        }
        MessageView::Latency(_) => {
            let _ = inner.pipeline.recalculate_latency();
        }
        _ => {}
    }
}

fn parse_id(name: &str) -> u64 {
    name.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}
