//! `tesseralocalsink`: records a fragmented MP4 stream to a local file through the same
//! spool, journal and recovery as `tesseras3sink`.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct LocalRecordingSink(ObjectSubclass<imp::LocalRecordingSink>) @extends crate::recordingsink::RecordingSink, gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "tesseralocalsink", gst::Rank::NONE, LocalRecordingSink::static_type())
}
