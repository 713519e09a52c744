//! The fixed parts of a room program: the audio mixer, its AAC encode and their tees (one per
//! program), and a rendition's video chain: background source, compositor, encoder and the tees
//! every output of that rendition hangs off (one encode feeds all its outputs).
//!
//! Both mixers are live and aggregate on their deadline, so the program runs at a constant rate
//! with no participant at all and while inputs stall: the compositor because its background is a
//! live source, the audio mixer because it is forced live (silence when nobody is heard).

use super::background::{BackgroundColor, background_source};
use super::elements::{add_chain, capsfilter, live_src_pad, make, ms, set_if_exists, set_str_if_exists};
use crate::config::ProgramConfig;
use crate::error::{CompositorError, Result};
use crate::layout::Rgba;
use gst::prelude::*;

pub(crate) struct Backbone {
    pub audiomixer: gst::Element,
    /// The mixed raw audio, before the AAC encoder (an RTP output's Opus encode hangs off it).
    pub raw_audio_tee: gst::Element,
    pub audio_tee: gst::Element,
    /// The audio mixer's first input: one block of silence at 0 (see `prime_audio`).
    audio_primer: gst::Pad,
}

/// One rendition's video: background, compositor, encoder and the tees its outputs hang off.
pub(crate) struct VideoChain {
    pub compositor: gst::Element,
    pub background: BackgroundColor,
    pub encoder: gst::Element,
    /// The composited raw video, before the encoder (the preview hangs off it).
    pub raw_tee: gst::Element,
    pub video_tee: gst::Element,
    /// Every element of the chain, to take it out of the pipeline again (a rendition ending).
    pub elements: Vec<gst::Element>,
}

pub(crate) fn raw_video_caps(c: &ProgramConfig) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", c.width as i32)
        .field("height", c.height as i32)
        .field("framerate", gst::Fraction::new(c.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("colorimetry", PROGRAM_COLORIMETRY)
        .field("chroma-site", PROGRAM_CHROMA_SITE)
        .build()
}

/// Pinned so the compositor never renegotiates when the first camera arrives (a caps change
/// would reach x264 and the muxers mid-stream), and set to what WebRTC decoders produce (BT.601,
/// centred chroma) so camera tiles need no colour conversion. x264 signals it in the VUI.
pub(crate) const PROGRAM_COLORIMETRY: &str = "bt601";
pub(crate) const PROGRAM_CHROMA_SITE: &str = "jpeg";

/// The audio mixer's block: Opus frames from WebRTC are 20 ms.
const AUDIO_BLOCK_MS: u32 = 20;

pub(crate) fn raw_audio_caps(c: &ProgramConfig) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", c.audio_sample_rate as i32)
        .field("channels", 2i32)
        .build()
}

fn configure_mixer(mixer: &gst::Element, c: &ProgramConfig) {
    // Inputs join after the program started, each with a jitter buffer in front: make the
    // mixers wait for that much from the start instead of re-negotiating latency later.
    let upstream = ms(c.jitter_buffer_ms) + ms(c.mixer_latency_ms);
    set_if_exists(mixer, "min-upstream-latency", upstream);
    set_if_exists(mixer, "latency", ms(c.mixer_latency_ms));
    // Not `ignore-inactive-pads`: with it, GStreamer 1.22's videoaggregator takes "no pad has
    // had data yet" (the first frame, while inputs are being added) for "all pads are EOS" and
    // ends the program. A live mixer times out at its deadline anyway, so inputs that have not
    // sent anything yet never hold it up.
    set_if_exists(mixer, "ignore-inactive-pads", false);
}

/// Builds a rendition's video chain in `pipeline`: background frame -> freeze -> compositor ->
/// raw tee (the preview) -> x264 -> tee. `suffix` keeps element names unique when a program
/// has several renditions (the first has none).
pub(crate) fn build_video(pipeline: &gst::Pipeline, c: &ProgramConfig, bg: Rgba, suffix: &str) -> Result<VideoChain> {
    let bin = pipeline.upcast_ref::<gst::Bin>();
    let named = |n: &str| format!("{n}{suffix}");
    let (freeze, background) = background_source(&raw_video_caps(c), bg.argb_u32(), &named("background"))?;
    let compositor = make("compositor", Some(&named("compositor")))?;
    compositor.set_property_from_str("background", "black");
    compositor.set_property("emit-signals", true);
    // Blending a few tiles is a few memcpy's per frame: waking worker threads for it each frame
    // costs more than it saves.
    set_if_exists(&compositor, "max-threads", 1u32);
    configure_mixer(&compositor, c);
    // No frame before the background's first one. While the program goes to PLAYING, the
    // compositor can hold the clock before its base time is set (GStreamer hands the clock to
    // every element first): its first deadline is then long past, and it composes a frame at
    // 0 from nothing. With the default `zero`, the background frame arriving next resets its
    // position to 0 (`min(0, position)`), so the next frame repeats PTS 0 with twice the
    // duration: the encoder gets 0, 0, 0.067, ... and a recording starting there misses its
    // second frame ("timestamp gap: 0.0000 -> 0.0667"). `first` waits for a first buffer
    // before it ever times out, and starts on that buffer: the background's, on its frame grid.
    compositor.set_property_from_str("start-time-selection", "first");
    let encoder = make("x264enc", Some(&named("video-encoder")))?;
    encoder.set_property_from_str("speed-preset", &c.x264_preset);
    encoder.set_property("threads", c.encoder_threads());
    encoder.set_property_from_str("tune", "zerolatency");
    encoder.set_property("bitrate", c.video_bitrate_kbps);
    encoder.set_property("key-int-max", c.keyframe_interval_frames());
    encoder.set_property("bframes", 0u32);
    encoder.set_property("b-adapt", false);
    // Keyframes exactly on the interval (ingest services require it); GOPs stay closed.
    encoder.set_property("option-string", "scenecut=0:open-gop=0");
    let video_tee = make("tee", Some(&named("video-tee")))?;
    video_tee.set_property("allow-not-linked", true);
    let raw_tee = make("tee", Some(&named("raw-video-tee")))?;
    raw_tee.set_property("allow-not-linked", true);
    let enc_queue = make("queue", Some(&named("video-encode-queue")))?;
    enc_queue.set_property("max-size-buffers", 5u32);
    enc_queue.set_property("max-size-bytes", 0u32);
    enc_queue.set_property("max-size-time", 0u64);
    let elements = vec![
        freeze.clone(),
        capsfilter(raw_video_caps(c))?,
        compositor.clone(),
        capsfilter(raw_video_caps(c))?,
        raw_tee.clone(),
        enc_queue,
        encoder.clone(),
        capsfilter(
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .field("profile", "high")
                .build(),
        )?,
        make("h264parse", None)?,
        video_tee.clone(),
    ];
    add_chain(bin, &elements)?;
    if let Some(bg_pad) = compositor.static_pad("sink_0") {
        bg_pad.set_property("zorder", 0u32);
    }
    Ok(VideoChain { compositor, background, encoder, raw_tee, video_tee, elements })
}

/// Builds the program's audio: the mixer, the raw mix's tee, the AAC encoder and its tee.
pub(crate) fn build_audio(pipeline: &gst::Pipeline, c: &ProgramConfig) -> Result<Backbone> {
    let bin = pipeline.upcast_ref::<gst::Bin>();

    // Audio: audiomixer -> raw tee (RTP outputs' Opus) -> AAC -> tee. Forced live: it mixes on
    // its deadline with no input at all (silence) instead of needing a live silence source and
    // its thread.
    let audiomixer = gst::ElementFactory::make("audiomixer")
        .name("audiomixer")
        .property("force-live", true)
        .build()
        .map_err(|_| CompositorError::MissingElement("audiomixer"))?;
    configure_mixer(&audiomixer, c);
    // The mixer's first input buffer is ours: a block of silence at 0 (`prime_audio`). With
    // the default `zero`, the first buffer a participant sends resets the mixer's position to
    // 0 (`min(0, position)`). When that audio comes after the mixer's first deadline (420 ms
    // in: whenever the first speaker joins a program already running), the mixer has been
    // sending silence since 0 and its next block goes out at PTS 0 with the whole elapsed time
    // as its duration: the program's audio goes back in time once, into the AAC encoder and
    // every output. `first` also keeps the mixer from timing out before that buffer, so its
    // timeline starts at 0.
    audiomixer.set_property_from_str("start-time-selection", "first");
    // 20 ms blocks, as WebRTC's Opus frames: one input buffer per pad per output, half the
    // wake-ups of the default 10 ms.
    set_if_exists(&audiomixer, "output-buffer-duration", ms(AUDIO_BLOCK_MS));
    let aac = make("avenc_aac", Some("audio-encoder"))?;
    aac.set_property("bitrate", (c.audio_bitrate_kbps * 1000) as i32);
    set_str_if_exists(&aac, "compliance", "normal");
    // FFmpeg's fast coder: 0.022 core for 128 kbit/s stereo here, against 0.031-0.036 for its
    // default two-loop search, which also jumped to 0.09-0.11 in about one run in four on the
    // same input (bench/README.md). Same bitrate, AAC-LC either way.
    set_str_if_exists(&aac, "aac-coder", "fast");
    let audio_tee = make("tee", Some("audio-tee"))?;
    audio_tee.set_property("allow-not-linked", true);
    let raw_audio_tee = make("tee", Some("raw-audio-tee"))?;
    raw_audio_tee.set_property("allow-not-linked", true);
    let aq = make("queue", Some("audio-encode-queue"))?;
    add_chain(
        bin,
        &[
            audiomixer.clone(),
            capsfilter(raw_audio_caps(c))?,
            raw_audio_tee.clone(),
            aq,
            make("audioconvert", None)?,
            aac.clone(),
            make("aacparse", None)?,
            audio_tee.clone(),
        ],
    )?;
    let audio_primer = live_src_pad("audio-primer", "audio-primer", &raw_audio_caps(c))?;
    let primer_sink =
        audiomixer.request_pad_simple("sink_%u").ok_or(CompositorError::Gst("audiomixer refused a sink pad".into()))?;
    audio_primer.link(&primer_sink)?;
    // Released once mixed (the mixer's first output): a pad that never has data again would
    // make the mixer wait for its deadline even when every participant's audio is there, i.e.
    // add 220 ms to the program's audio.
    if let Some(src) = audiomixer.static_pad("src") {
        let mixer = audiomixer.downgrade();
        src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if let Some(mixer) = mixer.upgrade() {
                let pad = primer_sink.clone();
                // Not from the mixer's own streaming thread.
                mixer.call_async(move |m| m.release_request_pad(&pad));
            }
            gst::PadProbeReturn::Remove
        });
    }
    Ok(Backbone { audiomixer, raw_audio_tee, audio_tee, audio_primer })
}

impl Backbone {
    /// Starts the audio mixer's timeline at 0: pushes one block of silence at running time 0
    /// into a mixer pad of its own (released once mixed). Call once the program plays.
    pub fn prime_audio(&self, c: &ProgramConfig) -> Result<()> {
        let samples = (c.audio_sample_rate * AUDIO_BLOCK_MS / 1000) as usize;
        // F32LE stereo: 8 bytes a frame; zero bytes are silence.
        let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; samples * 8]);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::ZERO);
            b.set_duration(gst::ClockTime::from_nseconds(ms(AUDIO_BLOCK_MS)));
        }
        self.audio_primer.push(buffer).map(|_| ()).map_err(CompositorError::flow("starting the audio mixer"))
    }
}
