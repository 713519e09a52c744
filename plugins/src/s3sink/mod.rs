//! `tesseras3sink`: records a fragmented MP4 stream to S3 by multipart upload, crash-safely.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct S3MultipartSink(ObjectSubclass<imp::S3MultipartSink>) @extends crate::recordingsink::RecordingSink, gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "tesseras3sink", gst::Rank::NONE, S3MultipartSink::static_type())
}
