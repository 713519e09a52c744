//! An HLS output's bin: the program's H.264 and AAC, as encoded, handed sample by sample to
//! the LL-HLS segmenter (no muxer element: `crate::hls` writes the CMAF itself, so that parts
//! end where LL-HLS needs them and segments start on keyframes, forced ones included).
//!
//! ```text
//! video-tee → video-queue → appsink ─┐
//!                                    ├→ Feed (one lock) → Segmenter → HlsSink
//! audio-tee → audio-queue → appsink ─┘
//! ```
//!
//! Like every muxed output it starts on a keyframe with its timestamps from zero.

use super::elements::make;
use super::output_bin::{OutputId, add_sink, contained_sink_pad, queue};
use crate::error::{CompositorError, Result};
use crate::hls::{AudioConfig, HlsEvent, Sample, Segmenter, SegmenterConfig, VideoConfig};
use crate::hls_output::{HlsInit, HlsOutputSpec, HlsSink};
use crate::locks::lock;
use gst::prelude::*;
use std::sync::{Arc, Mutex};

/// What the output's queues hold at most (a stuck sink loses media rather than hold up the
/// program).
const HLS_QUEUE_MS: u32 = 5000;
/// H.264's clock in MP4, as in RTP.
const VIDEO_TIMESCALE: u64 = 90_000;
/// Samples kept while waiting for the other stream's format (about 5 s of both).
const MAX_WAITING: usize = 400;

/// Builds an HLS output's bin with `video` and `audio` ghost sink pads; returns it and its two
/// sinks.
pub(crate) fn build_bin(id: OutputId, spec: &HlsOutputSpec) -> Result<(gst::Bin, Vec<gst::Element>)> {
    let bin = gst::Bin::builder().name(format!("output-{}", id.0)).build();
    let feed = Arc::new(Mutex::new(Feed::new(spec.sink.clone(), spec.segmenter.clone())));
    let mut sinks = Vec::new();
    for kind in [Kind::Video, Kind::Audio] {
        let q = queue(&format!("{}-queue", kind.name()), HLS_QUEUE_MS)?;
        let sink = sample_sink(kind, feed.clone())?;
        bin.add(&q)?;
        add_sink(&bin, &sink)?;
        q.link(&sink)?;
        let target = q.static_pad("sink").ok_or_else(|| CompositorError::Gst("queue without sink".into()))?;
        bin.add_pad(&contained_sink_pad(kind.name(), &target)?)?;
        sinks.push(sink);
    }
    Ok((bin, sinks))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Video => "video",
            Kind::Audio => "audio",
        }
    }
}

/// An appsink handing each encoded frame to the feed, on its streaming thread.
fn sample_sink(kind: Kind, feed: Arc<Mutex<Feed>>) -> Result<gst::Element> {
    let sink = make("appsink", Some(&format!("{}-samples", kind.name())))?;
    sink.set_property("enable-last-sample", false);
    let appsink = sink.clone().downcast::<gst_app::AppSink>().map_err(|_| CompositorError::Gst("appsink".into()))?;
    let eos_feed = feed.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) {
                    lock(&feed).push(kind, caps, buffer);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .eos(move |_| lock(&eos_feed).eos(kind))
            .build(),
    );
    Ok(sink)
}

/// Turns the two streams' buffers into segmenter samples: reads each stream's format from its
/// caps and holds samples until both formats are known. (The segmenter gives every sample the
/// duration up to the next one's, so a frame dropped upstream lengthens its predecessor.)
struct Feed {
    sink: Arc<dyn HlsSink>,
    config: SegmenterConfig,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    segmenter: Option<Segmenter>,
    /// Samples from before both formats were known, in arrival order.
    waiting: Vec<(Kind, Sample)>,
    ended: Vec<Kind>,
    /// The formats could not be used: nothing is written (logged once).
    failed: bool,
}

impl Feed {
    fn new(sink: Arc<dyn HlsSink>, config: SegmenterConfig) -> Self {
        Feed {
            sink,
            config,
            video: None,
            audio: None,
            segmenter: None,
            waiting: Vec::new(),
            ended: Vec::new(),
            failed: false,
        }
    }

    fn push(&mut self, kind: Kind, caps: &gst::CapsRef, buffer: &gst::BufferRef) {
        if self.failed || self.ended.contains(&kind) {
            return;
        }
        if self.segmenter.is_none() {
            self.learn_format(kind, caps);
        }
        if let Some(sample) = self.sample(kind, buffer) {
            self.deliver(kind, sample);
        }
    }

    fn eos(&mut self, kind: Kind) {
        if self.ended.contains(&kind) {
            return;
        }
        self.ended.push(kind);
        if self.ended.len() == 2 {
            if let Some(segmenter) = &mut self.segmenter {
                for event in segmenter.finish() {
                    self.sink.event(event);
                }
            }
            self.sink.end();
        }
    }

    fn learn_format(&mut self, kind: Kind, caps: &gst::CapsRef) {
        let Some(s) = caps.structure(0) else { return };
        let codec_data =
            s.get::<gst::Buffer>("codec_data").ok().and_then(|b| b.map_readable().ok().map(|m| m.to_vec()));
        let Some(codec_data) = codec_data else { return };
        match kind {
            Kind::Video if self.video.is_none() => {
                let (Ok(width), Ok(height)) = (s.get::<i32>("width"), s.get::<i32>("height")) else { return };
                self.video =
                    Some(VideoConfig { width: width.max(0) as u32, height: height.max(0) as u32, avcc: codec_data });
            }
            Kind::Audio if self.audio.is_none() => {
                let (Ok(rate), Ok(channels)) = (s.get::<i32>("rate"), s.get::<i32>("channels")) else { return };
                self.audio = Some(AudioConfig {
                    sample_rate: rate.max(1) as u32,
                    channels: channels.max(1) as u16,
                    asc: codec_data,
                });
            }
            _ => {}
        }
    }

    /// A buffer as a sample in its stream's timescale (timestamps from zero: the output's start
    /// probes rebased them).
    fn sample(&self, kind: Kind, buffer: &gst::BufferRef) -> Option<Sample> {
        let timescale = match kind {
            Kind::Video => VIDEO_TIMESCALE,
            Kind::Audio => u64::from(self.audio.as_ref().map_or(48_000, |a| a.sample_rate)),
        };
        // Rounded, not truncated: 30 fps is exactly 3000 ticks a frame, never 2999 or 3001.
        let ticks = |t: gst::ClockTime| {
            ((u128::from(t.nseconds()) * u128::from(timescale) + 500_000_000) / 1_000_000_000) as u64
        };
        let pts = buffer.pts()?;
        let dts = buffer.dts().unwrap_or(pts);
        let duration = buffer.duration().map(ticks).unwrap_or(match kind {
            Kind::Video => VIDEO_TIMESCALE / 30,
            Kind::Audio => 1024,
        });
        let data = buffer.map_readable().ok()?.to_vec();
        Some(Sample {
            dts: ticks(dts),
            cts_offset: (ticks(pts) as i64 - ticks(dts) as i64).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            duration: duration.min(u64::from(u32::MAX)) as u32,
            keyframe: kind == Kind::Audio || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            data,
        })
    }

    fn deliver(&mut self, kind: Kind, sample: Sample) {
        if self.segmenter.is_none() {
            self.waiting.push((kind, sample));
            if self.waiting.len() > MAX_WAITING {
                self.waiting.remove(0);
            }
            self.start_segmenter();
            return;
        }
        self.segment(kind, sample);
    }

    fn start_segmenter(&mut self) {
        let (Some(video), Some(audio)) = (self.video.clone(), self.audio.clone()) else { return };
        let codecs = match video.codec() {
            Ok(v) => format!("{v},{}", audio.codec()),
            Err(err) => return self.fail(&err.to_string()),
        };
        let (width, height) = (video.width, video.height);
        match Segmenter::new(self.config.clone(), video, audio) {
            Ok(segmenter) => {
                self.sink.init(HlsInit { bytes: segmenter.init_segment().to_vec(), codecs, width, height });
                self.segmenter = Some(segmenter);
                for (kind, sample) in std::mem::take(&mut self.waiting) {
                    self.segment(kind, sample);
                }
            }
            Err(err) => self.fail(&err.to_string()),
        }
    }

    fn segment(&mut self, kind: Kind, sample: Sample) {
        let Some(segmenter) = &mut self.segmenter else { return };
        let events: Vec<HlsEvent> = match kind {
            Kind::Video => segmenter.push_video(sample),
            Kind::Audio => segmenter.push_audio(sample),
        };
        for event in events {
            self.sink.event(event);
        }
    }

    fn fail(&mut self, error: &str) {
        tracing::error!(%error, "the program's encoded format cannot be written as CMAF: the HLS output stays empty");
        self.failed = true;
        self.waiting.clear();
    }
}
