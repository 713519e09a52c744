//! `tessera serve` configuration: built-in defaults < config file (TOML) < environment < flags.
//! Clap already merges flags over environment variables into [`ServeArgs`]; this module
//! layers that over the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod cluster;
#[cfg(test)]
mod tests;
mod turn;

pub use cluster::{ClusterSettings, cluster_settings, default_program_budget};
pub use turn::turn_config;

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
    /// Room programs this node runs at most (admission; in a cluster, also placement).
    pub program_budget: u32,
    /// Participants one room holds at most.
    pub max_participants: usize,
    /// SFU forwarding threads (0: one per core).
    pub forwarding_threads: usize,
    /// The forwarding-delay probe times one copy in this many (0: off).
    pub forward_delay_sample: u16,
    /// Cluster mode (`None`: a single node, no Redis).
    pub cluster: Option<ClusterSettings>,
}

/// Participants per room when no limit is given.
pub const DEFAULT_MAX_PARTICIPANTS: usize = 50;

/// The forwarding-delay probe times one copy in this many when nothing else is configured:
/// plenty for its quantiles, and its shared state is touched for one copy in 16 only.
pub const DEFAULT_FORWARD_DELAY_SAMPLE: u16 = 16;

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
    pub redis_url: Option<Secret>,
    pub node_id: Option<String>,
    pub public_url: Option<String>,
    pub region: Option<String>,
    pub relay_port: Option<u16>,
    pub relay_public_addr: Option<std::net::SocketAddr>,
    pub program_budget: Option<u32>,
    pub max_participants: Option<u32>,
    pub max_cpu: Option<f32>,
    pub forwarding_threads: Option<u32>,
    pub forward_delay_sample: Option<u16>,
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

impl ServeConfig {
    /// Reads the config file named by `--config`/`TESSERA_CONFIG`, if any, and merges.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::resolve_with_file(args, file)
    }

    /// Checks and merges the flags with a config file already read.
    pub fn resolve_with_file(args: ServeArgs, file: FileConfig) -> Result<Self, ConfigError> {
        let ttl = args.download_url_ttl_s.or(file.download_url_ttl_s);
        let max = MAX_DOWNLOAD_URL_TTL.as_secs();
        if ttl.is_some_and(|t| t == 0 || t > max) {
            return Err(ConfigError::Invalid {
                setting: "download_url_ttl_s",
                reason: format!("must be between 1 and {max} seconds (7 days)"),
            });
        }
        if file.max_participants.is_some_and(|n| !(1..=100_000).contains(&n)) {
            return Err(ConfigError::Invalid { setting: "max_participants", reason: "from 1 to 100000".into() });
        }
        if file.forwarding_threads.is_some_and(|n| n as usize > tessera_sfu::MAX_FORWARDING_THREADS) {
            return Err(ConfigError::Invalid {
                setting: "forwarding_threads",
                reason: format!("from 0 (one per core) to {}", tessera_sfu::MAX_FORWARDING_THREADS),
            });
        }
        let turn = turn_config(&args, &file)?;
        let program_budget = cluster::program_budget(&args, &file)?;
        let cluster = cluster_settings(&args, &file)?;
        Ok(Self { turn, program_budget, cluster, ..Self::merge(args, file) })
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
            program_budget: default_program_budget(),
            max_participants: args
                .max_participants
                .or(file.max_participants)
                .map_or(DEFAULT_MAX_PARTICIPANTS, |n| n as usize),
            forwarding_threads: args.forwarding_threads.or(file.forwarding_threads).unwrap_or(0) as usize,
            forward_delay_sample: args
                .forward_delay_sample
                .or(file.forward_delay_sample)
                .unwrap_or(DEFAULT_FORWARD_DELAY_SAMPLE),
            cluster: None,
        }
    }
}
