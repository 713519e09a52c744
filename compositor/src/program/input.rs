//! One input track: RTP and RTCP entry pads -> rtpjitterbuffer -> depay -> decode, in a bin.
//! An audio track's ghost src pad feeds the audio mixer; a video track ends in a tee whose
//! request pads (ghosted on the bin, one per rendition) feed the renditions' tile branches, so
//! it is decoded once however many renditions show it.

use super::elements::{add_chain, make, set_if_exists};
use super::opus_decoder::OpusDecoder;
use super::rtp_entry::RtpEntry;
use crate::config::ProgramConfig;
use crate::error::{CompositorError, Result};
use crate::keyframe::KeyframeRequestThrottle;
use crate::rtp::{SenderReport, parse_rtp_header};
use crate::sync::SyncObservation;
use crate::track::{Codec, TrackId, TrackKind, TrackParams};
use gst::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) struct TrackInput {
    pub id: TrackId,
    pub params: TrackParams,
    pub bin: gst::Bin,
    pub jitterbuffer: gst::Element,
    /// The decoded frames' tee (video only).
    pub decoded: Option<gst::Element>,
    rtp: RtpEntry,
    rtcp: RtpEntry,
    /// The program's clock and base time, fixed once it plays (it never pauses): arrival
    /// times are `clock - base` without querying the pipeline for every packet.
    clock: gst::Clock,
    base_time: gst::ClockTime,
    pub limiter: Mutex<KeyframeRequestThrottle>,
    pub packets: AtomicU64,
    pub rejected: AtomicU64,
    /// When the track joined the program.
    pub added: std::time::Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TrackStats {
    pub packets: u64,
    pub rejected: u64,
}

impl TrackInput {
    pub fn build(
        id: TrackId,
        params: TrackParams,
        config: &ProgramConfig,
        pipeline: &gst::Pipeline,
    ) -> Result<TrackInput> {
        params.validate()?;
        let (Some(clock), Some(base_time)) = (pipeline.clock(), pipeline.base_time()) else {
            return Err(CompositorError::NotRunning);
        };
        let bin = gst::Bin::builder().name(format!("track-{}", id.0)).build();
        let jb = make("rtpjitterbuffer", Some("jitterbuffer"))?;
        jb.set_property("latency", config.jitter_buffer_ms);
        jb.set_property("do-lost", true);
        set_if_exists(&jb, "drop-on-latency", true);
        let mut chain: Vec<gst::Element> = vec![jb.clone()];
        let mut decoded = None;
        match params.codec {
            Codec::Vp8 | Codec::H264 => {
                let (depay, decoder) = if params.codec == Codec::Vp8 {
                    (make("rtpvp8depay", None)?, make("vp8dec", None)?)
                } else {
                    (make("rtph264depay", None)?, make("avdec_h264", None)?)
                };
                // Ask for a keyframe on loss and show nothing broken until it arrives.
                set_if_exists(&depay, "request-keyframe", true);
                set_if_exists(&depay, "wait-for-keyframe", true);
                set_if_exists(&decoder, "max-errors", -1i32);
                set_if_exists(&decoder, "discard-corrupted-frames", true);
                set_if_exists(&decoder, "automatic-request-sync-points", true);
                chain.push(depay);
                if params.codec == Codec::H264 {
                    chain.push(make("h264parse", None)?);
                }
                chain.push(decoder);
                chain.push(make("videoconvert", None)?);
                let tee = make("tee", Some("decoded"))?;
                // A rendition's branch may come and go while the track runs.
                tee.set_property("allow-not-linked", true);
                chain.push(tee.clone());
                decoded = Some(tee);
            }
            Codec::Opus => {
                chain.extend([
                    make("rtpopusdepay", None)?,
                    OpusDecoder::new("opus-decoder", true).upcast_element(),
                    make("audioconvert", None)?,
                    make("audioresample", None)?,
                ]);
            }
        }
        add_chain(&bin, &chain)?;
        let jb_sink =
            jb.static_pad("sink").ok_or_else(|| CompositorError::Gst("rtpjitterbuffer has no sink pad".into()))?;
        let rtp = RtpEntry::link(&format!("track-{}", id.0), &params.rtp_caps(), &jb_sink)?;
        let rtcp_sink = jb
            .request_pad_simple("sink_rtcp")
            .ok_or_else(|| CompositorError::Gst("rtpjitterbuffer has no sink_rtcp pad".into()))?;
        let rtcp_caps = gst::Caps::new_empty_simple("application/x-rtcp");
        let rtcp = RtpEntry::link(&format!("track-{}-rtcp", id.0), &rtcp_caps, &rtcp_sink)?;
        if decoded.is_none() {
            let last = chain.last().cloned().ok_or(CompositorError::Gst("empty chain".into()))?;
            let src = last.static_pad("src").ok_or_else(|| CompositorError::Gst("chain end has no src pad".into()))?;
            let ghost = gst::GhostPad::builder_with_target(&src)?.name("src").build();
            bin.add_pad(&ghost)?;
        }
        Ok(TrackInput {
            id,
            params,
            bin,
            jitterbuffer: jb,
            decoded,
            rtp,
            rtcp,
            clock,
            base_time,
            limiter: Mutex::new(KeyframeRequestThrottle::new(Duration::from_millis(500))),
            packets: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            added: std::time::Instant::now(),
        })
    }

    pub fn is_video(&self) -> bool {
        self.params.kind != TrackKind::Audio
    }

    /// An audio track's output.
    pub fn src_pad(&self) -> Option<gst::Pad> {
        self.bin.static_pad("src")
    }

    /// A new output of a video track's decoded frames (for one rendition's tile branch).
    pub fn feed_pad(&self) -> Result<gst::Pad> {
        let tee = self.decoded.as_ref().ok_or(CompositorError::Gst("an audio track has no decoded video".into()))?;
        let tee_pad = tee.request_pad_simple("src_%u").ok_or(CompositorError::Gst("tee refused a pad".into()))?;
        let ghost = match gst::GhostPad::builder_with_target(&tee_pad) {
            Ok(b) => b.build(),
            Err(e) => {
                tee.release_request_pad(&tee_pad);
                return Err(e.into());
            }
        };
        let _ = ghost.set_active(true);
        if let Err(e) = self.bin.add_pad(&ghost) {
            tee.release_request_pad(&tee_pad);
            return Err(e.into());
        }
        Ok(ghost.upcast())
    }

    /// Gives back a pad from `feed_pad` (already unlinked).
    pub fn release_feed_pad(&self, pad: &gst::Pad) {
        let target = pad.downcast_ref::<gst::GhostPad>().and_then(|g| g.target());
        let _ = self.bin.remove_pad(pad);
        if let (Some(tee), Some(target)) = (&self.decoded, target) {
            tee.release_request_pad(&target);
        }
    }

    fn running_time(&self) -> Option<gst::ClockTime> {
        self.clock.time().checked_sub(self.base_time)
    }

    /// Hands one RTP packet to the jitter buffer. Never waits for decoding or compositing: the
    /// jitter buffer queues it, and drops what is older than its latency.
    pub fn push_rtp(&self, packet: &[u8]) -> Result<()> {
        let header = match parse_rtp_header(packet) {
            Ok(h) => h,
            Err(e) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        if header.payload_type != self.params.payload_type {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(CompositorError::InvalidRtp("payload type does not match the track"));
        }
        let now = self.running_time().ok_or(CompositorError::NotRunning)?;
        let mut buf = gst::Buffer::from_mut_slice(packet.to_vec());
        if let Some(b) = buf.get_mut() {
            b.set_dts(now);
        }
        self.packets.fetch_add(1, Ordering::Relaxed);
        // An error here means the track is shutting down; the packet is simply not needed.
        let _ = self.rtp.push(buf);
        Ok(())
    }

    /// No more RTP or RTCP into this track (it is being removed).
    pub fn close(&self) {
        self.rtp.close();
        self.rtcp.close();
    }

    pub fn push_sender_report(&self, sr: &SenderReport) -> Result<()> {
        let now = self.running_time().ok_or(CompositorError::NotRunning)?;
        let mut buf = gst::Buffer::from_mut_slice(sr.to_bytes().to_vec());
        if let Some(b) = buf.get_mut() {
            b.set_dts(now);
        }
        let _ = self.rtcp.push(buf);
        Ok(())
    }

    pub fn stats(&self) -> TrackStats {
        TrackStats { packets: self.packets.load(Ordering::Relaxed), rejected: self.rejected.load(Ordering::Relaxed) }
    }
}

/// Reads the `handle-sync` structure of rtpjitterbuffer.
pub(crate) fn parse_handle_sync(s: &gst::StructureRef) -> Option<SyncObservation> {
    let sr_ext_rtptime = s.get::<u64>("sr-ext-rtptime").ok()?;
    if sr_ext_rtptime == u64::MAX {
        return None; // the jitter buffer judged this report inconsistent with the stream
    }
    let buffer = s.get::<gst::Buffer>("sr-buffer").ok()?;
    let map = buffer.map_readable().ok()?;
    let sr = SenderReport::parse(map.as_slice())?;
    Some(SyncObservation {
        base_rtptime: s.get::<u64>("base-rtptime").ok()?,
        base_time: s.get::<u64>("base-time").ok()?,
        clock_rate: s.get::<u32>("clock-rate").ok()?,
        sr_ext_rtptime,
        ntp_ns: sr.ntp_nanos(),
    })
}

/// A name card for a participant without video: a small live picture with their name.
pub(crate) fn placeholder_bin(index: u64, name: &str, config: &ProgramConfig) -> Result<gst::Bin> {
    let bin = gst::Bin::builder().name(format!("placeholder-{index}")).build();
    let src = make("videotestsrc", None)?;
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", "solid-color");
    src.set_property("foreground-color", 0xff2d3440u32);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", 480i32)
        .field("height", 270i32)
        .field("framerate", gst::Fraction::new(config.fps as i32, 1))
        .field("colorimetry", super::backbone::PROGRAM_COLORIMETRY)
        .field("chroma-site", super::backbone::PROGRAM_CHROMA_SITE)
        .build();
    let text = make("textoverlay", None)?;
    text.set_property("text", name);
    text.set_property("font-desc", "Sans Bold 28");
    text.set_property_from_str("halignment", "center");
    text.set_property_from_str("valignment", "center");
    text.set_property("shaded-background", false);
    let chain = [src, super::elements::capsfilter(caps)?, text.clone()];
    add_chain(&bin, &chain)?;
    let pad = text.static_pad("src").ok_or_else(|| CompositorError::Gst("textoverlay has no src pad".into()))?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&pad)?.name("src").build())?;
    Ok(bin)
}
