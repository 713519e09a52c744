//! The program's background picture: a live solid-colour source whose colour layouts change.
//!
//! GStreamer 1.22's `videotestsrc` keeps a cached frame for solid colours and drops it on any
//! property change without a lock, so a colour set from another thread while it streams can
//! free the frame it is copying (a crash, or "streaming stopped, reason error" and a dead
//! program). The colour is therefore only ever set from the source's own streaming thread,
//! between two frames: a buffer probe on its output applies the colour last asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gst::prelude::*;

use super::elements::make;
use crate::error::{CompositorError, Result};

/// The colour the background should show (`0xAARRGGBB`), applied at its next frame.
#[derive(Clone)]
pub(crate) struct BackgroundColor {
    wanted: Arc<AtomicU32>,
}

impl BackgroundColor {
    /// Shows `argb` from the next frame on.
    pub fn set(&self, argb: u32) {
        self.wanted.store(argb, Ordering::Release);
    }
}

/// A live solid-colour source starting with `argb`, and the handle that changes its colour.
pub(crate) fn background_source(argb: u32) -> Result<(gst::Element, BackgroundColor)> {
    let source = make("videotestsrc", Some("background"))?;
    source.set_property("is-live", true);
    source.set_property_from_str("pattern", "solid-color");
    source.set_property("foreground-color", argb);
    let wanted = Arc::new(AtomicU32::new(argb));
    let shown = AtomicU32::new(argb);
    let w = Arc::clone(&wanted);
    let weak = source.downgrade();
    source
        .static_pad("src")
        .ok_or_else(|| CompositorError::Gst("videotestsrc without src pad".into()))?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let argb = w.load(Ordering::Acquire);
            if shown.swap(argb, Ordering::AcqRel) != argb
                && let Some(src) = weak.upgrade()
            {
                src.set_property("foreground-color", argb);
            }
            gst::PadProbeReturn::Ok
        });
    Ok((source, BackgroundColor { wanted }))
}
