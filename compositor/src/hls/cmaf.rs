//! CMAF (ISO/IEC 23000-19) for the program's one H.264 and one AAC track: the codec
//! configurations, the samples, the init segment (`ftyp` + `moov`) and the fragments
//! (`moof` + `mdat`) that LL-HLS parts are made of.
//!
//! Both tracks share one init segment and each fragment carries both ("muxed" media), because
//! the program is one encode: one playlist, one request per part, and a player that cannot
//! drift one track from the other. Video is track 1 at 90 kHz, audio track 2 at its sample rate.

mod fragment;
mod init;
#[cfg(test)]
mod tests;

pub use fragment::fragment;
pub use init::init_segment;

use super::error::{HlsError, Result};

/// The `track_ID` of the video track in the init segment and every fragment.
pub const VIDEO_TRACK_ID: u32 = 1;
/// The `track_ID` of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// The video track's timescale: ticks a second, as in MPEG-TS and RTP, so 30 fps and 29.97
/// fps frame durations are whole numbers.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// The H.264 encode as its caps describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    pub width: u32,
    pub height: u32,
    /// The caps' `codec_data`: an AVCDecoderConfigurationRecord (`avcC`), SPS and PPS inside.
    pub avcc: Vec<u8>,
}

/// The AAC encode as its caps describe it. Its timescale is `sample_rate`, so each AAC frame
/// lasts exactly 1024 ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    pub sample_rate: u32,
    pub channels: u16,
    /// The caps' `codec_data`: the AudioSpecificConfig.
    pub asc: Vec<u8>,
}

impl VideoConfig {
    /// The RFC 6381 codec string for `CODECS=`, e.g. `avc1.64001f`: profile, constraint flags
    /// and level, straight from the avcC record.
    pub fn codec(&self) -> Result<String> {
        let a = &self.avcc;
        // version, profile, compatibility, level, length size, SPS count: the fixed header.
        if a.len() < 7 {
            return Err(HlsError::InvalidAvcc("shorter than its 7-byte header"));
        }
        if a[0] != 1 {
            return Err(HlsError::InvalidAvcc("configurationVersion is not 1"));
        }
        Ok(format!("avc1.{:02x}{:02x}{:02x}", a[1], a[2], a[3]))
    }
}

impl AudioConfig {
    /// The RFC 6381 codec string, `mp4a.40.<audio object type>`: `mp4a.40.2` for AAC-LC.
    /// An AudioSpecificConfig too short to say (which [`init_segment`] refuses) reads as
    /// AAC-LC, the only profile the program encodes.
    pub fn codec(&self) -> String {
        format!("mp4a.40.{}", audio_object_type(&self.asc).unwrap_or(2))
    }
}

/// The audio object type: the first 5 bits of the AudioSpecificConfig, or 32 + the next 6 when
/// those are the escape value 31.
pub(crate) fn audio_object_type(asc: &[u8]) -> Result<u8> {
    let (Some(&b0), Some(&b1)) = (asc.first(), asc.get(1)) else {
        return Err(HlsError::InvalidAsc("shorter than 2 bytes"));
    };
    let object_type = match b0 >> 3 {
        0 => return Err(HlsError::InvalidAsc("audio object type 0 (null)")),
        31 => 32 + (((b0 & 0x07) << 3) | (b1 >> 5)),
        t => t,
    };
    Ok(object_type)
}

/// One access unit of one track. Times are in the track's timescale ([`VIDEO_TIMESCALE`] or
/// the audio sample rate).
#[derive(Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time.
    pub dts: u64,
    /// Presentation time minus decode time (B-frames); 0 for audio.
    pub cts_offset: i32,
    pub duration: u32,
    /// A sync sample: an IDR picture (every AAC frame is one).
    pub keyframe: bool,
    /// Video: the AVC access unit as the encoder gave it (length-prefixed NAL units, the
    /// length size the avcC record declares). Audio: one raw AAC frame, no ADTS header.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Sample {
    /// The data's size, not its bytes: a frame in a test failure is kilobytes of noise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("dts", &self.dts)
            .field("cts_offset", &self.cts_offset)
            .field("duration", &self.duration)
            .field("keyframe", &self.keyframe)
            .field("bytes", &self.data.len())
            .finish()
    }
}
