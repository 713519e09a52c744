//! The TURN settings: servers and the shared secret their credentials come from.

use super::{ConfigError, FileConfig};
use crate::cli::ServeArgs;
use crate::turn::TurnConfig;

/// The TURN settings, flags/environment over the file: URLs (each checked) and the shared
/// secret come together or not at all. Empty values mean "not set".
pub fn turn_config(args: &ServeArgs, file: &FileConfig) -> Result<Option<TurnConfig>, ConfigError> {
    let listed = |urls: &Option<Vec<String>>| -> Option<Vec<String>> {
        let urls: Vec<String> = urls.iter().flatten().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        (!urls.is_empty()).then_some(urls)
    };
    let urls = listed(&args.turn_urls).or_else(|| listed(&file.turn_urls));
    let secret = [&args.turn_secret, &file.turn_secret].into_iter().flatten().find(|s| !s.is_blank()).cloned();
    let ttl = args.turn_ttl_s.or(file.turn_ttl_s).map(std::time::Duration::from_secs);
    let (min, max) = (crate::turn::MIN_TTL, crate::turn::MAX_TTL);
    if ttl.is_some_and(|t| t < min || t > max) {
        return Err(ConfigError::Invalid {
            setting: "turn_ttl_s",
            reason: format!("must be between {} and {} seconds (7 days)", min.as_secs(), max.as_secs()),
        });
    }
    let urls = match urls {
        Some(urls) => Some(
            urls.iter()
                .map(|u| crate::turn::check_url(u))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| ConfigError::Invalid { setting: "turn_urls", reason })?,
        ),
        None => None,
    };
    match (urls, secret) {
        (Some(urls), Some(secret)) => Ok(Some(TurnConfig::new(urls, secret, ttl.unwrap_or(crate::turn::DEFAULT_TTL)))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Invalid {
            setting: "turn_urls",
            reason: "TURN servers need their shared secret too: set turn_secret (--turn-secret, TESSERA_TURN_SECRET)"
                .into(),
        }),
        (None, Some(_)) => Err(ConfigError::Invalid {
            setting: "turn_secret",
            reason: "a TURN secret without servers: set turn_urls (--turn-urls, TESSERA_TURN_URLS) too".into(),
        }),
    }
}
