//! What a stream request asks for, checked: RTMP(S) URLs and ingest presets, and the
//! compositor's refusals turned into errors that name the request's field.

use tessera_compositor::CompositorError;
use tessera_compositor::destination::{IngestPreset, RtmpUrl};

use crate::error::{Error, Result};

pub(super) use crate::error::invalid;

/// Parses the destination URLs of a request (field `base/N` on error).
pub fn parse_urls(urls: &[String], base: &str) -> Result<Vec<RtmpUrl>> {
    urls.iter()
        .enumerate()
        .map(|(i, u)| RtmpUrl::parse(u).map_err(|e| invalid(format!("{base}/{i}"), e.reason)))
        .collect()
}

/// `youtube`, `ivs` (standard channel), `ivs-basic`, `ivs-standard`, `ivs-advanced-sd`,
/// `ivs-advanced-hd` or `custom`.
pub fn parse_preset(name: Option<&str>) -> Result<IngestPreset> {
    use tessera_compositor::destination::IvsChannelType as C;
    Ok(match name.unwrap_or("custom") {
        "youtube" => IngestPreset::Youtube,
        "ivs" | "ivs-standard" => IngestPreset::Ivs { channel: C::Standard },
        "ivs-basic" => IngestPreset::Ivs { channel: C::Basic },
        "ivs-advanced-sd" => IngestPreset::Ivs { channel: C::AdvancedSd },
        "ivs-advanced-hd" => IngestPreset::Ivs { channel: C::AdvancedHd },
        "custom" => IngestPreset::default(),
        other => {
            return Err(invalid(
                "/preset",
                format!(
                    "unknown preset `{other}`: youtube, ivs, ivs-basic, ivs-standard, ivs-advanced-sd, ivs-advanced-hd or custom"
                ),
            ));
        }
    })
}

pub(super) fn destination_error(e: CompositorError) -> Error {
    match e {
        CompositorError::InvalidDestination { field, reason } => match field.strip_prefix("program.") {
            Some(setting) => Error::Setting { setting: setting.to_string(), reason },
            None => invalid("/destinations", reason),
        },
        other => Error::Program(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_by_name() {
        assert_eq!(parse_preset(Some("youtube")).unwrap(), IngestPreset::Youtube);
        assert_eq!(parse_preset(None).unwrap(), IngestPreset::default());
        assert_eq!(parse_preset(Some("ivs")).unwrap().name(), "ivs-standard");
        assert_eq!(parse_preset(Some("ivs-basic")).unwrap().name(), "ivs-basic");
        let e = parse_preset(Some("twitch")).unwrap_err();
        assert!(matches!(e, Error::Invalid { ref field, .. } if field == "/preset"), "{e}");
    }

    #[test]
    fn only_rtmp_urls_and_the_bad_one_is_named() {
        let urls = vec!["rtmp://h/app/k".to_string(), "file:///etc/passwd".to_string()];
        match parse_urls(&urls, "/destinations") {
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(field, "/destinations/1");
                assert!(reason.contains("rtmp://"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
