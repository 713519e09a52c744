//! Decoding what the SFU handed over of a video track, with GStreamer (the publisher itself is
//! the test kit's `tessera_testkit::whip::Publisher`).

use gst::prelude::*;
use tessera_sfu::TrackInfo;

/// Decodes a handed-over video track with GStreamer (appsrc ! depayloader ! decoder ! appsink)
/// and returns the number of frames and the size of the last one.
pub fn decode(track: &TrackInfo, packets: &[Vec<u8>], chain: &str) -> (usize, Option<(i32, i32)>) {
    gst::init().expect("gst init");
    let encoding = track.mime_type.split('/').nth(1).unwrap_or("").to_ascii_uppercase();
    let desc = format!(
        "appsrc name=src is-live=false format=time caps=application/x-rtp,media=video,clock-rate={},encoding-name={encoding},payload={} \
         ! {chain} ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink sync=false",
        track.clock_rate, track.payload_type
    );
    let pipeline = gst::parse::launch(&desc).expect("decoder pipeline").downcast::<gst::Pipeline>().unwrap();
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).expect("decoder plays");
    for p in packets {
        src.push_buffer(gst::Buffer::from_slice(p.clone())).expect("push");
    }
    src.end_of_stream().expect("eos");
    let mut frames = 0;
    let mut size = None;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        frames += 1;
        let caps = sample.caps().expect("caps");
        let s = caps.structure(0).unwrap();
        size = Some((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()));
    }
    let bus = pipeline.bus().unwrap();
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("decoder error: {msg:?}");
    }
    let _ = pipeline.set_state(gst::State::Null);
    (frames, size)
}
