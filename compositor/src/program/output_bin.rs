//! Outputs: bins hanging off the encoded video and audio tees (an RTP output's audio: the raw
//! mix, see `rtp_bin`). Each has its own queues, starts on a keyframe with timestamps on its
//! timeline, and is finished with EOS without touching the program or the other outputs.

use super::elements::{make, ms};
use crate::error::{CompositorError, Result};
use crate::locks::lock;
use crate::rtp_output::{RtpOutputInfo, RtpOutputSpec};
use gst::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct OutputId(pub u64);

impl std::fmt::Display for OutputId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "output-{}", self.0)
    }
}

/// How long flvmux waits for a late stream before it writes what it has.
const FLV_MUX_LATENCY: gst::ClockTime = gst::ClockTime::from_mseconds(1000);

/// What to attach to the program.
#[derive(Debug, Clone)]
pub enum OutputSpec {
    /// Fragmented MP4 written to a local file: a killed process leaves a playable file up to
    /// the last complete fragment.
    Mp4File { path: PathBuf, fragment_duration: Duration },
    /// Fragmented MP4 as a byte stream into any sink element (no seeking back).
    FragmentedMp4 { sink: gst::Element, fragment_duration: Duration },
    /// FLV (H.264 + AAC) into any sink element, e.g. `rtmp2sink`.
    Flv { sink: gst::Element },
    /// RTP packets of the program's H.264 and of an Opus encode of its mix, for an SFU
    /// (`Program::rtp_output` describes the streams).
    Rtp(RtpOutputSpec),
    /// The program's H.264 and AAC cut into LL-HLS parts and segments (CMAF) for an
    /// [`crate::hls_output::HlsSink`].
    Hls(crate::hls_output::HlsOutputSpec),
}

impl OutputSpec {
    pub fn mp4_file(path: impl Into<PathBuf>) -> Self {
        OutputSpec::Mp4File { path: path.into(), fragment_duration: Duration::from_secs(1) }
    }
}

/// Counters an output keeps while it runs.
#[derive(Debug, Default)]
pub(crate) struct OutputCounters {
    pub start_pts: AtomicU64,
    pub last_pts: AtomicU64,
    pub video_frames: AtomicU64,
    /// Times an output queue was full and dropped its oldest buffer.
    pub overruns: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct OutputStats {
    pub video_frames: u64,
    /// Program running time of the output's first frame (its time zero), once started.
    pub started_at: Option<Duration>,
    /// Program time covered so far.
    pub duration: Duration,
    /// Times one of the output's queues was full and dropped its oldest buffer (a stuck
    /// output loses data rather than hold up the program).
    pub overruns: u64,
}

pub(crate) struct Output {
    pub bin: gst::Bin,
    pub sink: gst::Element,
    pub video_tee_pad: gst::Pad,
    pub audio_tee_pad: gst::Pad,
    pub counters: Arc<OutputCounters>,
    pub eos: std::sync::mpsc::Receiver<()>,
    /// An RTP output's streams.
    pub rtp: Option<RtpOutputInfo>,
    /// The rendition whose video it takes.
    pub rendition: super::rendition::RenditionId,
}

impl Output {
    pub fn stats(&self) -> OutputStats {
        let c = &self.counters;
        let start = c.start_pts.load(Ordering::Relaxed);
        let last = c.last_pts.load(Ordering::Relaxed);
        let duration = if start == u64::MAX || last == u64::MAX || last < start {
            Duration::ZERO
        } else {
            Duration::from_nanos(last - start)
        };
        OutputStats {
            video_frames: c.video_frames.load(Ordering::Relaxed),
            started_at: (start != u64::MAX).then(|| Duration::from_nanos(start)),
            duration,
            overruns: c.overruns.load(Ordering::Relaxed),
        }
    }
}

/// How much a muxed output's queues hold before they drop their oldest buffers.
const OUTPUT_QUEUE_MS: u32 = 10_000;

/// An output's queue, holding at most `max_ms` of media.
pub(crate) fn queue(name: &str, max_ms: u32) -> Result<gst::Element> {
    let q = make("queue", Some(name))?;
    // Leaky so a stuck output can never back-pressure the shared encoders.
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", ms(max_ms));
    q.set_property_from_str("leaky", "downstream");
    Ok(q)
}

pub(crate) fn add_sink(bin: &gst::Bin, sink: &gst::Element) -> Result<()> {
    // Outputs join a playing program: they must not pre-roll or sync to the clock (the mixers
    // already pace the program).
    if sink.find_property("async").is_some() {
        sink.set_property("async", false);
    }
    if sink.find_property("sync").is_some() {
        sink.set_property("sync", false);
    }
    bin.add(sink)?;
    Ok(())
}

fn mp4mux(fragment_duration: Duration, streamable: bool) -> Result<gst::Element> {
    let mux = make("mp4mux", Some("mux"))?;
    mux.set_property("fragment-duration", fragment_duration.as_millis().max(1) as u32);
    mux.set_property("streamable", streamable);
    Ok(mux)
}

/// Builds a muxed output's bin with `video` and `audio` ghost sink pads; returns it and its sink.
pub(crate) fn build_bin(id: OutputId, spec: OutputSpec) -> Result<(gst::Bin, gst::Element)> {
    let bin = gst::Bin::builder().name(format!("output-{}", id.0)).build();
    let (mux, video_pad, audio_pad, sink) = match spec {
        OutputSpec::Mp4File { path, fragment_duration } => {
            let s = make("filesink", Some("sink"))?;
            s.set_property("location", path.to_string_lossy().to_string());
            (mp4mux(fragment_duration, false)?, "video_%u", "audio_%u", s)
        }
        OutputSpec::FragmentedMp4 { sink, fragment_duration } => {
            (mp4mux(fragment_duration, true)?, "video_%u", "audio_%u", sink)
        }
        OutputSpec::Flv { sink } => {
            let mux = make("flvmux", Some("mux"))?;
            mux.set_property("streamable", true);
            // FLV timestamps must not go backwards, so flvmux clamps a video frame that comes
            // after audio it has already written. Give the encoder time to deliver first.
            mux.set_property("latency", FLV_MUX_LATENCY.nseconds());
            (mux, "video", "audio", sink)
        }
        // Not muxed: `rtp_bin::build_bin` makes it.
        OutputSpec::Rtp(_) | OutputSpec::Hls(_) => {
            return Err(CompositorError::Gst("this output has no muxer element".into()));
        }
    };
    bin.add(&mux)?;
    add_sink(&bin, &sink)?;
    mux.link(&sink)?;
    for (kind, template) in [("video", video_pad), ("audio", audio_pad)] {
        let q = queue(&format!("{kind}-queue"), OUTPUT_QUEUE_MS)?;
        bin.add(&q)?;
        let mux_pad =
            mux.request_pad_simple(template).ok_or_else(|| CompositorError::Gst(format!("muxer has no {kind} pad")))?;
        q.static_pad("src").ok_or_else(|| CompositorError::Gst("queue without src".into()))?.link(&mux_pad)?;
        let target = q.static_pad("sink").ok_or_else(|| CompositorError::Gst("queue without sink".into()))?;
        bin.add_pad(&contained_sink_pad(kind, &target)?)?;
    }
    Ok((bin, sink))
}

/// An output's ghost sink pad, which keeps the output's failures to itself. A tee hands the
/// first error of any of its branches back up to the shared encoder, and a queue whose
/// downstream failed returns that error for every later buffer: a sink that fails (an RTMP
/// ingest that went away, a full disk) would stop the whole program in the moment between its
/// error and its output being unlinked. The error itself still reaches the bus, where the
/// output is reported and torn down.
pub(crate) fn contained_sink_pad(kind: &str, target: &gst::Pad) -> Result<gst::GhostPad> {
    fn contain(
        flow: std::result::Result<gst::FlowSuccess, gst::FlowError>,
    ) -> std::result::Result<gst::FlowSuccess, gst::FlowError> {
        match flow {
            Err(gst::FlowError::Error | gst::FlowError::NotNegotiated | gst::FlowError::NotSupported) => {
                Ok(gst::FlowSuccess::Ok)
            }
            other => other,
        }
    }
    Ok(gst::GhostPad::builder_with_target(target)?
        .name(kind)
        .chain_function(|pad, parent, buffer| contain(gst::ProxyPad::chain_default(pad, parent, buffer)))
        .chain_list_function(|pad, parent, list| contain(gst::ProxyPad::chain_list_default(pad, parent, list)))
        .build())
}

/// Whether an output's timestamps start at zero or stay on the program's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeline {
    /// Rebased to zero (MP4: the file starts at 0).
    FromZero,
    /// The program's running time, in a plain segment. flvmux is a live aggregator: it
    /// compares buffer times with the clock to decide how long to wait for a late stream,
    /// and writes FLV timestamps from its first buffer anyway. RTP timestamps are the
    /// running time from a fixed offset (`rtp_output`).
    Program,
}

impl OutputSpec {
    pub(crate) fn timeline(&self) -> Timeline {
        match self {
            OutputSpec::Flv { .. } | OutputSpec::Rtp(_) => Timeline::Program,
            _ => Timeline::FromZero,
        }
    }
}

/// Starts the output on a keyframe and puts its timestamps on its timeline; audio before
/// that keyframe is dropped so both streams start together. Works in running time: encoders
/// may shift timestamps within their segment (x264enc adds 1000 hours for DTS).
///
/// Audio reaches the output ahead of the video of the same instant (x264 and its queue take
/// longer than AAC), so when the keyframe arrives the audio from that instant on has usually
/// passed already. It is held until the keyframe decides the start, not dropped: dropping it
/// made a recording's audio start up to ~200 ms after its video, which MP4 muxing then moved to
/// zero, i.e. audio that played that much early.
///
/// Lock order (each pad's probe): `segment`, then `held`.
pub(crate) fn install_start_probes(bin: &gst::Bin, counters: &Arc<OutputCounters>, timeline: Timeline) {
    counters.start_pts.store(u64::MAX, Ordering::SeqCst);
    counters.last_pts.store(u64::MAX, Ordering::SeqCst);
    for kind in ["video", "audio"] {
        let Some(pad) = bin.static_pad(kind) else { continue };
        let c = counters.clone();
        let is_video = kind == "video";
        // Where held audio goes: past the ghost pad's probes, ahead of the current buffer.
        let internal = pad.downcast_ref::<gst::GhostPad>().and_then(|g| g.internal());
        let held = std::sync::Mutex::new(HeldAudio::default());
        let segment = std::sync::Mutex::new(gst::FormattedSegment::<gst::ClockTime>::new());
        let probe_types = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
        pad.add_probe(probe_types, move |_, info| {
            let mut seg = lock(&segment);
            match info.data.as_mut() {
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if !is_video && c.start_pts.load(Ordering::SeqCst) == u64::MAX {
                        lock(&held).hold(buffer.clone(), &seg);
                        return drop_data(info);
                    }
                    let earlier = lock(&held).take();
                    if let Some(internal) = &internal {
                        for mut b in earlier {
                            if rebase(&mut b, &seg, &c, is_video, timeline) {
                                let _ = internal.push(b);
                            }
                        }
                    }
                    match rebase(buffer, &seg, &c, is_video, timeline) {
                        true => gst::PadProbeReturn::Ok,
                        false => drop_data(info),
                    }
                }
                Some(gst::PadProbeData::Event(ev)) => {
                    if let gst::EventView::Segment(e) = ev.view()
                        && let Ok(s) = e.segment().clone().downcast::<gst::ClockTime>()
                    {
                        // The output gets its own timeline starting at zero.
                        *seg = s;
                        let fresh = gst::FormattedSegment::<gst::ClockTime>::new();
                        *ev = gst::event::Segment::builder(&fresh).seqnum(ev.seqnum()).build();
                    }
                    gst::PadProbeReturn::Ok
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }
}

/// Counts the output queues' overruns, and logs the first and every doubling (the signal
/// fires for each buffer while a queue stays full).
pub(crate) fn watch_overruns(bin: &gst::Bin, counters: &Arc<OutputCounters>) {
    for kind in ["video", "audio"] {
        let Some(q) = bin.by_name(&format!("{kind}-queue")) else { continue };
        let c = counters.clone();
        let output = bin.name();
        q.connect("overrun", false, move |_| {
            let n = c.overruns.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(%output, kind, overruns = n, "output queue full: its oldest buffers are dropped");
            }
            None
        });
    }
}

/// Audio that arrived before the output's first keyframe, newest last, at most `HELD_AUDIO`.
#[derive(Default)]
struct HeldAudio {
    buffers: std::collections::VecDeque<(gst::Buffer, u64)>,
}

/// More than a keyframe interval: the output asks for a keyframe when it starts.
const HELD_AUDIO: Duration = Duration::from_secs(3);

impl HeldAudio {
    fn hold(&mut self, buffer: gst::Buffer, seg: &gst::FormattedSegment<gst::ClockTime>) {
        let Some(rt) = buffer.pts().and_then(|p| seg.to_running_time(p)).map(|t| t.nseconds()) else {
            return;
        };
        self.buffers.push_back((buffer, rt));
        while self.buffers.front().is_some_and(|(_, first)| rt.saturating_sub(*first) > HELD_AUDIO.as_nanos() as u64) {
            self.buffers.pop_front();
        }
    }

    fn take(&mut self) -> Vec<gst::Buffer> {
        self.buffers.drain(..).map(|(b, _)| b).collect()
    }
}

/// Rebases one buffer; false means it comes before the output's start and must be dropped.
fn rebase(
    buffer: &mut gst::Buffer,
    seg: &gst::FormattedSegment<gst::ClockTime>,
    c: &OutputCounters,
    is_video: bool,
    timeline: Timeline,
) -> bool {
    let Some(rt) = buffer.pts().and_then(|p| seg.to_running_time(p)) else { return false };
    let rt = rt.nseconds();
    let mut start = c.start_pts.load(Ordering::SeqCst);
    if start == u64::MAX {
        if !is_video || buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            return false;
        }
        c.start_pts.store(rt, Ordering::SeqCst);
        start = rt;
    }
    if rt < start {
        return false;
    }
    let dts_rt = buffer.dts().and_then(|d| seg.to_running_time_full(d));
    let zero = if timeline == Timeline::FromZero { start } else { 0 };
    let b = buffer.make_mut();
    b.set_pts(gst::ClockTime::from_nseconds(rt - zero));
    match dts_rt {
        Some(d) => {
            let d = d.positive().map(|d| d.nseconds()).unwrap_or(0);
            b.set_dts(gst::ClockTime::from_nseconds(d.saturating_sub(zero)));
        }
        None => b.set_dts(gst::ClockTime::NONE),
    }
    if is_video {
        c.video_frames.fetch_add(1, Ordering::Relaxed);
        c.last_pts.store(rt, Ordering::Relaxed);
    }
    true
}

/// Drops the probed data. The probe owns it and returns `Handled`: with GStreamer 1.22 a
/// `Drop` from a Rust probe makes the core unref an already released pointer.
pub(crate) fn drop_data(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    info.data = None;
    gst::PadProbeReturn::Handled
}

/// Name of the bus message Tessera's recording sinks post about their storage.
pub const RECORDING_MESSAGE: &str = "tessera-recording";

/// For a sink that keeps storing after EOS (it has `finish-timeout`, in milliseconds, and
/// posts a `tessera-recording` message when done): how long to keep it.
pub(crate) fn completion_timeout(sink: &gst::Element) -> Option<Duration> {
    sink.find_property("finish-timeout")?;
    let ms = sink.property_value("finish-timeout").get::<u32>().ok()?;
    // A little more than the sink itself waits: it reports `pending` at its own deadline.
    Some(Duration::from_millis(ms as u64) + Duration::from_secs(5))
}

/// Signals when EOS has reached every one of an output's sinks, i.e. the muxer (or each of
/// an RTP output's payloaders) has sent its last bytes.
pub(crate) fn eos_watch(sinks: &[gst::Element]) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let waiting = Arc::new(AtomicUsize::new(sinks.len()));
    for pad in sinks.iter().filter_map(|s| s.static_pad("sink")) {
        let (tx, waiting, seen) = (tx.clone(), waiting.clone(), AtomicBool::new(false));
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && ev.type_() == gst::EventType::Eos
                && !seen.swap(true, Ordering::SeqCst)
                && waiting.fetch_sub(1, Ordering::SeqCst) == 1
            {
                let _ = tx.try_send(());
            }
            gst::PadProbeReturn::Ok
        });
    }
    rx
}
