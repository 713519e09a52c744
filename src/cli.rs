//! Command-line interface (clap derive). Flags that configure the server also read
//! `TESSERA_*` environment variables; a flag wins over its variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod bot;
pub use bot::{BotArgs, BotCodec, parse_color, parse_duration, parse_pace_factor, parse_rate, parse_size};

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
    /// Join a room as a synthetic participant (a colour or test pattern and a tone), over
    /// WebRTC exactly as a browser does; for demos, tests and load tests.
    Bot(BotArgs),
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
    #[arg(long, env = "TESSERA_API_KEY", value_name = "KEY", hide_env_values = true)]
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

    /// UDP port all WebRTC connections share (one per address) [default: any free port].
    #[arg(long, env = "TESSERA_RTC_UDP_PORT", value_name = "PORT")]
    pub rtc_udp_port: Option<u16>,

    /// TCP port of the ICE-TCP listener (one per address) [default: any free port].
    #[arg(long, env = "TESSERA_RTC_TCP_PORT", value_name = "PORT")]
    pub rtc_tcp_port: Option<u16>,

    /// POST every event (rooms, participants, recordings, streams, destinations) here,
    /// signed with HMAC-SHA256 of the body keyed with the API key.
    #[arg(long, env = "TESSERA_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Extra CA certificates (PEM) trusted for rtmps:// destinations, besides the system's.
    #[arg(long, env = "TESSERA_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// How long the presigned `download_url` of a completed S3 recording stays valid, in
    /// seconds (1 to 604800) [default: 3600].
    #[arg(long, env = "TESSERA_DOWNLOAD_URL_TTL_S", value_name = "SECONDS")]
    pub download_url_ttl_s: Option<u64>,

    /// TURN servers for clients whose networks block UDP or sit behind symmetric NAT,
    /// comma-separated `turn:HOST[:PORT][?transport=udp|tcp]` / `turns:…` URLs (e.g. a coturn
    /// with `use-auth-secret`). Needs --turn-secret.
    #[arg(long, env = "TESSERA_TURN_URLS", value_name = "URLS", value_delimiter = ',')]
    pub turn_urls: Option<Vec<String>>,

    /// The TURN server's shared secret (TURN REST API, coturn's `static-auth-secret`): clients
    /// get time-limited credentials derived from it with their join answer.
    #[arg(long, env = "TESSERA_TURN_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub turn_secret: Option<crate::turn::Secret>,

    /// How long the TURN credentials given to a participant stay valid, in seconds (60 to
    /// 604800) [default: 86400].
    #[arg(long, env = "TESSERA_TURN_TTL_S", value_name = "SECONDS")]
    pub turn_ttl_s: Option<u64>,

    /// On SIGTERM or SIGINT, how long to finish running recordings and streams (last
    /// fragment written and uploaded, objects completed) before exiting anyway, in seconds
    /// [default: 30]. A second signal exits at once.
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE_S", value_name = "SECONDS")]
    pub shutdown_grace_s: Option<u64>,

    /// Cluster mode: the Redis that nodes share (`redis://[:password@]host:port/db`,
    /// `rediss://` for TLS). Without it, this node is a cluster of one and needs no Redis.
    #[arg(long, env = "TESSERA_REDIS_URL", value_name = "URL", hide_env_values = true)]
    pub redis_url: Option<crate::turn::Secret>,

    /// This node's id in the cluster (letters, digits, '-', '_', '.') [default: generated once
    /// and kept in DATA_DIR/node-id].
    #[arg(long, env = "TESSERA_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,

    /// The base URL other nodes and clients reach this node's HTTP at [default: from
    /// --http-addr, e.g. http://127.0.0.1:8080].
    #[arg(long, env = "TESSERA_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// In a cluster, this node's region label (letters, digits, '-', '_', '.'; e.g. eu-west):
    /// a participant token asked for with `"region"` joins through a node of that region.
    #[arg(long, env = "TESSERA_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// In a cluster, the UDP port other nodes send this node's rooms' media to (relay links,
    /// SRTP) [default: any free port, advertised in the node's heartbeat].
    #[arg(long, env = "TESSERA_RELAY_PORT", value_name = "PORT")]
    pub relay_port: Option<u16>,

    /// In a cluster, the address (IP:PORT) other nodes send relay media to when it is not the
    /// bound one (a NAT's or a load balancer's forwarded port) [default: the public URL's IP
    /// and the relay port].
    #[arg(long, env = "TESSERA_RELAY_PUBLIC_ADDR", value_name = "IP:PORT")]
    pub relay_public_addr: Option<std::net::SocketAddr>,

    /// Participants one room holds at most (1 to 100000); one more is refused with
    /// `room is full` [default: 50].
    #[arg(long, env = "TESSERA_MAX_PARTICIPANTS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_participants: Option<u32>,

    /// Forwarding threads (1 to 64; 0: one per CPU core), each reading its own socket on
    /// the shared WebRTC UDP port (SO_REUSEPORT) and writing the copies for the connections
    /// it owns [default: 0].
    #[arg(long, env = "TESSERA_FORWARDING_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=64))]
    pub forwarding_threads: Option<u32>,

    /// Time one forwarded copy in N for `tessera_sfu_forward_delay_seconds` (by sequence
    /// number); 1 times every copy, 0 turns the probe off [default: 16].
    #[arg(long, env = "TESSERA_FORWARD_DELAY_SAMPLE", value_name = "N")]
    pub forward_delay_sample: Option<u16>,

    /// Room programs (composited rooms with recordings or streams) this node runs at most;
    /// more are refused with 503 `no_capacity` [default: 1.5 per CPU core, at least 1].
    #[arg(long, env = "TESSERA_PROGRAM_BUDGET", value_name = "N")]
    pub program_budget: Option<u32>,

    /// In a cluster, a node whose CPU use is above this share (0.1 to 1.0) takes no new
    /// rooms [default: 0.85].
    #[arg(long, env = "TESSERA_MAX_CPU", value_name = "SHARE")]
    pub max_cpu: Option<f32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
