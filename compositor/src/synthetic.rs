//! Synthetic participants: a solid colour (or test pattern) and a tone, encoded by real
//! GStreamer encoders to VP8/H.264 and Opus RTP, with RTCP sender reports. Used by the tests, the
//! benchmark and `tessera bot`.

use crate::error::{CompositorError, Result};
use crate::locks::lock;
use crate::rtp::{SenderReport, nanos_to_ntp, parse_rtp_header};
use crate::track::{Codec, TrackKind, TrackParams};
use gst::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    pub identity: String,
    pub name: String,
    /// 0xRRGGBB
    pub color: u32,
    /// A `videotestsrc` pattern instead of the solid colour (e.g. `ball`, `smpte`).
    pub pattern: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// None: no video track.
    pub video: Option<Codec>,
    /// Some(hz): a sine tone; None: no audio track.
    pub tone_hz: Option<f64>,
    pub video_bitrate_kbps: u32,
    /// Sync markers for A/V offset measurements: for the first 100 ms of every second the
    /// picture is white and the tone sounds; the rest of the time the tone is silent.
    pub sync_marks: bool,
}

impl SyntheticSpec {
    pub fn new(identity: &str, color: u32, tone_hz: f64) -> Self {
        SyntheticSpec {
            identity: identity.to_string(),
            name: identity.to_string(),
            color,
            pattern: None,
            width: 640,
            height: 360,
            fps: 30,
            video: Some(Codec::Vp8),
            tone_hz: Some(tone_hz),
            video_bitrate_kbps: 800,
            sync_marks: false,
        }
    }
}

/// Something a synthetic participant sends.
#[derive(Debug, Clone)]
pub enum SyntheticPacket {
    Rtp { kind: TrackKind, data: Vec<u8> },
    SenderReport { kind: TrackKind, report: SenderReport },
}

pub type PacketSink = Arc<dyn Fn(SyntheticPacket) + Send + Sync>;

pub struct SyntheticParticipant {
    spec: SyntheticSpec,
    pipeline: gst::Pipeline,
    video_ssrc: u32,
    audio_ssrc: u32,
}

const VIDEO_PT: u8 = 96;
const H264_PT: u8 = 102;
const AUDIO_PT: u8 = 111;

static NEXT_SSRC: AtomicU32 = AtomicU32::new(0x1000_0000);

fn video_branch(spec: &SyntheticSpec, codec: Codec, ssrc: u32) -> String {
    let src = match &spec.pattern {
        Some(p) => format!("videotestsrc is-live=true pattern={p}"),
        None => {
            format!("videotestsrc is-live=true pattern=solid-color foreground-color={}", 0xff00_0000u32 | spec.color)
        }
    };
    let kf = spec.fps * 2;
    let enc = match codec {
        Codec::H264 => format!(
            "x264enc name=venc tune=zerolatency speed-preset=ultrafast key-int-max={kf} bitrate={} ! \
             video/x-h264,profile=constrained-baseline ! \
             rtph264pay name=vpay pt={H264_PT} ssrc={ssrc} mtu=1200 config-interval=-1 aggregate-mode=zero-latency",
            spec.video_bitrate_kbps
        ),
        _ => format!(
            "vp8enc name=venc deadline=1 cpu-used=8 keyframe-max-dist={kf} target-bitrate={} ! \
             rtpvp8pay name=vpay pt={VIDEO_PT} ssrc={ssrc} mtu=1200 picture-id-mode=15-bit",
            spec.video_bitrate_kbps * 1000
        ),
    };
    format!(
        "{src} ! capsfilter name=vraw caps=video/x-raw,format=I420,width={},height={},framerate={}/1 ! {enc} ! \
         appsink name=video sync=false emit-signals=false max-buffers=200 drop=false",
        spec.width, spec.height, spec.fps
    )
}

fn audio_branch(hz: f64, ssrc: u32) -> String {
    format!(
        "audiotestsrc is-live=true wave=sine freq={hz} volume=0.25 samplesperbuffer=960 ! \
         capsfilter name=araw caps=audio/x-raw,format=S16LE,rate=48000,channels=2 ! opusenc frame-size=20 bitrate=64000 ! \
         rtpopuspay pt={AUDIO_PT} ssrc={ssrc} ! appsink name=audio sync=false emit-signals=false"
    )
}

impl SyntheticParticipant {
    /// Builds the encoders (not yet running).
    pub fn new(spec: SyntheticSpec) -> Result<Self> {
        crate::program::init()?;
        let video_ssrc = NEXT_SSRC.fetch_add(1, Ordering::Relaxed);
        let audio_ssrc = NEXT_SSRC.fetch_add(1, Ordering::Relaxed);
        let mut branches = Vec::new();
        if let Some(codec) = spec.video {
            branches.push(video_branch(&spec, codec, video_ssrc));
        }
        if let Some(hz) = spec.tone_hz {
            branches.push(audio_branch(hz, audio_ssrc));
        }
        if branches.is_empty() {
            return Err(CompositorError::InvalidTrack("a synthetic participant needs a track".into()));
        }
        let pipeline = gst::parse::launch(&branches.join("  "))
            .map_err(|source| CompositorError::GlibError { context: "synthetic participant", source })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| CompositorError::Gst("not a pipeline".into()))?;
        if spec.sync_marks {
            install_sync_marks(&pipeline);
        }
        Ok(SyntheticParticipant { spec, pipeline, video_ssrc, audio_ssrc })
    }

    pub fn spec(&self) -> &SyntheticSpec {
        &self.spec
    }

    /// Track parameters as an SFU would report them.
    pub fn tracks(&self) -> Vec<TrackParams> {
        let mut t = Vec::new();
        if let Some(codec) = self.spec.video {
            t.push(TrackParams {
                participant: self.spec.identity.clone(),
                name: self.spec.name.clone(),
                kind: TrackKind::Camera,
                codec,
                payload_type: if codec == Codec::H264 { H264_PT } else { VIDEO_PT },
                clock_rate: 90_000,
                ssrc: self.video_ssrc,
            });
        }
        if self.spec.tone_hz.is_some() {
            t.push(TrackParams {
                participant: self.spec.identity.clone(),
                name: self.spec.name.clone(),
                kind: TrackKind::Audio,
                codec: Codec::Opus,
                payload_type: AUDIO_PT,
                clock_rate: 48_000,
                ssrc: self.audio_ssrc,
            });
        }
        t
    }

    /// Starts sending: every RTP packet, and a sender report per track each second.
    pub fn start(&self, sink: PacketSink) -> Result<()> {
        // One wall-clock origin for both tracks, as a real sender's NTP clock would be.
        let wall_at_zero = ntp_now_ns();
        for (name, kind) in [("video", TrackKind::Camera), ("audio", TrackKind::Audio)] {
            let Some(appsink) = self.pipeline.by_name(name) else { continue };
            let Ok(appsink) = appsink.downcast::<gst_app::AppSink>() else { continue };
            let sink = sink.clone();
            let reports = Mutex::new(SenderReports::new(wall_at_zero));
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                        let Ok(map) = buffer.map_readable() else { return Ok(gst::FlowSuccess::Ok) };
                        let data = map.as_slice().to_vec();
                        let report = buffer.pts().and_then(|pts| lock(&reports).on_packet(&data, pts));
                        sink(SyntheticPacket::Rtp { kind, data });
                        if let Some(report) = report {
                            sink(SyntheticPacket::SenderReport { kind, report });
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        self.pipeline.set_state(gst::State::Playing)?;
        Ok(())
    }

    /// Makes the video encoder send a keyframe (what a PLI does to a real sender).
    pub fn request_keyframe(&self) {
        if let Some(pad) = self.pipeline.by_name("venc").and_then(|e| e.static_pad("src")) {
            pad.send_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        }
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for SyntheticParticipant {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Length of the flash/beep at the start of every second.
pub const SYNC_MARK: Duration = Duration::from_millis(100);

fn in_mark(t: u64) -> bool {
    t % 1_000_000_000 < SYNC_MARK.as_nanos() as u64
}

/// Paints the marks into the raw picture and audio before they are encoded: the I420 buffers
/// leaving the element named `vraw` and the S16LE stereo 48 kHz ones leaving `araw` (`tessera
/// bot --sync-marks` names its own the same way). The marks start on every whole second of the
/// pipeline's running time (the buffers' PTS).
pub fn install_sync_marks(pipeline: &gst::Pipeline) {
    install_marks(pipeline, Arc::new(|| 0), false);
}

/// [`install_sync_marks`], but the marks start on every whole second of the wall clock
/// (`SystemTime`, UTC), to measure glass-to-glass latency against a viewer's clock on the same
/// machine: a flash first seen at wall time `t` left the sender `t mod 1 s` earlier (if that
/// is under a second). The PTS-to-wall-clock offset is taken when the first buffer passes
/// (the pipeline is playing): running time 0 is `SystemTime::now()` minus the pipeline's
/// current running time. A frame's PTS is its capture time, so the figure includes the
/// sender's own encoding and sending, and the wait for the first frame at or after the second
/// (logged once: `the first white frame of a second is captured … after the wall-clock
/// second`).
pub fn install_wall_clock_sync_marks(pipeline: &gst::Pipeline) {
    let weak = pipeline.downgrade();
    let offset = std::sync::OnceLock::new();
    install_marks(
        pipeline,
        Arc::new(move || {
            *offset.get_or_init(|| {
                let running = weak.upgrade().and_then(|p| p.current_running_time()).map_or(0, |t| t.nseconds());
                wall_clock_offset(std::time::SystemTime::now(), running)
            })
        }),
        true,
    );
}

/// What to add to a running time `t` so that `t + offset` is in phase, modulo a second, with
/// the wall clock: `now` is the wall-clock time at running time `running` (ns).
pub fn wall_clock_offset(now: std::time::SystemTime, running: u64) -> u64 {
    let wall = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let second = 1_000_000_000u128;
    // wall - running, modulo a second, kept non-negative.
    ((wall % second + second - u128::from(running) % second) % second) as u64
}

/// Installs the probes; `offset()` is added to each PTS before [`in_mark`] (0: running time).
/// `log_phase`: log once how long after the second the first white frame is captured.
fn install_marks(pipeline: &gst::Pipeline, offset: Arc<dyn Fn() -> u64 + Send + Sync>, log_phase: bool) {
    if let Some(pad) = pipeline.by_name("vraw").and_then(|e| e.static_pad("src")) {
        let offset = Arc::clone(&offset);
        let logged = std::sync::atomic::AtomicBool::new(!log_phase);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else { return gst::PadProbeReturn::Ok };
            let Some(t) = buffer.pts().map(|p| p.nseconds() + offset()) else { return gst::PadProbeReturn::Ok };
            // The first frame of a mark (not one in the middle of the mark the stream began in).
            let frame = buffer.duration().map_or(SYNC_MARK.as_nanos() as u64, |d| d.nseconds());
            if t % 1_000_000_000 < frame && !logged.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    after_ms = (t % 1_000_000_000) as f64 / 1e6,
                    "sync marks: the first white frame of a second is captured this long after the wall-clock second"
                );
            }
            if in_mark(t)
                && let Ok(mut map) = buffer.make_mut().map_writable()
            {
                // I420: the luma plane comes first, then two quarter-size chroma planes.
                let luma = map.len() * 2 / 3;
                let (y, uv) = map.as_mut_slice().split_at_mut(luma);
                y.fill(235);
                uv.fill(128);
            }
            gst::PadProbeReturn::Ok
        });
    }
    if let Some(pad) = pipeline.by_name("araw").and_then(|e| e.static_pad("src")) {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut()
                && let Some(pts) = buffer.pts()
                && let Ok(mut map) = buffer.make_mut().map_writable()
            {
                let offset = offset();
                // S16LE stereo: 4 bytes a frame at 48 kHz.
                for (i, frame) in map.as_mut_slice().chunks_exact_mut(4).enumerate() {
                    let t = pts.nseconds() + offset + i as u64 * 1_000_000_000 / 48_000;
                    if !in_mark(t) {
                        frame.fill(0);
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
}

pub use crate::rtp::ntp_now_ns;

/// A sender's RTCP sender reports for one RTP stream: it counts the packets and octets sent and
/// makes a report at most once a second of stream time (PTS), which maps the packet's RTP
/// time to the wall clock.
#[derive(Debug, Clone)]
pub struct SenderReports {
    /// The NTP time (ns) of PTS 0, the same for all of a participant's tracks.
    wall_at_zero: u128,
    last: Option<gst::ClockTime>,
    packets: u32,
    octets: u32,
}

impl SenderReports {
    /// `wall_at_zero`: the NTP time (ns) of PTS 0 (e.g. [`ntp_now_ns`] when sending starts).
    pub fn new(wall_at_zero: u128) -> Self {
        SenderReports { wall_at_zero, last: None, packets: 0, octets: 0 }
    }

    /// Counts an RTP packet sent at `pts`; returns a report when one is due. Not an RTP
    /// packet: not counted, no report.
    pub fn on_packet(&mut self, packet: &[u8], pts: gst::ClockTime) -> Option<SenderReport> {
        let header = parse_rtp_header(packet).ok()?;
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(packet.len().saturating_sub(12) as u32);
        if self.last.is_some_and(|last| pts.saturating_sub(last) < gst::ClockTime::SECOND) {
            return None;
        }
        self.last = Some(pts);
        Some(SenderReport {
            ssrc: header.ssrc,
            ntp_time: nanos_to_ntp(self.wall_at_zero + pts.nseconds() as u128),
            rtp_time: header.timestamp,
            packet_count: self.packets,
            octet_count: self.octets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTP packet (version 2, SSRC 7) with `payload` bytes after the header.
    fn rtp(timestamp: u32, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 1];
        p.extend(timestamp.to_be_bytes());
        p.extend(7u32.to_be_bytes());
        p.resize(12 + payload, 0);
        p
    }

    #[test]
    fn the_wall_clock_offset_puts_marks_on_whole_wall_clock_seconds() {
        use std::time::{Duration, UNIX_EPOCH};
        // Wall time 100.250 s at running time 3.5 s: running time 0 was wall 96.750 s, so
        // running time t is on a whole wall second when t + 0.750 s is.
        let now = UNIX_EPOCH + Duration::from_millis(100_250);
        let offset = wall_clock_offset(now, 3_500_000_000);
        assert_eq!(offset, 750_000_000);
        assert!(in_mark(250_000_000 + offset), "running 0.25 s = wall 97.000 s");
        assert!(!in_mark(200_000_000 + offset), "running 0.20 s = wall 96.950 s");
        // A running time beyond the wall clock's fraction wraps.
        assert_eq!(wall_clock_offset(UNIX_EPOCH + Duration::from_millis(10_100), 900_000_000), 200_000_000);
    }

    #[test]
    fn a_report_a_second_with_what_was_sent_until_then() {
        let mut reports = SenderReports::new(0);
        let ms = gst::ClockTime::from_mseconds;
        let first = reports.on_packet(&rtp(0, 100), ms(0)).expect("the first packet is reported");
        assert_eq!((first.ssrc, first.rtp_time, first.packet_count, first.octet_count), (7, 0, 1, 100));
        assert!(reports.on_packet(&rtp(45_000, 50), ms(500)).is_none());
        assert!(reports.on_packet(b"not RTP", ms(900)).is_none(), "not counted either");
        let second = reports.on_packet(&rtp(90_000, 10), ms(1000)).expect("a second later");
        assert_eq!((second.rtp_time, second.packet_count, second.octet_count), (90_000, 3, 160));
        assert_eq!(second.ntp_time, nanos_to_ntp(1_000_000_000));
    }
}
