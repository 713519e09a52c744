//! `tessera serve` configuration: built-in defaults < config file (TOML) < environment < flags.
//! Clap already merges flags over environment variables into [`ServeArgs`]; this module
//! layers that over the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api_key::ApiKey;
use crate::cli::{LogFormat, ServeArgs};

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";

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
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
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
        let max = crate::recording::MAX_DOWNLOAD_URL_TTL.as_secs();
        if ttl.is_some_and(|t| t == 0 || t > max) {
            return Err(ConfigError::Invalid {
                setting: "download_url_ttl_s",
                reason: format!("must be between 1 and {max} seconds (7 days)"),
            });
        }
        Ok(Self::merge(args, file))
    }

    /// Flags/environment first, then the file, then the defaults.
    pub fn merge(args: ServeArgs, file: FileConfig) -> Self {
        let default_addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
        Self {
            http_addr: args.http_addr.or(file.http_addr).unwrap_or(default_addr),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            // An empty value at one level does not hide a real key at a lower one.
            api_key: args
                .api_key
                .and_then(ApiKey::new)
                .or_else(|| file.api_key.and_then(ApiKey::new)),
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
                .unwrap_or(crate::recording::DEFAULT_DOWNLOAD_URL_TTL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let file = FileConfig {
            api_key: Some("from-file".into()),
            ..FileConfig::default()
        };
        let args = ServeArgs {
            api_key: Some(String::new()),
            ..ServeArgs::default()
        };
        assert!(
            ServeConfig::merge(args, file)
                .api_key
                .unwrap()
                .matches("from-file")
        );
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
    fn unknown_file_keys_are_rejected() {
        let err = FileConfig::parse("http_adr = \"0.0.0.0:1\"").unwrap_err();
        assert!(err.to_string().contains("http_adr"), "{err}");
    }
}
