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

    /// Room programs (composited rooms with recordings or streams) this node runs at most;
    /// more are refused with 503 `no_capacity` [default: 1.5 per CPU core, at least 1].
    #[arg(long, env = "TESSERA_PROGRAM_BUDGET", value_name = "N")]
    pub program_budget: Option<u32>,

    /// In a cluster, a node whose CPU use is above this share (0.1 to 1.0) takes no new
    /// rooms [default: 0.85].
    #[arg(long, env = "TESSERA_MAX_CPU", value_name = "SHARE")]
    pub max_cpu: Option<f32>,
}

/// `tessera bot` settings.
#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    /// The Tessera server (its HTTP address; the bot signals over its `/v1/rtc` WebSocket).
    #[arg(long, env = "TESSERA_URL", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub url: String,

    /// Room to join.
    #[arg(long, value_name = "ROOM")]
    pub room: String,

    /// Display name shown to the others (and on name labels).
    #[arg(long, default_value = "bot", value_name = "NAME")]
    pub name: String,

    /// Identity in the token the bot mints [default: the name and a random suffix].
    #[arg(long, value_name = "IDENTITY")]
    pub identity: Option<String>,

    /// API key, to mint a participant token through `POST /v1/rooms/{room}/tokens`.
    #[arg(
        long,
        env = "TESSERA_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        required_unless_present = "token"
    )]
    pub api_key: Option<String>,

    /// A participant token to join with, instead of minting one with the API key.
    #[arg(long, env = "TESSERA_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Publish this solid colour (`#rrggbb`) instead of a test pattern.
    #[arg(long, value_name = "#RRGGBB", value_parser = parse_color)]
    pub color: Option<u32>,

    /// Test pattern when no colour is given (GStreamer videotestsrc's: smpte, ball, snow, …).
    #[arg(long, default_value = "smpte", value_name = "PATTERN", conflicts_with = "color")]
    pub pattern: String,

    /// Video size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_name = "WxH", value_parser = parse_size)]
    pub size: (u32, u32),

    /// Video frame rate.
    #[arg(long, default_value_t = 30, value_name = "FPS", value_parser = clap::value_parser!(u32).range(1..=60))]
    pub fps: u32,

    /// Video codec.
    #[arg(long, default_value = "vp8", value_name = "CODEC")]
    pub codec: BotCodec,

    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 800, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(50..=20_000))]
    pub bitrate_kbps: u32,

    /// Pace the video packets as WebRTC senders do, at FACTOR times --bitrate-kbps (libwebrtc's
    /// default is 2.5). Without it each frame's packets leave at once.
    #[arg(long, value_name = "FACTOR", value_parser = parse_pace_factor)]
    pub pace_factor: Option<f64>,

    /// Publish a sine tone of this frequency in Hz [default: 440].
    #[arg(long, value_name = "HZ", conflicts_with = "silent")]
    pub tone: Option<f64>,

    /// Publish silence instead of a tone.
    #[arg(long)]
    pub silent: bool,

    /// For measuring A/V offset in recordings: the picture turns white and the tone sounds
    /// for the first 100 ms of every second, with silence in between (`scripts/soak`).
    #[arg(long, conflicts_with = "silent")]
    pub sync_marks: bool,

    /// Publish no video.
    #[arg(long)]
    pub no_video: bool,

    /// Also receive the others' media (as a browser does; for load tests). By default the bot
    /// only publishes.
    #[arg(long)]
    pub subscribe: bool,

    /// Publish nothing: with --subscribe, a receive-only participant (the SFU benchmark's
    /// subscribers).
    #[arg(long, requires = "subscribe")]
    pub no_publish: bool,

    /// Connect only through TURN relays (ICE transport policy `relay`), with the servers and
    /// credentials of the join answer; fails when the server offers no TURN server.
    #[arg(long)]
    pub relay_only: bool,

    /// Leave after this long (`90`, `90s`, `5m`, `1h`); without it, run until stopped.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BotCodec {
    Vp8,
    H264,
}

/// A pacing factor from 1 to 10.
pub fn parse_pace_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (1.0..=10.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}` is not a pacing factor from 1 to 10")),
    }
}

/// `#rrggbb` → 0xRRGGBB.
pub fn parse_color(s: &str) -> Result<u32, String> {
    let hex = s.strip_prefix('#').unwrap_or(s);
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{s}` is not a colour like #ff0000"));
    }
    u32::from_str_radix(hex, 16).map_err(|e| e.to_string())
}

/// `WIDTHxHEIGHT`, even numbers from 16 to 3840.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}` is not a size like 640x360 (even numbers, 16 to 3840)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    let ok = |v: u32| (16..=3840).contains(&v) && v.is_multiple_of(2);
    if ok(w) && ok(h) { Ok((w, h)) } else { Err(bad()) }
}

/// Seconds, or a number with an `s`, `m` or `h` suffix.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        _ => return Err(format!("`{s}`: use a number of seconds, or a suffix s, m or h")),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not a duration like 30s or 5m"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("`{s}`: the duration must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(v * scale))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_values() {
        assert_eq!(parse_color("#ff0000"), Ok(0xff0000));
        assert_eq!(parse_color("00FF00"), Ok(0x00ff00));
        assert!(parse_color("#ff00").is_err());
        assert!(parse_color("#gg0000").is_err());
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
        assert!(parse_size("641x360").is_err());
        assert!(parse_size("640").is_err());
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(std::time::Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(std::time::Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(std::time::Duration::from_secs(3600)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn bot_needs_a_key_or_a_token() {
        assert!(Cli::try_parse_from(["tessera", "bot", "--room", "r"]).is_err());
        let cli = Cli::try_parse_from([
            "tessera", "bot", "--room", "r", "--token", "t", "--color", "#0000ff", "--codec", "h264",
        ])
        .unwrap();
        let Command::Bot(args) = cli.command else { panic!("not bot") };
        assert_eq!(args.color, Some(0x0000ff));
        assert_eq!(args.codec, BotCodec::H264);
        assert!(
            Cli::try_parse_from(["tessera", "bot", "--room", "r", "--token", "t", "--tone", "440", "--silent"])
                .is_err()
        );
    }
}
