//! The bot's media: a live GStreamer pipeline that makes a solid colour or test pattern and a
//! tone (or silence), encodes them (VP8 or H.264, Opus) and packetises them as RTP for the
//! WebRTC tracks.

use gst::prelude::*;
use tokio::sync::mpsc;

use crate::bot::BotError;
use crate::cli::BotCodec;

/// RTP payload size: leaves room for SRTP, header extensions and a TURN/TCP wrapper.
const MTU: u32 = 1200;
/// Packets buffered per track between GStreamer and the WebRTC sender (about 2 s of video).
const QUEUE: usize = 512;

/// What the bot publishes.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// 0xRRGGBB, or `None` for `pattern`.
    pub color: Option<u32>,
    pub pattern: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub codec: BotCodec,
    pub bitrate_kbps: u32,
    /// Publish video at all.
    pub video: bool,
    /// Sine frequency in Hz, or `None` for silence.
    pub tone: Option<f64>,
    /// Pace video at this multiple of `bitrate_kbps` (see `pacer.rs`); `None` sends each
    /// frame's packets at once.
    pub pace_factor: Option<f64>,
    /// For A/V offset measurements: a white picture and the tone for the first 100 ms of every
    /// second, silence otherwise (the compositor tests' synthetic participants do the same).
    pub sync_marks: bool,
    /// With `sync_marks`: the marks start on whole seconds of the wall clock rather than of
    /// the pipeline's running time (`--wall-clock-marks`, for glass-to-glass latency).
    pub wall_clock_marks: bool,
}

/// RTP packets as GStreamer's payloaders made them (header and payload).
pub type PacketRx = mpsc::Receiver<bytes::Bytes>;

/// The running pipeline. Dropping it stops the pipeline.
pub struct SyntheticMedia {
    pipeline: gst::Pipeline,
    video_sink: Option<gst_app::AppSink>,
}

impl MediaOptions {
    fn video_description(&self) -> String {
        let source = match self.color {
            Some(rgb) => {
                format!("videotestsrc is-live=true pattern=solid-color foreground-color={}", 0xff00_0000u32 | rgb)
            }
            None => format!("videotestsrc is-live=true pattern={}", self.pattern),
        };
        let gop = self.fps * 2;
        let encode = match self.codec {
            BotCodec::Vp8 => format!(
                "vp8enc deadline=1 cpu-used=8 threads=1 end-usage=cbr lag-in-frames=0 error-resilient=partitions \
                 keyframe-max-dist={gop} target-bitrate={} ! rtpvp8pay picture-id-mode=15-bit mtu={MTU}",
                self.bitrate_kbps * 1000
            ),
            // Constrained baseline: what every browser decodes (profile-level-id 42e01f).
            BotCodec::H264 => format!(
                "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={gop} bitrate={} \
                 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 aggregate-mode=zero-latency mtu={MTU}",
                self.bitrate_kbps
            ),
        };
        format!(
            "{source} ! capsfilter name=vraw caps=video/x-raw,format=I420,width={},height={},framerate={}/1 ! {encode} \
             ! appsink name=video sync={} max-buffers={QUEUE} drop=true",
            self.width, self.height, self.fps, self.sync_marks
        )
    }

    fn audio_description(&self) -> String {
        let wave = match self.tone {
            Some(freq) => format!("wave=sine freq={freq} volume=0.3"),
            None => "wave=silence".to_owned(),
        };
        // With sync marks both appsinks release packets on the pipeline clock (capture time
        // plus the pipeline's one latency), so the sender reports webrtc derives from the time
        // packets are written map both tracks alike.
        format!(
            "audiotestsrc is-live=true samplesperbuffer=960 {wave} ! capsfilter name=araw caps=audio/x-raw,format=S16LE,rate=48000,channels=2 \
             ! opusenc bitrate=64000 frame-size=20 ! rtpopuspay mtu={MTU} \
             ! appsink name=audio sync={} max-buffers={QUEUE} drop=true",
            self.sync_marks
        )
    }
}

impl SyntheticMedia {
    /// Builds and starts the pipeline; packets arrive on the returned receivers (video,
    /// audio). A full receiver drops packets rather than stalling the pipeline.
    pub fn start(opts: &MediaOptions) -> Result<(Self, Option<PacketRx>, PacketRx), BotError> {
        gst::init().map_err(|source| BotError::Gst { what: "GStreamer", source })?;
        let mut description = opts.audio_description();
        if opts.video {
            description = format!("{} {description}", opts.video_description());
        }
        let pipeline = gst::parse::launch(&description)
            .map_err(|source| BotError::Gst { what: "cannot build the media pipeline", source })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| BotError::Media("the media pipeline is not a pipeline".into()))?;
        let sink = |name: &str| -> Result<(gst_app::AppSink, PacketRx), BotError> {
            let sink = pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or_else(|| BotError::Media(format!("no {name} sink")))?;
            let (tx, rx) = mpsc::channel(QUEUE);
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                            // Full: the sender is behind; drop rather than block the pipeline.
                            if let Err(mpsc::error::TrySendError::Closed(_)) =
                                tx.try_send(bytes::Bytes::copy_from_slice(map.as_slice()))
                            {
                                return Err(gst::FlowError::Eos);
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            Ok((sink, rx))
        };
        if opts.sync_marks && opts.wall_clock_marks {
            tessera_compositor::synthetic::install_wall_clock_sync_marks(&pipeline);
        } else if opts.sync_marks {
            tessera_compositor::synthetic::install_sync_marks(&pipeline);
        }
        let (_, audio_rx) = sink("audio")?;
        let (video_sink, video_rx) = if opts.video {
            let (s, rx) = sink("video")?;
            (Some(s), Some(rx))
        } else {
            (None, None)
        };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| BotError::Media("the media pipeline does not start".into()))?;
        if opts.sync_marks && opts.wall_clock_marks {
            log_latency(&pipeline);
        }
        Ok((SyntheticMedia { pipeline, video_sink }, video_rx, audio_rx))
    }

    /// Asks the video encoder for a keyframe (the server relayed a PLI or FIR).
    pub fn request_keyframe(&self) {
        if let Some(sink) = &self.video_sink {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
            sink.send_event(event);
        }
    }

    /// The first error the pipeline posted, if any.
    pub fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(err) = msg.view() {
                return Some(err.error().to_string());
            }
        }
        None
    }
}

/// Logs, once it is known, how long after its capture (PTS) the pipeline releases a packet:
/// with sync marks the appsinks wait for the pipeline's latency (the source's frame and the
/// encoders'), which is part of a glass-to-glass figure measured from the marks.
fn log_latency(pipeline: &gst::Pipeline) {
    let weak = pipeline.downgrade();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let Some(pipeline) = weak.upgrade() else { return };
        let mut query = gst::query::Latency::new();
        if pipeline.query(&mut query) {
            let (live, min, _) = query.result();
            tracing::info!(
                live,
                latency_ms = min.mseconds(),
                "wall-clock marks: packets leave at capture time + latency"
            );
        }
    });
}

impl Drop for SyntheticMedia {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(codec: BotCodec) -> MediaOptions {
        MediaOptions {
            color: Some(0x00ff00),
            pattern: "smpte".into(),
            width: 320,
            height: 180,
            fps: 30,
            codec,
            bitrate_kbps: 300,
            video: true,
            tone: Some(440.0),
            pace_factor: None,
            sync_marks: false,
            wall_clock_marks: false,
        }
    }

    /// Both codecs produce RTP with the payloaders' headers, video and audio.
    #[tokio::test]
    async fn makes_rtp_for_both_codecs() {
        for codec in [BotCodec::Vp8, BotCodec::H264] {
            let (media, video, mut audio) = SyntheticMedia::start(&opts(codec)).expect("pipeline starts");
            let mut video = video.expect("video");
            let first = tokio::time::timeout(std::time::Duration::from_secs(5), video.recv()).await.unwrap().unwrap();
            assert_eq!(first[0] >> 6, 2, "RTP version 2");
            let a = tokio::time::timeout(std::time::Duration::from_secs(5), audio.recv()).await.unwrap().unwrap();
            assert_eq!(a[0] >> 6, 2);
            media.request_keyframe();
            assert!(media.error().is_none());
        }
    }
}
