//! An RTP output's bin, for an SFU: the program's one H.264 encode packetized as it is, and the
//! raw mix encoded to Opus (this branch is the only Opus encode, and exists only while the
//! output is attached).
//!
//! ```text
//! video-tee ─→ video-queue → rtph264pay ─→ appsink → RtpSink::video
//! raw-audio-tee → audio-queue → audioconvert → audioresample → opusenc → rtpopuspay → appsink → RtpSink::audio
//! ```
//!
//! Like every output it starts on a keyframe (asked for on attach) and keeps the program's
//! running time (`Timeline::Program`), which the payloaders turn into RTP time from the offsets
//! in its [`RtpOutputInfo`]; its queues drop their oldest media rather than hold up the program.

use super::elements::{add_chain, capsfilter, make, set_if_exists};
use super::output_bin::{OutputId, OutputSpec, add_sink, contained_sink_pad, queue};
use super::{Inner, Program};
use crate::error::{CompositorError, Result};
use crate::locks::lock;
use crate::rtp::{nanos_to_ntp, ntp_now_ns};
use crate::rtp_output::{
    OPUS_BITRATE, OPUS_CHANNELS, OPUS_CLOCK_RATE, OPUS_FRAME_MS, RTP_MTU, RtpClockSample, RtpOutputInfo, RtpOutputSpec,
    RtpSink, RtpStreamInfo, profile_level_id,
};
use gst::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an RTP output's queues hold at most: media later than this is of no use to a call.
const RTP_QUEUE_MS: u32 = 1000;
/// How long attaching waits for the encoder's first caps (a program that just started).
const ENCODER_CAPS_TIMEOUT: Duration = Duration::from_secs(5);

impl OutputSpec {
    /// RTP to `sink` with the default payload types (H.264 102, Opus 111).
    pub fn rtp(sink: Arc<dyn RtpSink>) -> Self {
        OutputSpec::Rtp(RtpOutputSpec::new(sink))
    }
}

impl Program {
    /// The streams of RTP output `id` (SSRCs, payload types, fmtp, timestamp offsets), for an
    /// SFU to announce; `None` for an unknown output or one that is not RTP.
    pub fn rtp_output(&self, id: OutputId) -> Option<RtpOutputInfo> {
        lock(&self.inner.outputs).get(&id).and_then(|o| o.rtp.clone())
    }

    /// Now, on the wall clock and in RTP output `id`'s two streams (read from the program's
    /// clock): the NTP/RTP pair of an RTCP sender report, the same instant for video and
    /// audio. Media stamped with an RTP time was composed at that instant of the program, so
    /// its packets leave a little later (the mixers' latency and the encoders').
    pub fn rtp_clock(&self, id: OutputId) -> Result<RtpClockSample> {
        let info = self.rtp_output(id).ok_or(CompositorError::UnknownOutput(id.0))?;
        let running = self.inner.pipeline.current_running_time().ok_or(CompositorError::NotRunning)?;
        let ntp = nanos_to_ntp(ntp_now_ns());
        Ok(info.clock_at(Duration::from_nanos(running.nseconds()), ntp))
    }
}

impl Inner {
    /// Describes a new RTP output: fresh SSRCs and timestamp offsets, and the profile the
    /// encoder produces. Waits for the encoder's first caps on a program that just started.
    pub(super) fn describe_rtp_output(&self, spec: &RtpOutputSpec) -> Result<RtpOutputInfo> {
        spec.validate()?;
        let profile = self.encoded_video_profile(ENCODER_CAPS_TIMEOUT)?;
        Ok(RtpOutputInfo::new(spec, &profile, gst::glib::random_int))
    }

    /// The `profile-level-id` of the program's H.264 (from its SPS, as x264 chose the level).
    fn encoded_video_profile(&self, timeout: Duration) -> Result<String> {
        let pad =
            self.primary.video.video_tee.static_pad("sink").ok_or(CompositorError::Gst("tee without sink".into()))?;
        let deadline = Instant::now() + timeout;
        loop {
            let avcc = pad.current_caps().and_then(|caps| {
                let s = caps.structure(0)?;
                let data = s.get::<gst::Buffer>("codec_data").ok()?;
                let map = data.map_readable().ok()?;
                profile_level_id(&map)
            });
            if let Some(profile) = avcc {
                return Ok(profile);
            }
            if !self.running.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(CompositorError::NotRunning);
            }
            if Instant::now() >= deadline {
                return Err(CompositorError::Timeout("the encoder's first caps (the H.264 profile)"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Builds an RTP output's bin with `video` and `audio` ghost sink pads (`audio` takes the raw
/// mix in the program's format); returns it and its two sinks.
pub(crate) fn build_bin(
    id: OutputId,
    spec: &RtpOutputSpec,
    info: &RtpOutputInfo,
) -> Result<(gst::Bin, Vec<gst::Element>)> {
    let bin = gst::Bin::builder().name(format!("output-{}", id.0)).build();

    let video_queue = queue("video-queue", RTP_QUEUE_MS)?;
    let h264_pay = payloader("rtph264pay", &info.video)?;
    // SPS and PPS ahead of every IDR, so a viewer can start on any keyframe, bundled with it
    // in STAP-A packets as WebRTC receivers expect.
    h264_pay.set_property("config-interval", -1i32);
    h264_pay.set_property_from_str("aggregate-mode", "zero-latency");
    let sink = spec.sink.clone();
    let video_sink = packet_sink("video-packets", move |packet| sink.video(packet))?;
    add_chain(&bin, &[video_queue.clone(), h264_pay.clone()])?;
    add_sink(&bin, &video_sink)?;
    h264_pay.link(&video_sink)?;

    let audio_queue = queue("audio-queue", RTP_QUEUE_MS)?;
    let opus_caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", OPUS_CLOCK_RATE as i32)
        .field("channels", OPUS_CHANNELS as i32)
        .build();
    let opus = make("opusenc", Some("opus-encoder"))?;
    opus.set_property("bitrate", OPUS_BITRATE as i32);
    opus.set_property_from_str("frame-size", &OPUS_FRAME_MS.to_string());
    let opus_pay = payloader("rtpopuspay", &info.audio)?;
    let sink = spec.sink.clone();
    let audio_sink = packet_sink("audio-packets", move |packet| sink.audio(packet))?;
    add_chain(
        &bin,
        &[
            audio_queue.clone(),
            make("audioconvert", None)?,
            // The mix is 44.1 or 48 kHz; Opus is coded at 48 kHz.
            make("audioresample", None)?,
            capsfilter(opus_caps)?,
            opus,
            opus_pay.clone(),
        ],
    )?;
    add_sink(&bin, &audio_sink)?;
    opus_pay.link(&audio_sink)?;

    for (kind, q) in [("video", &video_queue), ("audio", &audio_queue)] {
        let target = q.static_pad("sink").ok_or_else(|| CompositorError::Gst("queue without sink".into()))?;
        bin.add_pad(&contained_sink_pad(kind, &target)?)?;
    }
    Ok((bin, vec![video_sink, audio_sink]))
}

/// A payloader stamping `stream`'s SSRC, payload type and RTP times.
fn payloader(factory: &'static str, stream: &RtpStreamInfo) -> Result<gst::Element> {
    let pay = make(factory, None)?;
    pay.set_property("pt", stream.payload_type as u32);
    pay.set_property("ssrc", stream.ssrc);
    pay.set_property("timestamp-offset", stream.timestamp_offset);
    pay.set_property("mtu", RTP_MTU);
    // RTP time from each buffer's running time, never from counted samples or byte offsets:
    // that is the mapping `RtpStreamInfo::rtp_time_at` states, the same for both streams.
    set_if_exists(&pay, "perfect-rtptime", false);
    Ok(pay)
}

/// An appsink handing each packet's bytes to `deliver` on the streaming thread.
fn packet_sink(name: &str, deliver: impl Fn(&[u8]) + Send + Sync + 'static) -> Result<gst::Element> {
    let sink = make("appsink", Some(name))?;
    // Nothing keeps a reference to the last packet.
    sink.set_property("enable-last-sample", false);
    let appsink = sink.clone().downcast::<gst_app::AppSink>().map_err(|_| CompositorError::Gst("appsink".into()))?;
    // One buffer reused for every packet: payloaders make header and payload separate memories.
    let mut packet = Vec::with_capacity(RTP_MTU as usize);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    packet.resize(buffer.size(), 0);
                    if buffer.copy_to_slice(0, &mut packet).is_ok() {
                        deliver(&packet);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(sink)
}
