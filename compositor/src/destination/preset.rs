//! Ingest presets: what YouTube Live and Amazon IVS require of an RTMP stream, checked against
//! the program before anything goes live. The program is encoded once for all outputs, so a
//! destination whose service cannot take it is refused with the field and the reason, and
//! [`IngestPreset::apply`] adapts a program configuration that is about to be created.

use crate::config::ProgramConfig;
use serde::{Deserialize, Serialize};

/// Amazon IVS channel types and what each takes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IvsChannelType {
    /// Transmuxed as is: up to 480p and 1.5 Mbit/s.
    Basic,
    /// Transcoded: up to 1080p and 8.5 Mbit/s.
    Standard,
    AdvancedSd,
    AdvancedHd,
}

/// Limits a custom ingest declares; every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomLimits {
    /// Longest side of the picture, in pixels.
    pub max_long_side: Option<u32>,
    /// Shortest side of the picture, in pixels.
    pub max_short_side: Option<u32>,
    pub max_fps: Option<u32>,
    pub max_video_bitrate_kbps: Option<u32>,
    /// Keyframe interval the ingest requires, in seconds.
    pub keyframe_interval_s: Option<f64>,
    pub max_audio_bitrate_kbps: Option<u32>,
}

/// What a destination's ingest requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "preset", rename_all = "lowercase", deny_unknown_fields)]
pub enum IngestPreset {
    /// YouTube Live: keyframes at most 4 s apart (2 s recommended), AAC-LC 44.1/48 kHz, up
    /// to 2160p60 and 51 Mbit/s.
    Youtube,
    /// Amazon IVS: keyframes exactly 2 s apart, AAC-LC 44.1/48 kHz up to 160 kbit/s, size and
    /// bitrate by channel type.
    Ivs {
        #[serde(default = "default_ivs_channel")]
        channel: IvsChannelType,
    },
    /// Any RTMP ingest, with the limits it declares (none by default).
    Custom(CustomLimits),
}

impl Default for IngestPreset {
    fn default() -> Self {
        IngestPreset::Custom(CustomLimits::default())
    }
}

fn default_ivs_channel() -> IvsChannelType {
    IvsChannelType::Standard
}

/// Why a program cannot go to a destination.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PresetError {
    /// The program setting at fault (`width`, `video_bitrate_kbps`, …).
    pub field: &'static str,
    pub reason: String,
}

/// The limits one preset stands for.
#[derive(Debug, Clone, PartialEq)]
struct Limits {
    service: &'static str,
    max_long_side: u32,
    max_short_side: u32,
    max_fps: u32,
    max_video_kbps: u32,
    /// (exact value required?, seconds)
    keyframe: Option<(bool, f64)>,
    max_audio_kbps: u32,
}

const RTMP_ANY: Limits = Limits {
    service: "RTMP",
    max_long_side: 3840,
    max_short_side: 3840,
    max_fps: 60,
    max_video_kbps: 50_000,
    keyframe: None,
    max_audio_kbps: 512,
};

impl IngestPreset {
    pub fn name(&self) -> String {
        match self {
            IngestPreset::Youtube => "youtube".into(),
            IngestPreset::Ivs { channel } => format!(
                "ivs-{}",
                serde_json::to_value(channel).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            ),
            IngestPreset::Custom(_) => "custom".into(),
        }
    }

    fn limits(&self) -> Limits {
        match self {
            IngestPreset::Youtube => Limits {
                service: "YouTube Live",
                max_long_side: 3840,
                max_short_side: 2160,
                max_fps: 60,
                max_video_kbps: 51_000,
                keyframe: Some((false, 4.0)),
                max_audio_kbps: 512,
            },
            IngestPreset::Ivs { channel } => {
                let (service, long, short, kbps) = match channel {
                    IvsChannelType::Basic => ("Amazon IVS (BASIC)", 852, 480, 1_500),
                    IvsChannelType::Standard => ("Amazon IVS (STANDARD)", 1920, 1080, 8_500),
                    IvsChannelType::AdvancedSd => ("Amazon IVS (ADVANCED_SD)", 1920, 1080, 8_500),
                    IvsChannelType::AdvancedHd => ("Amazon IVS (ADVANCED_HD)", 1920, 1080, 8_500),
                };
                Limits {
                    service,
                    max_long_side: long,
                    max_short_side: short,
                    max_fps: 60,
                    max_video_kbps: kbps,
                    keyframe: Some((true, 2.0)),
                    max_audio_kbps: 160,
                }
            }
            IngestPreset::Custom(c) => Limits {
                service: "the custom ingest",
                max_long_side: c.max_long_side.unwrap_or(RTMP_ANY.max_long_side),
                max_short_side: c.max_short_side.unwrap_or(RTMP_ANY.max_short_side),
                max_fps: c.max_fps.unwrap_or(RTMP_ANY.max_fps),
                max_video_kbps: c.max_video_bitrate_kbps.unwrap_or(RTMP_ANY.max_video_kbps),
                keyframe: c.keyframe_interval_s.map(|s| (true, s)),
                max_audio_kbps: c.max_audio_bitrate_kbps.unwrap_or(RTMP_ANY.max_audio_kbps),
            },
        }
    }

    /// Whether `program` can go to this ingest as it is. The first problem found is returned.
    pub fn check(&self, program: &ProgramConfig) -> Result<(), PresetError> {
        let l = self.limits();
        let err = |field, reason: String| Err(PresetError { field, reason });
        let (long, short) = long_short(program.width, program.height);
        if long > l.max_long_side || short > l.max_short_side {
            let field = if program.width >= program.height { "width" } else { "height" };
            return err(
                field,
                format!(
                    "{} takes at most {}x{} (or {}x{} portrait); the program is {}x{}",
                    l.service,
                    l.max_long_side,
                    l.max_short_side,
                    l.max_short_side,
                    l.max_long_side,
                    program.width,
                    program.height
                ),
            );
        }
        if program.fps > l.max_fps {
            return err(
                "fps",
                format!("{} takes at most {} fps; the program runs at {}", l.service, l.max_fps, program.fps),
            );
        }
        if program.video_bitrate_kbps > l.max_video_kbps {
            return err(
                "video_bitrate_kbps",
                format!(
                    "{} takes at most {} kbit/s of video; the program is encoded at {}",
                    l.service, l.max_video_kbps, program.video_bitrate_kbps
                ),
            );
        }
        match l.keyframe {
            Some((true, want)) if (program.keyframe_interval_s - want).abs() > 1e-6 => {
                return err(
                    "keyframe_interval_s",
                    format!(
                        "{} requires a keyframe every {want} s; the program has one every {} s",
                        l.service, program.keyframe_interval_s
                    ),
                );
            }
            Some((false, max)) if program.keyframe_interval_s > max + 1e-6 => {
                return err(
                    "keyframe_interval_s",
                    format!(
                        "{} requires keyframes at most {max} s apart; the program has one every {} s",
                        l.service, program.keyframe_interval_s
                    ),
                );
            }
            _ => {}
        }
        if ![44_100, 48_000].contains(&program.audio_sample_rate) {
            return err("audio_sample_rate", format!("{} takes AAC-LC at 44100 or 48000 Hz", l.service));
        }
        if program.audio_bitrate_kbps > l.max_audio_kbps {
            return err(
                "audio_bitrate_kbps",
                format!(
                    "{} takes at most {} kbit/s of audio; the program is encoded at {}",
                    l.service, l.max_audio_kbps, program.audio_bitrate_kbps
                ),
            );
        }
        Ok(())
    }

    /// Adapts a program that is about to start so this ingest takes it: the picture is scaled
    /// down into the size limit (keeping its shape, even sizes), bitrates are capped and the
    /// keyframe interval set. Settings already within the limits are kept.
    pub fn apply(&self, program: &mut ProgramConfig) {
        let l = self.limits();
        let (long, short) = long_short(program.width, program.height);
        let scale =
            f64::min(1.0, f64::min(l.max_long_side as f64 / long as f64, l.max_short_side as f64 / short as f64));
        if scale < 1.0 {
            program.width = even_floor(program.width as f64 * scale);
            program.height = even_floor(program.height as f64 * scale);
        }
        program.fps = program.fps.min(l.max_fps);
        program.video_bitrate_kbps = program.video_bitrate_kbps.min(l.max_video_kbps);
        match l.keyframe {
            Some((true, want)) => program.keyframe_interval_s = want,
            Some((false, max)) if program.keyframe_interval_s > max => program.keyframe_interval_s = 2.0,
            _ => {}
        }
        if ![44_100, 48_000].contains(&program.audio_sample_rate) {
            program.audio_sample_rate = 48_000;
        }
        program.audio_bitrate_kbps = program.audio_bitrate_kbps.min(l.max_audio_kbps);
    }

    /// Checks that every preset in `presets` can share one program (one encode).
    pub fn check_all<'a>(
        presets: impl IntoIterator<Item = &'a IngestPreset>,
        program: &ProgramConfig,
    ) -> Result<(), (String, PresetError)> {
        for p in presets {
            p.check(program).map_err(|e| (p.name(), e))?;
        }
        Ok(())
    }
}

fn long_short(w: u32, h: u32) -> (u32, u32) {
    if w >= h { (w, h) } else { (h, w) }
}

fn even_floor(v: f64) -> u32 {
    ((v.floor() as u32) & !1).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ivs(channel: IvsChannelType) -> IngestPreset {
        IngestPreset::Ivs { channel }
    }

    #[test]
    fn the_default_program_goes_to_youtube_and_ivs_standard() {
        let p = ProgramConfig::default();
        IngestPreset::Youtube.check(&p).unwrap();
        ivs(IvsChannelType::Standard).check(&p).unwrap();
        IngestPreset::default().check(&p).unwrap();
    }

    #[test]
    fn ivs_basic_refuses_720p_and_3_mbits_naming_the_field() {
        let p = ProgramConfig::default();
        let e = ivs(IvsChannelType::Basic).check(&p).unwrap_err();
        assert_eq!(e.field, "width");
        assert!(e.reason.contains("852x480") && e.reason.contains("1280x720"), "{e}");
        let small = ProgramConfig { width: 852, height: 480, ..Default::default() };
        let e = ivs(IvsChannelType::Basic).check(&small).unwrap_err();
        assert_eq!(e.field, "video_bitrate_kbps");
        assert!(e.reason.contains("1500"), "{e}");
        let ok = ProgramConfig { video_bitrate_kbps: 1500, ..small };
        ivs(IvsChannelType::Basic).check(&ok).unwrap();
    }

    #[test]
    fn ivs_standard_takes_1080p_at_8_5_mbits_but_not_more() {
        let p = ProgramConfig { width: 1920, height: 1080, video_bitrate_kbps: 8500, ..Default::default() };
        ivs(IvsChannelType::Standard).check(&p).unwrap();
        let e =
            ivs(IvsChannelType::Standard).check(&ProgramConfig { video_bitrate_kbps: 9000, ..p.clone() }).unwrap_err();
        assert_eq!(e.field, "video_bitrate_kbps");
        let e = ivs(IvsChannelType::Standard).check(&ProgramConfig { width: 2560, height: 1440, ..p }).unwrap_err();
        assert_eq!(e.field, "width");
    }

    #[test]
    fn portrait_programs_are_measured_by_their_long_side() {
        let portrait = ProgramConfig { width: 1080, height: 1920, ..Default::default() };
        ivs(IvsChannelType::Standard).check(&portrait).unwrap();
        IngestPreset::Youtube.check(&portrait).unwrap();
        let e = ivs(IvsChannelType::Basic).check(&portrait).unwrap_err();
        assert_eq!(e.field, "height");
    }

    #[test]
    fn keyframe_rules_differ_between_services() {
        let every4 = ProgramConfig { keyframe_interval_s: 4.0, ..Default::default() };
        IngestPreset::Youtube.check(&every4).unwrap();
        let e = ivs(IvsChannelType::Standard).check(&every4).unwrap_err();
        assert_eq!(e.field, "keyframe_interval_s");
        let every5 = ProgramConfig { keyframe_interval_s: 5.0, ..Default::default() };
        assert_eq!(IngestPreset::Youtube.check(&every5).unwrap_err().field, "keyframe_interval_s");
        let every1 = ProgramConfig { keyframe_interval_s: 1.0, ..Default::default() };
        IngestPreset::Youtube.check(&every1).unwrap();
        assert!(ivs(IvsChannelType::Basic).check(&every1).is_err());
    }

    #[test]
    fn ivs_caps_audio_at_160_kbits() {
        let p = ProgramConfig { audio_bitrate_kbps: 192, ..Default::default() };
        IngestPreset::Youtube.check(&p).unwrap();
        assert_eq!(ivs(IvsChannelType::Standard).check(&p).unwrap_err().field, "audio_bitrate_kbps");
    }

    #[test]
    fn apply_makes_any_program_acceptable_and_keeps_its_shape() {
        let presets = [
            IngestPreset::Youtube,
            ivs(IvsChannelType::Basic),
            ivs(IvsChannelType::Standard),
            ivs(IvsChannelType::AdvancedHd),
            IngestPreset::default(),
            IngestPreset::Custom(CustomLimits {
                max_long_side: Some(640),
                max_short_side: Some(360),
                max_video_bitrate_kbps: Some(800),
                keyframe_interval_s: Some(1.0),
                ..Default::default()
            }),
        ];
        let programs = [
            ProgramConfig::default(),
            ProgramConfig { width: 3840, height: 2160, video_bitrate_kbps: 20_000, ..Default::default() },
            ProgramConfig { width: 1080, height: 1920, keyframe_interval_s: 6.0, ..Default::default() },
            ProgramConfig { audio_bitrate_kbps: 320, fps: 60, ..Default::default() },
        ];
        for preset in &presets {
            for base in &programs {
                let mut p = base.clone();
                preset.apply(&mut p);
                p.validate().unwrap();
                preset.check(&p).unwrap_or_else(|e| panic!("{} on {base:?}: {e}", preset.name()));
                let before = base.width as f64 / base.height as f64;
                let after = p.width as f64 / p.height as f64;
                assert!((before - after).abs() < 0.02, "{} changed the shape: {p:?}", preset.name());
            }
        }
        let mut p = ProgramConfig::default();
        ivs(IvsChannelType::Basic).apply(&mut p);
        assert_eq!((p.width, p.height, p.video_bitrate_kbps), (852, 478, 1500));
    }

    #[test]
    fn presets_read_from_json() {
        let p: IngestPreset = serde_json::from_str(r#"{"preset":"ivs","channel":"basic"}"#).unwrap();
        assert_eq!(p, ivs(IvsChannelType::Basic));
        assert_eq!(p.name(), "ivs-basic");
        let p: IngestPreset = serde_json::from_str(r#"{"preset":"ivs"}"#).unwrap();
        assert_eq!(p, ivs(IvsChannelType::Standard));
        let p: IngestPreset = serde_json::from_str(r#"{"preset":"youtube"}"#).unwrap();
        assert_eq!(p, IngestPreset::Youtube);
        assert!(serde_json::from_str::<IngestPreset>(r#"{"preset":"twitch"}"#).is_err());
        let p: IngestPreset = serde_json::from_str(r#"{"preset":"custom"}"#).unwrap();
        assert_eq!(p, IngestPreset::default());
        let p: IngestPreset = serde_json::from_str(r#"{"preset":"custom","max_video_bitrate_kbps":800}"#).unwrap();
        assert_eq!(p, IngestPreset::Custom(CustomLimits { max_video_bitrate_kbps: Some(800), ..Default::default() }));
        assert!(serde_json::from_str::<IngestPreset>(r#"{"preset":"ivs","channel":"huge"}"#).is_err());
    }

    #[test]
    fn check_all_names_the_preset_that_cannot_share_the_program() {
        let p = ProgramConfig::default();
        let presets = [IngestPreset::Youtube, ivs(IvsChannelType::Basic)];
        let (name, e) = IngestPreset::check_all(&presets, &p).unwrap_err();
        assert_eq!(name, "ivs-basic");
        assert_eq!(e.field, "width");
    }
}
