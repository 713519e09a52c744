//! `TileCrop`: shows part of a camera frame without copying it.
//!
//! A `cover` tile shows the centre of a frame. Cropping through the compositor pad's
//! `converter-config` costs a video converter per pad, which in GStreamer 1.22 copies every frame
//! into a freshly allocated output-sized buffer on the aggregator's worker threads. This element
//! instead hands on the same memory with a `GstVideoMeta` whose plane offsets start at the crop,
//! and caps of the cropped size, so the compositor blends the tile straight from the decoder's
//! frame.

mod imp;

use crate::layout::Rect;
use crate::locks::lock;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::ObjectSubclassIsExt;
use gst_base::prelude::*;

glib::wrapper! {
    pub struct TileCrop(ObjectSubclass<imp::TileCrop>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

impl TileCrop {
    pub fn new(name: &str) -> TileCrop {
        glib::Object::builder().property("name", name).build()
    }

    /// The part of the source frame to show (source pixels), None for all of it. Takes effect
    /// on the next frame; a crop that does not fit the frame's size shows the whole frame.
    /// Callable from any thread.
    pub fn set_crop(&self, crop: Option<Rect>) {
        let changed = {
            let mut wanted = lock(&self.imp().wanted);
            let changed = *wanted != crop;
            *wanted = crop;
            changed
        };
        if changed {
            // Renegotiates before the next buffer: new caps with the cropped size.
            self.upcast_ref::<gst_base::BaseTransform>().reconfigure_src();
        }
    }

    pub fn upcast_element(&self) -> gst::Element {
        self.clone().upcast()
    }
}
