//! Small helpers for making and configuring elements.

use crate::error::{CompositorError, Result};
use gst::prelude::*;

/// Every GStreamer element a program may make, with the Debian 12 package that has it. A
/// missing one would only fail when the first participant joins (a camera's name label needs
/// `textoverlay`), so the server checks them all when it starts.
pub const REQUIRED_ELEMENTS: &[(&str, &str)] = &[
    ("capsfilter", "libgstreamer1.0-0"),
    ("queue", "libgstreamer1.0-0"),
    ("tee", "libgstreamer1.0-0"),
    ("filesink", "libgstreamer1.0-0"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audiomixer", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("opusenc", "gstreamer1.0-plugins-base"),
    ("compositor", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("textoverlay", "gstreamer1.0-x"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("flvmux", "gstreamer1.0-plugins-good"),
    ("imagefreeze", "gstreamer1.0-plugins-good"),
    ("jpegenc", "gstreamer1.0-plugins-good"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtpjitterbuffer", "gstreamer1.0-plugins-good"),
    ("rtpopusdepay", "gstreamer1.0-plugins-good"),
    ("rtpopuspay", "gstreamer1.0-plugins-good"),
    ("rtpvp8depay", "gstreamer1.0-plugins-good"),
    ("vp8dec", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("rtmp2sink", "gstreamer1.0-plugins-bad"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("avenc_aac", "gstreamer1.0-libav"),
];

/// The required elements this machine lacks, each with its Debian package.
pub fn missing_elements() -> Vec<(&'static str, &'static str)> {
    REQUIRED_ELEMENTS.iter().copied().filter(|(name, _)| gst::ElementFactory::find(name).is_none()).collect()
}

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
    pad.set_active(true).map_err(CompositorError::glib(format!("activating {name}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Element names in `make("…"` calls of this crate's program code.
    fn made_in_source() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/program");
        let mut names = Vec::new();
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).expect("source directory").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source file");
                    for (i, _) in text.match_indices("make(\"") {
                        let rest = &text[i + 6..];
                        let name = rest.split('"').next().unwrap_or_default();
                        if !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        {
                            names.push(name.to_owned());
                        }
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn the_inventory_lists_every_element_the_program_makes() {
        let made = made_in_source();
        assert!(made.len() > 20, "the scan found the program's elements: {made:?}");
        let unlisted: Vec<_> = made.iter().filter(|m| !REQUIRED_ELEMENTS.iter().any(|(n, _)| n == m)).collect();
        assert!(unlisted.is_empty(), "made but not in REQUIRED_ELEMENTS: {unlisted:?}");
    }

    #[test]
    fn every_required_element_is_installed() {
        gst::init().expect("GStreamer");
        assert_eq!(missing_elements(), vec![], "scripts/install-deps must install these packages");
    }
}
