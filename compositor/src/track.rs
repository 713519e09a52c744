//! Input track descriptions: what the SFU tells us about a published track.

use crate::error::{CompositorError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Vp8,
    H264,
    Opus,
}

impl Codec {
    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8 | Codec::H264)
    }
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Vp8 => "VP8",
            Codec::H264 => "H264",
            Codec::Opus => "OPUS",
        }
    }
}

/// Camera and screen share are both video but fill different layout regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Camera,
    Screen,
}

/// A published track as the compositor needs it: who it belongs to and its RTP parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackParams {
    /// Participant identity (unique in the room).
    pub participant: String,
    /// Display name for labels and placeholders.
    pub name: String,
    pub kind: TrackKind,
    pub codec: Codec,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub ssrc: u32,
}

impl TrackParams {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(CompositorError::InvalidTrack(m.to_string()));
        if self.participant.is_empty() {
            return bad("participant identity is empty");
        }
        if self.payload_type > 127 {
            return bad("payload_type must be 0..=127");
        }
        match (self.kind, self.codec.is_video()) {
            (TrackKind::Audio, true) => return bad("an audio track needs an audio codec"),
            (TrackKind::Camera | TrackKind::Screen, false) => {
                return bad("a video track needs a video codec");
            }
            _ => {}
        }
        let expected = if self.codec.is_video() { 90_000 } else { 48_000 };
        if self.clock_rate != expected {
            return Err(CompositorError::InvalidTrack(format!(
                "{} uses an RTP clock rate of {expected}, not {}",
                self.codec.encoding_name(),
                self.clock_rate
            )));
        }
        Ok(())
    }

    pub(crate) fn rtp_caps(&self) -> gst::Caps {
        let media = if self.codec.is_video() { "video" } else { "audio" };
        let mut b = gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("clock-rate", self.clock_rate as i32)
            .field("encoding-name", self.codec.encoding_name())
            .field("payload", self.payload_type as i32)
            .field("ssrc", self.ssrc);
        if self.codec == Codec::H264 {
            b = b.field("packetization-mode", "1");
        }
        if self.codec == Codec::Opus {
            b = b.field("encoding-params", "2");
        }
        b.build()
    }
}

/// Handle for a track added to a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrackId(pub u64);

impl std::fmt::Display for TrackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "track-{}", self.0)
    }
}
