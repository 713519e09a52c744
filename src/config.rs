//! `tessera serve` configuration: built-in defaults < config file (TOML) < environment < flags.
//! Clap already merges flags over environment variables into [`ServeArgs`]; this module
//! layers that over the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api_key::ApiKey;
use crate::cli::{LogFormat, ServeArgs};
use crate::turn::{Secret, TurnConfig};

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// How long a presigned `download_url` stays valid unless configured.
pub const DEFAULT_DOWNLOAD_URL_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest validity SigV4 presigning allows (7 days).
pub const MAX_DOWNLOAD_URL_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The settings the server runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: nothing configured; the server generates a development key.
    pub api_key: Option<ApiKey>,
    pub log_format: LogFormat,
    pub storage: StorageConfig,
    pub tls_ca_file: Option<PathBuf>,
    /// Addresses advertised to WebRTC clients.
    pub rtc_ips: Vec<std::net::IpAddr>,
    /// The shared WebRTC UDP port and ICE-TCP port (`None`: any free port).
    pub rtc_udp_port: Option<u16>,
    pub rtc_tcp_port: Option<u16>,
    pub webhook_url: Option<String>,
    /// Validity of presigned download URLs.
    pub download_url_ttl: std::time::Duration,
    /// How long a graceful stop may take to finish recordings and streams.
    pub shutdown_grace: std::time::Duration,
    /// TURN servers and the secret their credentials come from (checked by
    /// [`ServeConfig::resolve`]; [`ServeConfig::merge`] leaves it `None`). Debug is redacted.
    pub turn: Option<TurnConfig>,
}

/// `shutdown_grace_s` when none is given.
pub const DEFAULT_SHUTDOWN_GRACE_S: u64 = 30;

/// Where recordings go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `None`: local recordings under the data directory.
    pub s3_bucket: Option<String>,
    /// Prepended to every recording's key (`recordings/` → `recordings/ROOM/ID.mp4`).
    pub s3_prefix: String,
}

/// The config file. Unknown keys are errors so that typos do not silently fall back to defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http_addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub api_key: Option<String>,
    pub log_format: Option<LogFormat>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub rtc_ips: Option<Vec<std::net::IpAddr>>,
    pub rtc_udp_port: Option<u16>,
    pub rtc_tcp_port: Option<u16>,
    pub webhook_url: Option<String>,
    pub download_url_ttl_s: Option<u64>,
    pub shutdown_grace_s: Option<u64>,
    pub turn_urls: Option<Vec<String>>,
    pub turn_secret: Option<Secret>,
    pub turn_ttl_s: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

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

impl ServeConfig {
    /// Reads the config file named by `--config`/`TESSERA_CONFIG`, if any, and merges.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let ttl = args.download_url_ttl_s.or(file.download_url_ttl_s);
        let max = MAX_DOWNLOAD_URL_TTL.as_secs();
        if ttl.is_some_and(|t| t == 0 || t > max) {
            return Err(ConfigError::Invalid {
                setting: "download_url_ttl_s",
                reason: format!("must be between 1 and {max} seconds (7 days)"),
            });
        }
        let turn = turn_config(&args, &file)?;
        Ok(Self { turn, ..Self::merge(args, file) })
    }

    /// Flags/environment first, then the file, then the defaults.
    pub fn merge(args: ServeArgs, file: FileConfig) -> Self {
        let default_addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
        Self {
            http_addr: args.http_addr.or(file.http_addr).unwrap_or(default_addr),
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            // An empty value at one level does not hide a real key at a lower one.
            api_key: args.api_key.and_then(ApiKey::new).or_else(|| file.api_key.and_then(ApiKey::new)),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            storage: StorageConfig {
                s3_bucket: args.s3_bucket.or(file.s3_bucket).filter(|b| !b.trim().is_empty()),
                s3_prefix: args.s3_prefix.or(file.s3_prefix).unwrap_or_default(),
            },
            tls_ca_file: args.tls_ca_file.or(file.tls_ca_file),
            rtc_ips: args
                .rtc_ips
                .or(file.rtc_ips)
                .filter(|ips| !ips.is_empty())
                .unwrap_or_else(|| vec![std::net::Ipv4Addr::LOCALHOST.into()]),
            // 0 means "any free port", as for a socket.
            rtc_udp_port: args.rtc_udp_port.or(file.rtc_udp_port).filter(|p| *p != 0),
            rtc_tcp_port: args.rtc_tcp_port.or(file.rtc_tcp_port).filter(|p| *p != 0),
            webhook_url: args.webhook_url.or(file.webhook_url).filter(|u| !u.trim().is_empty()),
            download_url_ttl: args
                .download_url_ttl_s
                .or(file.download_url_ttl_s)
                .map(std::time::Duration::from_secs)
                .unwrap_or(DEFAULT_DOWNLOAD_URL_TTL),
            shutdown_grace: std::time::Duration::from_secs(
                args.shutdown_grace_s.or(file.shutdown_grace_s).unwrap_or(DEFAULT_SHUTDOWN_GRACE_S),
            ),
            turn: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_grace_from_flag_or_file_else_30_s() {
        let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
        assert_eq!(c.shutdown_grace.as_secs(), 30);
        let file = FileConfig::parse("shutdown_grace_s = 5\n").unwrap();
        assert_eq!(ServeConfig::merge(ServeArgs::default(), file).shutdown_grace.as_secs(), 5);
        let args = ServeArgs { shutdown_grace_s: Some(0), ..ServeArgs::default() };
        assert_eq!(ServeConfig::merge(args, FileConfig::default()).shutdown_grace.as_secs(), 0);
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
        assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.api_key.is_none());
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn flags_and_env_override_the_file() {
        let file = FileConfig::parse(
            "http_addr = \"0.0.0.0:9000\"\ndata_dir = \"/srv/t\"\napi_key = \"from-file\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            http_addr: Some("127.0.0.1:7000".parse().unwrap()),
            api_key: Some("from-env".into()),
            ..ServeArgs::default()
        };
        let c = ServeConfig::merge(args, file);
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:7000");
        assert_eq!(c.data_dir, PathBuf::from("/srv/t"));
        assert!(c.api_key.unwrap().matches("from-env"));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn webrtc_ports_from_file_and_flags_and_zero_is_any() {
        let file = FileConfig::parse("rtc_udp_port = 7882\nrtc_tcp_port = 7881\n").unwrap();
        let args = ServeArgs { rtc_tcp_port: Some(0), ..ServeArgs::default() };
        let c = ServeConfig::merge(args, file);
        assert_eq!((c.rtc_udp_port, c.rtc_tcp_port), (Some(7882), None));
        let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
        assert_eq!((c.rtc_udp_port, c.rtc_tcp_port), (None, None));
    }

    #[test]
    fn empty_key_falls_through_to_the_file() {
        let file = FileConfig { api_key: Some("from-file".into()), ..FileConfig::default() };
        let args = ServeArgs { api_key: Some(String::new()), ..ServeArgs::default() };
        assert!(ServeConfig::merge(args, file).api_key.unwrap().matches("from-file"));
    }

    #[test]
    fn storage_is_local_unless_a_bucket_is_named() {
        let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
        assert_eq!(c.storage.s3_bucket, None);
        let file = FileConfig::parse("s3_bucket = \"rec\"\ns3_prefix = \"calls/\"\n").unwrap();
        let c = ServeConfig::merge(ServeArgs::default(), file);
        assert_eq!(c.storage.s3_bucket.as_deref(), Some("rec"));
        assert_eq!(c.storage.s3_prefix, "calls/");
        let args = ServeArgs { s3_bucket: Some(" ".into()), ..ServeArgs::default() };
        assert_eq!(ServeConfig::merge(args, FileConfig::default()).storage.s3_bucket, None);
    }

    #[test]
    fn download_url_ttl_defaults_to_an_hour_and_is_bounded() {
        let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
        assert_eq!(c.download_url_ttl.as_secs(), 3600);
        let file = FileConfig::parse("download_url_ttl_s = 600\n").unwrap();
        assert_eq!(ServeConfig::merge(ServeArgs::default(), file).download_url_ttl.as_secs(), 600);
        for bad in [0, 604_801] {
            let args = ServeArgs { download_url_ttl_s: Some(bad), ..ServeArgs::default() };
            let err = ServeConfig::resolve(args).unwrap_err();
            assert!(err.to_string().starts_with("download_url_ttl_s: "), "{err}");
        }
    }

    #[test]
    fn turn_urls_and_secret_from_flags_or_file() {
        use clap::Parser;
        let none = turn_config(&ServeArgs::default(), &FileConfig::default()).unwrap();
        assert!(none.is_none());
        let file = FileConfig::parse(
            "turn_urls = [\"turn:turn.example.com:3478?transport=udp\", \"turns:turn.example.com:5349?transport=tcp\"]\nturn_secret = \"file-secret\"\nturn_ttl_s = 600\n",
        )
        .unwrap();
        let turn = turn_config(&ServeArgs::default(), &file).unwrap().expect("TURN from the file");
        assert_eq!(
            turn.urls,
            ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"]
        );
        assert_eq!(turn.ttl.as_secs(), 600);
        let (user, pass) = turn.credentials("ada", std::time::SystemTime::now());
        assert_eq!(pass, crate::turn::password("file-secret", &user));
        // Flags (or the environment) win; an empty secret falls through to the file's.
        let cli = crate::cli::Cli::try_parse_from([
            "tessera",
            "serve",
            "--turn-urls",
            "turn:127.0.0.1:3478, turn:127.0.0.1:3479?transport=tcp",
            "--turn-secret",
            "",
        ])
        .unwrap();
        let crate::cli::Command::Serve(args) = cli.command else { panic!("not serve") };
        let turn = turn_config(&args, &file).unwrap().unwrap();
        assert_eq!(turn.urls, ["turn:127.0.0.1:3478", "turn:127.0.0.1:3479?transport=tcp"]);
        assert_eq!(turn.ttl.as_secs(), 600);
        let (user, pass) = turn.credentials("ada", std::time::SystemTime::now());
        assert_eq!(pass, crate::turn::password("file-secret", &user));
        // The secret never shows in Debug, here or in the arguments.
        let shown = format!("{turn:?} {file:?} {args:?}");
        assert!(!shown.contains("file-secret"), "{shown}");
        // Without TURN, the default TTL is a day.
        let args = ServeArgs {
            turn_urls: Some(vec!["turn:h".into()]),
            turn_secret: Some(Secret::new("s")),
            ..ServeArgs::default()
        };
        assert_eq!(turn_config(&args, &FileConfig::default()).unwrap().unwrap().ttl.as_secs(), 86_400);
    }

    #[test]
    fn bad_turn_settings_are_config_errors_naming_the_setting() {
        let err = |args: ServeArgs, file: &str| {
            turn_config(&args, &FileConfig::parse(file).unwrap()).unwrap_err().to_string()
        };
        let secret = || Some(Secret::new("s"));
        let e = err(
            ServeArgs {
                turn_urls: Some(vec!["http://turn.example.com".into()]),
                turn_secret: secret(),
                ..ServeArgs::default()
            },
            "",
        );
        assert!(e.starts_with("turn_urls: `http://turn.example.com` is not a TURN URL"), "{e}");
        let e = err(ServeArgs { turn_secret: secret(), ..ServeArgs::default() }, "turn_urls = [\"turn:h:99999\"]");
        assert!(e.starts_with("turn_urls: `turn:h:99999` is not a TURN URL"), "{e}");
        let e = err(ServeArgs::default(), "turn_urls = [\"turn:h\"]");
        assert!(e.starts_with("turn_urls: ") && e.contains("turn_secret"), "{e}");
        let e = err(ServeArgs { turn_secret: secret(), ..ServeArgs::default() }, "");
        assert!(e.starts_with("turn_secret: ") && e.contains("turn_urls"), "{e}");
        let e = err(ServeArgs { turn_urls: Some(vec![" ".into()]), ..ServeArgs::default() }, "turn_secret = \"s\"");
        assert!(e.starts_with("turn_secret: "), "{e}");
        for ttl in [59, 604_801] {
            let e = err(ServeArgs { turn_ttl_s: Some(ttl), ..ServeArgs::default() }, "");
            assert!(e.starts_with("turn_ttl_s: "), "{e}");
        }
        assert!(FileConfig::parse("turn_urls = \"turn:h\"").is_err(), "turn_urls is a list");
        // resolve() checks them too.
        let args = ServeArgs { turn_urls: Some(vec!["turn:h".into()]), ..ServeArgs::default() };
        assert!(ServeConfig::resolve(args).unwrap_err().to_string().starts_with("turn_urls: "));
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let err = FileConfig::parse("http_adr = \"0.0.0.0:1\"").unwrap_err();
        assert!(err.to_string().contains("http_adr"), "{err}");
    }
}
