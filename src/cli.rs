//! Command-line interface (clap derive). Flags that configure the server also read
//! `TESSERA_*` environment variables; a flag wins over its variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "Tessera media server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with layout documents.
    Layouts {
        #[command(subcommand)]
        command: LayoutsCommand,
    },
    /// Run the HTTP server.
    Serve(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub enum LayoutsCommand {
    /// Check layout files and report every problem as `FILE: /json/pointer: reason`.
    ///
    /// Exit code: 0 if all are valid, 1 if any is invalid, 2 if a file cannot be read.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the names of the built-in layouts, one per line.
    List,
    /// Print a built-in layout as JSON.
    Show { name: String },
}

/// `tessera serve` settings as given on the command line or in the environment. `None`
/// means "not given here": the config file, then the built-in default applies
/// (see [`crate::config::ServeConfig::resolve`]).
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML config file; environment variables override it and flags override both.
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on for HTTP [default: 127.0.0.1:8080].
    #[arg(long, env = "TESSERA_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Directory for the server's data, created if missing [default: ./tessera-data].
    #[arg(long, env = "TESSERA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Bearer token required on /v1 (except /v1/health). If none is configured, a random
    /// development key is generated and printed once at startup.
    #[arg(
        long,
        env = "TESSERA_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Log format on stderr [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Record into this S3 bucket (credentials, region and endpoint from the standard AWS_*
    /// variables). Without it, recordings are written under the data directory.
    #[arg(long, env = "TESSERA_S3_BUCKET", value_name = "BUCKET")]
    pub s3_bucket: Option<String>,

    /// Key prefix for recordings in the bucket, e.g. `recordings/`.
    #[arg(long, env = "TESSERA_S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,

    /// Addresses to advertise to WebRTC clients, comma-separated [default: 127.0.0.1].
    /// Local addresses are bound; others (a 1:1 NAT's public address) are advertised for
    /// the local ones.
    #[arg(long, env = "TESSERA_RTC_IPS", value_name = "IPS", value_delimiter = ',')]
    pub rtc_ips: Option<Vec<std::net::IpAddr>>,

    /// POST every event (rooms, participants, recordings, streams, destinations) here,
    /// signed with HMAC-SHA256 of the body keyed with the API key.
    #[arg(long, env = "TESSERA_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Extra CA certificates (PEM) trusted for rtmps:// destinations, besides the system's.
    #[arg(long, env = "TESSERA_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
