use super::libopus::{self, Decoder, RATE, Source};
use super::loss::{Frame, LossPlanner, PLC_STEP, Step};
use crate::locks::lock;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_audio::prelude::*;
use gst_audio::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("tesseraopusdec", gst::DebugColorFlags::empty(), Some("Tessera Opus decoder"))
});

/// A lost packet of unknown length is taken for WebRTC's usual 20 ms.
const DEFAULT_PACKET_SAMPLES: usize = RATE as usize / 50;

#[derive(Default)]
struct Settings {
    fec: bool,
}

struct State {
    decoder: Decoder,
    planner: LossPlanner<gst::Buffer>,
    /// Samples per channel of the last good packet: what a gap of unknown length replaces.
    last_samples: usize,
    /// Packets that did not decode (concealed instead).
    corrupt: u64,
}

/// Lock order: `settings` and `state` are leaves, never held together.
#[derive(Default)]
pub struct OpusDecoder {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for OpusDecoder {
    const NAME: &'static str = "TesseraOpusDec";
    type Type = super::OpusDecoder;
    type ParentType = gst_audio::AudioDecoder;
}

impl ObjectImpl for OpusDecoder {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("use-inband-fec")
                    .nick("Use in-band FEC")
                    .blurb("Rebuild a lost packet from the next one's FEC data (adds one frame of delay)")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "use-inband-fec" {
            lock(&self.settings).fec = value.get().unwrap_or(false);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "use-inband-fec" => lock(&self.settings).fec.to_value(),
            _ => false.to_value(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_plc(true);
    }
}

impl GstObjectImpl for OpusDecoder {}

impl ElementImpl for OpusDecoder {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Tessera Opus decoder",
                "Codec/Decoder/Audio",
                "Decodes single-stream Opus (WebRTC) to 48 kHz F32 with loss concealment and in-band FEC",
                "Tessera",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::Caps::builder("audio/x-opus").build();
            let src = gst::Caps::builder("audio/x-raw")
                .field("format", gst_audio::AudioFormat::F32le.to_str())
                .field("layout", "interleaved")
                .field("rate", RATE as i32)
                .field("channels", gst::IntRange::new(1, 2))
                .build();
            [
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &sink),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &src),
            ]
            .into_iter()
            .map(|t| t.expect("valid pad template"))
            .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl AudioDecoderImpl for OpusDecoder {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let obj = self.obj();
        // Gap events (lost packets, from the depayloader) come to handle_frame as empty
        // buffers with the gap's duration. The base class resets these on every start.
        obj.set_plc_aware(true);
        obj.set_drainable(true);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn set_format(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = caps.structure(0).ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let family = s.get::<i32>("channel-mapping-family").unwrap_or(0);
        if family != 0 {
            return Err(gst::loggable_error!(
                CAT,
                "channel mapping family {family}: only family 0 (one mono or stereo stream, as WebRTC sends) is supported"
            ));
        }
        let stream_channels = s.get::<i32>("channels").unwrap_or(2);
        if !(1..=2).contains(&stream_channels) {
            return Err(gst::loggable_error!(CAT, "{stream_channels} channels in a family 0 stream"));
        }
        let channels = self.output_channels(stream_channels as u32);
        let info = gst_audio::AudioInfo::builder(gst_audio::AudioFormat::F32le, RATE, channels)
            .build()
            .map_err(|e| gst::loggable_error!(CAT, "output format: {e}"))?;
        let decoder = Decoder::new(channels as usize).map_err(|e| gst::loggable_error!(CAT, "libopus decoder: {e}"))?;
        self.obj()
            .set_output_format(&info)
            .map_err(|e| gst::loggable_error!(CAT, "output format not accepted: {e:?}"))?;
        let fec = lock(&self.settings).fec;
        gst::debug!(CAT, imp = self, "{stream_channels}-channel stream to {channels} channels, fec {fec}");
        *lock(&self.state) =
            Some(State { decoder, planner: LossPlanner::new(fec), last_samples: DEFAULT_PACKET_SAMPLES, corrupt: 0 });
        Ok(())
    }

    fn handle_frame(&self, buffer: Option<&gst::Buffer>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let step = match buffer {
            None => state.planner.drain(),
            Some(b) if b.size() == 0 => {
                let samples = match b.duration() {
                    Some(d) if d > gst::ClockTime::ZERO => d.nseconds() * RATE as u64 / 1_000_000_000,
                    _ => state.last_samples as u64,
                };
                state.planner.push(Frame::Missing { samples })
            }
            Some(b) => state.planner.push(Frame::Packet(b.clone())),
        };
        let Some(step) = step else {
            // The first frame waits for its successor (FEC).
            return Ok(gst::FlowSuccess::Ok);
        };
        let out = self.produce(state, step);
        drop(guard);
        self.obj().finish_frame(out, 1)
    }

    fn flush(&self, _hard: bool) {
        if let Some(state) = lock(&self.state).as_mut() {
            state.planner.reset();
            // A fresh decoder: no concealment from before the flush.
            if let Ok(d) = Decoder::new(state.decoder.channels()) {
                state.decoder = d;
            }
        }
    }
}

impl OpusDecoder {
    /// The stream's own channel count if downstream takes it, else the other one.
    fn output_channels(&self, stream: u32) -> u32 {
        let obj = self.obj();
        let template = obj.src_pad().pad_template_caps();
        let allowed = obj.src_pad().peer_query_caps(Some(&template));
        let takes = |n: u32| {
            let mut probe = template.clone();
            probe.make_mut().set("channels", n as i32);
            allowed.can_intersect(&probe)
        };
        if allowed.is_empty() || takes(stream) {
            stream
        } else if takes(2) {
            2
        } else {
            1
        }
    }

    /// Decodes one step into an output buffer. A packet that does not decode is concealed
    /// instead and logged: bad input from the network never stops the track.
    fn produce(&self, state: &mut State, step: Step<gst::Buffer>) -> Option<gst::Buffer> {
        let decoded = match &step {
            Step::Decode(packet) => {
                let Ok(map) = packet.map_readable() else { return None };
                libopus::packet_samples(&map).and_then(|samples| {
                    let pcm = state.decoder.decode(Source::Packet(&map), samples)?;
                    state.last_samples = samples;
                    Ok(pcm)
                })
            }
            Step::Recover { next, samples } => {
                let Ok(map) = next.map_readable() else { return None };
                state.decoder.decode(Source::Fec(&map), *samples as usize)
            }
            Step::Conceal { samples: 0 } => return None,
            Step::Conceal { samples } => state.decoder.decode(Source::Conceal, *samples as usize),
        };
        let pcm = match decoded {
            Ok(pcm) => pcm,
            Err(e) => {
                state.corrupt += 1;
                gst::warning!(CAT, imp = self, "undecodable Opus packet ({e}), concealed; {} so far", state.corrupt);
                // Conceal what the step was to produce: a packet's usual length, or the gap.
                let samples = match step {
                    Step::Recover { samples, .. } => samples as usize,
                    _ => state.last_samples / PLC_STEP as usize * PLC_STEP as usize,
                };
                state.decoder.decode(Source::Conceal, samples).ok()?
            }
        };
        (!pcm.is_empty()).then(|| gst::Buffer::from_mut_slice(Samples(pcm)))
    }
}

/// Decoded samples handed to GStreamer as the buffer's memory, without a copy.
struct Samples(Vec<f32>);

impl AsRef<[u8]> for Samples {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: f32 has no padding and u8 no alignment requirement; same allocation and length.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), std::mem::size_of_val(self.0.as_slice())) }
    }
}

impl AsMut<[u8]> for Samples {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; every byte pattern is a valid f32, so writes cannot break it.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), std::mem::size_of_val(self.0.as_slice())) }
    }
}
