//! The RTP output's contract, as plain Rust: what an [`RtpSink`] receives, how the two streams
//! are described for an SDP (SSRC, payload type, fmtp), and how their RTP timestamps map to the
//! program's running time and the wall clock (for RTCP sender reports). The GStreamer side is
//! `program::rtp_bin`.
//!
//! Both streams' RTP timestamps are the program's running time on their clock, from a random
//! offset of their own: `rtp = offset + running_time * clock_rate` (modulo 2^32), which is what
//! GStreamer's payloaders compute when their `timestamp-offset` is set and `perfect-rtptime` is
//! off. Video and audio of the same instant of the program therefore map to the same instant
//! of one [`RtpClockSample`], which is all a receiver needs for lip sync.

use crate::error::{CompositorError, Result};
use std::sync::Arc;
use std::time::Duration;

/// Where an RTP output's packets go. Both methods are called on GStreamer streaming threads
/// (the output's video and audio branches, one thread each, each in order), with one whole
/// serialized RTP packet at a time.
///
/// **They must never block**: the thread that calls them is the output's own, but a stalled
/// call holds up that stream (its queue fills, then drops its oldest media). Copy the bytes
/// and hand them on (a bounded channel with `try_send`, a lock-free queue). After
/// `Program::detach_output` returns for the output, neither is called again.
pub trait RtpSink: Send + Sync + 'static {
    /// One RTP packet of the program's H.264 video (payload type, SSRC and timestamps as in
    /// [`RtpOutputInfo::video`]).
    fn video(&self, packet: &[u8]);
    /// One RTP packet of the program's Opus audio (as in [`RtpOutputInfo::audio`]).
    fn audio(&self, packet: &[u8]);
}

/// The payload type of the video packets unless the spec says otherwise.
pub const DEFAULT_VIDEO_PAYLOAD_TYPE: u8 = 102;
/// The payload type of the audio packets unless the spec says otherwise.
pub const DEFAULT_AUDIO_PAYLOAD_TYPE: u8 = 111;
/// The largest RTP packet made: with SRTP's tag, the RTP header extensions an SFU adds and
/// IPv6 and UDP headers, it stays under the common 1280-1500 byte path MTUs.
pub const RTP_MTU: u32 = 1200;
/// H.264's RTP clock (RFC 6184).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// Opus's RTP clock, whatever its coded bandwidth (RFC 7587).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
pub const OPUS_CHANNELS: u8 = 2;
pub const OPUS_BITRATE: u32 = 64_000;
/// One Opus frame per packet, as WebRTC senders make them.
pub const OPUS_FRAME_MS: u32 = 20;

/// An RTP output: the program's one H.264 encode and an Opus encode of its mix, as RTP packets
/// handed to `sink`.
#[derive(Clone)]
pub struct RtpOutputSpec {
    pub sink: Arc<dyn RtpSink>,
    /// Dynamic (96-127), and not the audio's.
    pub video_payload_type: u8,
    /// Dynamic (96-127), and not the video's.
    pub audio_payload_type: u8,
}

impl RtpOutputSpec {
    /// Packets to `sink`, with the default payload types (102 for H.264, 111 for Opus).
    pub fn new(sink: Arc<dyn RtpSink>) -> Self {
        RtpOutputSpec {
            sink,
            video_payload_type: DEFAULT_VIDEO_PAYLOAD_TYPE,
            audio_payload_type: DEFAULT_AUDIO_PAYLOAD_TYPE,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for (field, pt) in
            [("video_payload_type", self.video_payload_type), ("audio_payload_type", self.audio_payload_type)]
        {
            if !(96..=127).contains(&pt) {
                return Err(CompositorError::InvalidOutput { field, reason: format!("{pt} is not dynamic (96-127)") });
            }
        }
        if self.video_payload_type == self.audio_payload_type {
            return Err(CompositorError::InvalidOutput {
                field: "audio_payload_type",
                reason: "must differ from the video's (both streams may share one transport)".into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for RtpOutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpOutputSpec")
            .field("video_payload_type", &self.video_payload_type)
            .field("audio_payload_type", &self.audio_payload_type)
            .finish_non_exhaustive()
    }
}

/// One of an RTP output's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtpStream {
    Video,
    Audio,
}

/// What an SFU announces for one stream (`a=rtpmap`, `a=fmtp`, `a=ssrc`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RtpStreamInfo {
    pub ssrc: u32,
    pub payload_type: u8,
    /// `video/H264` or `audio/opus`.
    pub mime_type: &'static str,
    pub clock_rate: u32,
    /// Audio only.
    pub channels: Option<u8>,
    /// The `a=fmtp` parameters.
    pub fmtp: String,
    /// The RTP time of running time zero (see [`RtpStreamInfo::rtp_time_at`]).
    pub timestamp_offset: u32,
}

impl RtpStreamInfo {
    /// The RTP time of program running time `running_time` in this stream, as its payloader
    /// stamps it: `offset + floor(running_time * clock_rate)`, modulo 2^32.
    pub fn rtp_time_at(&self, running_time: Duration) -> u32 {
        let ticks = running_time.as_nanos() * self.clock_rate as u128 / 1_000_000_000;
        // Truncation is the RTP timestamp's wrap-around (RFC 3550 §5.1).
        self.timestamp_offset.wrapping_add(ticks as u32)
    }
}

/// The two streams of an RTP output, fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RtpOutputInfo {
    pub video: RtpStreamInfo,
    pub audio: RtpStreamInfo,
    /// The H.264 profile and level the encoder produces, as SDP's `profile-level-id` (also in
    /// the video's `fmtp`): `64001f` (High, level 3.1) for the default 1280x720 at 30 fps.
    pub profile_level_id: String,
}

impl RtpOutputInfo {
    /// Describes an output made by `spec` from an encoder whose SPS says `profile_level_id`
    /// (six hex digits), with SSRCs and timestamp offsets drawn from `random`.
    pub(crate) fn new(spec: &RtpOutputSpec, profile_level_id: &str, mut random: impl FnMut() -> u32) -> Self {
        let video_ssrc = random();
        // Distinct: an SFU keys streams by SSRC.
        let audio_ssrc = std::iter::repeat_with(&mut random).take(8).find(|s| *s != video_ssrc).unwrap_or(!video_ssrc);
        RtpOutputInfo {
            video: RtpStreamInfo {
                ssrc: video_ssrc,
                payload_type: spec.video_payload_type,
                mime_type: "video/H264",
                clock_rate: VIDEO_CLOCK_RATE,
                channels: None,
                fmtp: h264_fmtp(profile_level_id),
                timestamp_offset: random(),
            },
            audio: RtpStreamInfo {
                ssrc: audio_ssrc,
                payload_type: spec.audio_payload_type,
                mime_type: "audio/opus",
                clock_rate: OPUS_CLOCK_RATE,
                channels: Some(OPUS_CHANNELS),
                fmtp: "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1".into(),
                timestamp_offset: random(),
            },
            profile_level_id: profile_level_id.to_string(),
        }
    }

    pub fn stream(&self, stream: RtpStream) -> &RtpStreamInfo {
        match stream {
            RtpStream::Video => &self.video,
            RtpStream::Audio => &self.audio,
        }
    }

    /// Both streams' RTP times at one instant: program running time `running_time`, which is
    /// `ntp_time` on the wall clock.
    pub fn clock_at(&self, running_time: Duration, ntp_time: u64) -> RtpClockSample {
        RtpClockSample {
            ntp_time,
            running_time,
            video_rtp_time: self.video.rtp_time_at(running_time),
            audio_rtp_time: self.audio.rtp_time_at(running_time),
        }
    }
}

/// One instant on the wall clock and in both streams' RTP time: what an RTCP sender report
/// says (its packet and octet counts are the sender's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpClockSample {
    /// 64-bit NTP time (seconds since 1900 in the high 32 bits, fraction in the low).
    pub ntp_time: u64,
    /// The program's running time at that instant.
    pub running_time: Duration,
    pub video_rtp_time: u32,
    pub audio_rtp_time: u32,
}

impl RtpClockSample {
    pub fn rtp_time(&self, stream: RtpStream) -> u32 {
        match stream {
            RtpStream::Video => self.video_rtp_time,
            RtpStream::Audio => self.audio_rtp_time,
        }
    }
}

/// The SDP `profile-level-id` (RFC 6184 §8.1) of an H.264 stream from its `avcC` record (the
/// `codec_data` of `stream-format=avc` caps): profile_idc, the constraint flags and level_idc,
/// copied from the SPS as six hex digits.
pub fn profile_level_id(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, profile, constraints, level, ..] => Some(format!("{profile:02x}{constraints:02x}{level:02x}")),
        _ => None,
    }
}

/// The `a=fmtp` of the H.264 stream: single NAL units, STAP-A and FU-A (mode 1), and a receiver
/// may decode at another level than it would send.
pub fn h264_fmtp(profile_level_id: &str) -> String {
    format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;
    impl RtpSink for Nowhere {
        fn video(&self, _: &[u8]) {}
        fn audio(&self, _: &[u8]) {}
    }

    fn info(offsets: [u32; 4]) -> RtpOutputInfo {
        let mut values = offsets.into_iter();
        RtpOutputInfo::new(&RtpOutputSpec::new(Arc::new(Nowhere)), "64001f", move || values.next().unwrap_or(7))
    }

    /// The running time a stream's RTP time says, given the offset (no wrap in between).
    fn seconds_of(stream: &RtpStreamInfo, rtp: u32) -> f64 {
        rtp.wrapping_sub(stream.timestamp_offset) as f64 / stream.clock_rate as f64
    }

    #[test]
    fn video_and_audio_of_one_instant_map_to_that_instant() {
        // Offsets near the wrap, so both streams wrap during the test.
        let out = info([0x1111, 0x2222, u32::MAX - 90_000, u32::MAX - 1000]);
        for ms in [0u64, 20, 33, 1_000, 61_234, 3_600_000, 13 * 3_600_000 + 17] {
            let t = Duration::from_millis(ms);
            let s = out.clock_at(t, 42);
            let (v, a) = (seconds_of(&out.video, s.video_rtp_time), seconds_of(&out.audio, s.audio_rtp_time));
            // Modulo each clock's wrap (13 h 15 min at 90 kHz, 24 h 51 min at 48 kHz).
            let v_wrap = (1u64 << 32) as f64 / 90_000.0;
            let a_wrap = (1u64 << 32) as f64 / 48_000.0;
            let secs = t.as_secs_f64();
            assert!((v - secs % v_wrap).abs() < 1.0 / 90_000.0, "video at {ms} ms: {v}");
            assert!((a - secs % a_wrap).abs() < 1.0 / 48_000.0, "audio at {ms} ms: {a}");
            assert_eq!(s.rtp_time(RtpStream::Video), s.video_rtp_time);
            assert_eq!(s.ntp_time, 42);
        }
    }

    #[test]
    fn rtp_time_is_the_payloaders_floor_of_running_time_plus_the_offset() {
        let out = info([1, 2, 1000, 5]);
        // 33.333 ms: 2999.97 ticks at 90 kHz, 1599.98 at 48 kHz; the payloader floors.
        let t = Duration::from_nanos(33_333_000);
        assert_eq!(out.video.rtp_time_at(t), 1000 + 2999);
        assert_eq!(out.audio.rtp_time_at(t), 5 + 1599);
        // One hour of 90 kHz is 324,000,000 ticks; 14 hours wrap.
        assert_eq!(
            out.video.rtp_time_at(Duration::from_secs(14 * 3600)),
            1000u32.wrapping_add(4_536_000_000u64 as u32)
        );
    }

    #[test]
    fn the_two_streams_get_distinct_ssrcs_and_the_spec_payload_types() {
        let out = info([9, 9, 9, 9]);
        assert_ne!(out.video.ssrc, out.audio.ssrc);
        assert_eq!((out.video.payload_type, out.audio.payload_type), (102, 111));
        assert_eq!(out.video.fmtp, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f");
        assert_eq!((out.audio.clock_rate, out.audio.channels), (48_000, Some(2)));
    }

    #[test]
    fn profile_level_id_comes_from_the_avcc_record() {
        // x264's High profile at level 3.1: avcC version 1, profile 100, no constraints, 31.
        assert_eq!(profile_level_id(&[1, 0x64, 0x00, 0x1f, 0xff, 0xe1]).as_deref(), Some("64001f"));
        assert_eq!(profile_level_id(&[1, 0x42, 0xc0, 0x1e]).as_deref(), Some("42c01e"));
        assert_eq!(profile_level_id(&[0, 0x64, 0x00, 0x1f]), None, "not avcC version 1");
        assert_eq!(profile_level_id(&[1, 0x64]), None, "too short");
    }

    #[test]
    fn payload_types_must_be_dynamic_and_distinct() {
        let mut spec = RtpOutputSpec::new(Arc::new(Nowhere));
        spec.validate().unwrap();
        spec.video_payload_type = 95;
        assert!(spec.validate().unwrap_err().to_string().contains("video_payload_type"));
        spec.video_payload_type = 111;
        assert!(spec.validate().unwrap_err().to_string().contains("audio_payload_type"));
        spec.video_payload_type = 96;
        spec.validate().unwrap();
    }
}
