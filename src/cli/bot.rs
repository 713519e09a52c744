//! `tessera bot` settings and the parsers of their values.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `tessera bot` settings.
#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    /// The Tessera server (its HTTP address; the bot signals over its `/v1/rtc` WebSocket).
    #[arg(long, env = "TESSERA_URL", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub url: String,

    /// Room to join (with --janus: the VideoRoom's numeric id, e.g. 1234).
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
        required_unless_present_any = ["token", "janus"]
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

    /// --sync-marks on whole seconds of the wall clock (the system's UTC clock) instead of the
    /// media's own running time: a viewer on the same machine that sees a flash at wall time T
    /// sees it T mod 1 s after it was captured (glass-to-glass latency, `scripts/bench-audiences`).
    /// Implies --sync-marks.
    #[arg(long, conflicts_with = "silent")]
    pub wall_clock_marks: bool,

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

    /// Join a Janus VideoRoom instead of a Tessera room, through Janus's plain HTTP API at this
    /// URL (e.g. `http://127.0.0.1:8088/janus`): publish the same media as in a Tessera room,
    /// or with --subscribe --no-publish receive the room's first publisher. For the
    /// side-by-side benchmark (`scripts/bench-janus`); --room is the room's numeric id, and no
    /// token or API key is needed.
    #[arg(long, value_name = "URL", conflicts_with_all = ["subscribers", "relay_only"])]
    pub janus: Option<String>,

    /// Write a line per RTP packet sent (publishing) or received (subscribing) to FILE: the
    /// wall-clock time in microseconds, `v` or `a`, and a fingerprint of the payload, to count
    /// copies and measure one-way delays across a server (`scripts/bench-janus`).
    #[arg(long, value_name = "FILE", conflicts_with = "subscribers")]
    pub packet_log: Option<PathBuf>,

    /// Leave after this long (`90`, `90s`, `5m`, `1h`); without it, run until stopped.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Load generator: run N receive-only subscribers in this process instead of one
    /// participant, each with its own token (minted with --api-key), WebSocket and subscribe
    /// connection, named NAME-sub-001…; nothing is published (the media flags are ignored).
    /// Counts packets, loss and video freezes per subscriber and track, and prints a JSON report
    /// at the end (see --report).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub subscribers: u32,

    /// With --subscribers: how many subscribers join per second.
    #[arg(long, default_value_t = 20.0, value_name = "RATE", value_parser = parse_rate)]
    pub ramp_per_second: f64,

    /// With --subscribers: print a one-line summary on stderr this often (`5`, `5s`, `1m`).
    #[arg(long, default_value = "5", value_name = "DURATION", value_parser = parse_duration)]
    pub report_every: std::time::Duration,

    /// With --subscribers: write the JSON report to this file instead of stdout.
    #[arg(long, value_name = "FILE", requires = "subscribers")]
    pub report: Option<PathBuf>,

    /// With --subscribers: each subscriber receives only the room's program, one composited
    /// video and the mixed audio (MCU mode: the room is PATCHed with `publish_program`),
    /// from when it joins the room.
    #[arg(long, requires = "subscribers")]
    pub program: bool,
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

/// Joins per second, from 0.01 to 10,000.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.01..=10_000.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a rate from 0.01 to 10000 per second")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

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

    #[test]
    fn bot_wall_clock_marks() {
        let cli =
            Cli::try_parse_from(["tessera", "bot", "--room", "r", "--api-key", "k", "--wall-clock-marks"]).unwrap();
        let Command::Bot(args) = cli.command else { panic!("not bot") };
        assert!(args.wall_clock_marks && !args.sync_marks, "the bot adds --sync-marks itself");
        let silent = ["tessera", "bot", "--room", "r", "--api-key", "k", "--wall-clock-marks", "--silent"];
        assert!(Cli::try_parse_from(silent).is_err(), "the marks need the tone");
    }

    #[test]
    fn bot_load_generator_flags() {
        let cli = Cli::try_parse_from(["tessera", "bot", "--room", "r", "--api-key", "k"]).unwrap();
        let Command::Bot(args) = cli.command else { panic!("not bot") };
        assert_eq!((args.subscribers, args.ramp_per_second), (0, 20.0));
        assert_eq!(args.report_every, std::time::Duration::from_secs(5));
        let cli = Cli::try_parse_from([
            "tessera",
            "bot",
            "--room",
            "r",
            "--api-key",
            "k",
            "--subscribers",
            "200",
            "--ramp-per-second",
            "50",
            "--report-every",
            "2s",
            "--report",
            "out.json",
        ])
        .unwrap();
        let Command::Bot(args) = cli.command else { panic!("not bot") };
        assert_eq!((args.subscribers, args.ramp_per_second), (200, 50.0));
        assert_eq!(args.report.as_deref(), Some(std::path::Path::new("out.json")));
        assert!(Cli::try_parse_from(["tessera", "bot", "--room", "r", "--api-key", "k", "--report", "x"]).is_err());
        let janus = ["tessera", "bot", "--room", "1234", "--janus", "http://127.0.0.1:8088/janus"];
        let cli = Cli::try_parse_from(janus).unwrap();
        let Command::Bot(args) = cli.command else { panic!("not bot") };
        assert_eq!(args.janus.as_deref(), Some("http://127.0.0.1:8088/janus"));
        assert!(Cli::try_parse_from(["tessera", "bot", "--room", "1", "--janus", "u", "--subscribers", "2"]).is_err());
        let zero_rate =
            ["tessera", "bot", "--room", "r", "--api-key", "k", "--subscribers", "2", "--ramp-per-second", "0"];
        assert!(Cli::try_parse_from(zero_rate).is_err());
    }
}
