//! `OpusDecoder`: WebRTC's Opus (one stream, mono or stereo) to 48 kHz F32 for the audio mixer,
//! with packet loss concealment and in-band FEC, through libopus's single-stream API (see
//! [`libopus`] for why not `opusdec`).

mod imp;
mod libopus;
mod loss;

use gst::glib;

glib::wrapper! {
    pub struct OpusDecoder(ObjectSubclass<imp::OpusDecoder>)
        @extends gst_audio::AudioDecoder, gst::Element, gst::Object;
}

impl OpusDecoder {
    /// A decoder that conceals lost packets and, with `fec`, rebuilds them from the next
    /// packet's in-band FEC data (one frame of delay, 20 ms for WebRTC).
    pub fn new(name: &str, fec: bool) -> OpusDecoder {
        glib::Object::builder().property("name", name).property("use-inband-fec", fec).build()
    }

    pub fn upcast_element(&self) -> gst::Element {
        use gst::prelude::*;
        self.clone().upcast()
    }
}

#[cfg(test)]
mod tests;
