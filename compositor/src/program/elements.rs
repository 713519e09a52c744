//! Small helpers for making and configuring elements.

use crate::error::{CompositorError, Result};
use gst::prelude::*;

/// Makes an element, with a clear error naming the missing plugin.
pub(crate) fn make(factory: &'static str, name: Option<&str>) -> Result<gst::Element> {
    let mut b = gst::ElementFactory::make(factory);
    if let Some(n) = name {
        b = b.name(n);
    }
    b.build().map_err(|_| CompositorError::MissingElement(factory))
}

pub(crate) fn capsfilter(caps: gst::Caps) -> Result<gst::Element> {
    let f = make("capsfilter", None)?;
    f.set_property("caps", caps);
    Ok(f)
}

/// Sets a property only where this GStreamer version has it (some arrived in 1.20/1.22).
pub(crate) fn set_if_exists<V: Into<gst::glib::Value>>(e: &gst::Element, name: &str, value: V) {
    if e.find_property(name).is_some() {
        e.set_property(name, value);
    }
}

pub(crate) fn set_str_if_exists(e: &gst::Element, name: &str, value: &str) {
    if e.find_property(name).is_some() {
        e.set_property_from_str(name, value);
    }
}

/// A source pad of our own, pushed from the caller's thread: live with no latency of its own
/// (what it sends is stamped on arrival or untimed), answering caps queries with `caps`, active,
/// with its stream-start, caps and segment stored: they go out ahead of its first buffer.
pub(crate) fn live_src_pad(name: &str, stream_id: &str, caps: &gst::Caps) -> Result<gst::Pad> {
    let answer_caps = caps.clone();
    let pad = gst::Pad::builder(gst::PadDirection::Src)
        .name(name)
        .query_function(move |pad, parent, query| match query.view_mut() {
            gst::QueryViewMut::Latency(q) => {
                q.set(true, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                true
            }
            gst::QueryViewMut::Caps(q) => {
                let result = match q.filter() {
                    Some(f) => f.intersect_with_mode(&answer_caps, gst::CapsIntersectMode::First),
                    None => answer_caps.clone(),
                };
                q.set_result(&result);
                true
            }
            _ => gst::Pad::query_default(pad, parent, query),
        })
        .build();
    pad.set_active(true).map_err(|e| CompositorError::Gst(format!("activating {name}: {e}")))?;
    // Unlinked, these are only stored; the first push sends them.
    let _ = pad.push_event(gst::event::StreamStart::builder(stream_id).build());
    let _ = pad.push_event(gst::event::Caps::new(caps));
    let _ = pad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
    Ok(pad)
}

/// Adds `chain` to `bin` and links it in order.
pub(crate) fn add_chain(bin: &gst::Bin, chain: &[gst::Element]) -> Result<()> {
    bin.add_many(chain)?;
    gst::Element::link_many(chain)?;
    Ok(())
}

/// The element that owns `obj` at the top of the pipeline: a track, output or placeholder bin.
pub(crate) fn owning_bin_name(obj: &gst::Object) -> Option<String> {
    let mut cur = Some(obj.clone());
    while let Some(o) = cur {
        let name = o.name();
        if name.starts_with("track-") || name.starts_with("output-") || name.starts_with("placeholder-") {
            return Some(name.to_string());
        }
        cur = o.parent();
    }
    None
}

pub(crate) fn ms(v: u32) -> u64 {
    v as u64 * 1_000_000
}
