//! Program settings: canvas, encoders, latency.

use crate::error::{CompositorError, Result};
use serde::{Deserialize, Serialize};

/// What the room program produces. Defaults: 1280x720 at 30 fps, H.264 at 3 Mbit/s with a
/// keyframe every 2 s, AAC-LC 48 kHz stereo at 128 kbit/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgramConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_bitrate_kbps: u32,
    /// Seconds between keyframes (IDR, closed GOP).
    pub keyframe_interval_s: f64,
    /// x264 speed preset (`ultrafast` … `veryslow`).
    pub x264_preset: String,
    /// x264 encoding threads; 0 = Tessera's choice: one thread up to 1280x720 (the same CPU
    /// as x264's sliced threads within this VM's noise, and no oversubscription when a server
    /// runs many rooms), x264's own choice above.
    pub x264_threads: u32,
    pub audio_bitrate_kbps: u32,
    pub audio_sample_rate: u32,
    /// Jitter buffer depth for every input track.
    pub jitter_buffer_ms: u32,
    /// Extra time the mixers wait for late inputs before producing a frame without them.
    pub mixer_latency_ms: u32,
}

impl ProgramConfig {
    /// The x264 `threads` setting for this program (see [`ProgramConfig::x264_threads`]).
    pub fn encoder_threads(&self) -> u32 {
        match self.x264_threads {
            0 if u64::from(self.width) * u64::from(self.height) <= 1280 * 720 => 1,
            n => n,
        }
    }
}

impl Default for ProgramConfig {
    fn default() -> Self {
        ProgramConfig {
            width: 1280,
            height: 720,
            fps: 30,
            video_bitrate_kbps: 3000,
            keyframe_interval_s: 2.0,
            x264_preset: "veryfast".into(),
            x264_threads: 0,
            audio_bitrate_kbps: 128,
            audio_sample_rate: 48000,
            jitter_buffer_ms: 200,
            mixer_latency_ms: 100,
        }
    }
}

const X264_PRESETS: &[&str] =
    &["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];

fn invalid(field: &'static str, reason: impl Into<String>) -> CompositorError {
    CompositorError::InvalidConfig { field, reason: reason.into() }
}

impl ProgramConfig {
    pub fn validate(&self) -> Result<()> {
        if !(16..=3840).contains(&self.width) || !self.width.is_multiple_of(2) {
            return Err(invalid("width", "must be an even number from 16 to 3840"));
        }
        if !(16..=3840).contains(&self.height) || !self.height.is_multiple_of(2) {
            return Err(invalid("height", "must be an even number from 16 to 3840"));
        }
        if !(1..=60).contains(&self.fps) {
            return Err(invalid("fps", "must be from 1 to 60"));
        }
        if !(100..=50_000).contains(&self.video_bitrate_kbps) {
            return Err(invalid("video_bitrate_kbps", "must be from 100 to 50000"));
        }
        if !(self.keyframe_interval_s >= 0.1 && self.keyframe_interval_s <= 10.0) {
            return Err(invalid("keyframe_interval_s", "must be from 0.1 to 10"));
        }
        if !X264_PRESETS.contains(&self.x264_preset.as_str()) {
            return Err(invalid("x264_preset", format!("must be one of {}", X264_PRESETS.join(", "))));
        }
        if !(32..=512).contains(&self.audio_bitrate_kbps) {
            return Err(invalid("audio_bitrate_kbps", "must be from 32 to 512"));
        }
        if ![44_100, 48_000].contains(&self.audio_sample_rate) {
            return Err(invalid("audio_sample_rate", "must be 44100 or 48000"));
        }
        if !(20..=2000).contains(&self.jitter_buffer_ms) {
            return Err(invalid("jitter_buffer_ms", "must be from 20 to 2000"));
        }
        if self.mixer_latency_ms > 2000 {
            return Err(invalid("mixer_latency_ms", "must be at most 2000"));
        }
        Ok(())
    }

    /// Keyframe interval in frames (x264 `key-int-max`).
    pub fn keyframe_interval_frames(&self) -> u32 {
        ((self.keyframe_interval_s * self.fps as f64).round() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_encoder_thread_up_to_720p() {
        assert_eq!(ProgramConfig::default().encoder_threads(), 1);
        let portrait = ProgramConfig { width: 720, height: 1280, ..Default::default() };
        assert_eq!(portrait.encoder_threads(), 1);
        let full_hd = ProgramConfig { width: 1920, height: 1080, ..Default::default() };
        assert_eq!(full_hd.encoder_threads(), 0, "x264 decides");
        let pinned = ProgramConfig { x264_threads: 3, ..full_hd };
        assert_eq!(pinned.encoder_threads(), 3);
    }

    #[test]
    fn defaults_are_valid() {
        let c = ProgramConfig::default();
        c.validate().unwrap();
        assert_eq!(c.keyframe_interval_frames(), 60);
    }

    #[test]
    fn portrait_sizes_are_valid() {
        for (w, h) in [(720, 1280), (1080, 1920)] {
            ProgramConfig { width: w, height: h, ..Default::default() }.validate().unwrap();
        }
    }

    #[test]
    fn odd_width_is_rejected_naming_the_field() {
        let err = ProgramConfig { width: 1279, ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("width"), "{err}");
    }

    #[test]
    fn unknown_preset_is_rejected() {
        let err = ProgramConfig { x264_preset: "ludicrous".into(), ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("x264_preset"));
    }
}
