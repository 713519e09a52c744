//! `tessera bot`: a synthetic participant. It mints a token with the API key (or takes one),
//! joins a room over the WebSocket signalling protocol (`sfu/PROTOCOL.md`), publishes a
//! GStreamer-made camera and microphone over WebRTC as a browser does, answers the server's
//! subscribe offers (receiving and counting the others' media), and leaves when told to stop.
//! With `--subscribers N` it is a load generator instead: N receive-only subscribers in one
//! process, each counted and reported (`load/`). With `--janus URL` it joins a Janus VideoRoom
//! with the same client instead (`janus/`), for the side-by-side benchmark.

mod janus;
pub mod load;
pub mod media;
pub mod pacer;
pub mod packet_log;
mod peer;
mod pumps;
mod session;
mod signalling;
mod token;

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use crate::cli::BotArgs;
use media::{MediaOptions, SyntheticMedia};

/// A cause of any kind (HTTP, WebSocket, JSON), kept as the error's `source()`.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the bot stopped. A variant with a cause keeps it (`source()`) and shows it in its
/// message; a plain string is for what has no cause (a refusal, a timeout, a closed socket).
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("{0}")]
    Config(String),
    /// No TLS client (for an `https://` token request or `wss://` signalling).
    #[error("TLS: {0}")]
    Tls(#[from] crate::http_client::TlsError),
    #[error("cannot get a participant token: {0}")]
    Token(String),
    /// The token request failed (`what`: the server, or the step).
    #[error("cannot get a participant token: {what}: {source}")]
    TokenRequest {
        what: String,
        #[source]
        source: Cause,
    },
    #[error("signalling: {0}")]
    Signalling(String),
    /// The signalling WebSocket failed (`what`: the server, or the step).
    #[error("signalling: {what}: {source}")]
    SignallingFailed {
        what: String,
        #[source]
        source: Cause,
    },
    #[error("the server refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("WebRTC: {0}")]
    Rtc(#[from] webrtc::error::Error),
    /// A peer connection could not be built.
    #[error("WebRTC: {0}")]
    Peer(#[from] tessera_sfu::Error),
    #[error("media: {0}")]
    Media(String),
    /// The load generator could not finish its run (`--subscribers`).
    #[error("{0}")]
    Load(String),
    /// GStreamer failed (`what`: the step).
    #[error("media: {what}: {source}")]
    Gst {
        what: &'static str,
        #[source]
        source: gst::glib::Error,
    },
}

impl BotError {
    /// For `map_err`: the token request failed at `what`.
    fn token<E: Into<Cause>>(what: impl Into<String>) -> impl FnOnce(E) -> Self {
        let what = what.into();
        move |e| BotError::TokenRequest { what, source: e.into() }
    }

    /// For `map_err`: signalling failed at `what`.
    fn signalling<E: Into<Cause>>(what: impl Into<String>) -> impl FnOnce(E) -> Self {
        let what = what.into();
        move |e| BotError::SignallingFailed { what, source: e.into() }
    }
}

/// What a run did, printed when the bot leaves.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BotReport {
    pub participant_id: String,
    pub video_packets_sent: u64,
    pub audio_packets_sent: u64,
    pub packets_received: u64,
    pub keyframe_requests: u64,
}

/// The server: where to mint tokens and where to signal.
#[derive(Debug, Clone)]
pub struct ServerUrl {
    /// `http://host:port` or `https://host:port`, without a trailing slash.
    pub http: String,
    /// `ws://host:port/v1/rtc` or `wss://…`.
    pub ws: String,
    pub host: String,
    pub port: u16,
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<Self, BotError> {
        let bad = |why: &str| BotError::Config(format!("--url {url}: {why}"));
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let (ws_scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("ws", 80),
            Some("https") => ("wss", 443),
            _ => return Err(bad("use http:// or https://")),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(default_port);
        let base = uri.path().trim_end_matches('/');
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let scheme = uri.scheme_str().unwrap_or("http");
        Ok(ServerUrl {
            http: format!("{scheme}://{authority}{base}"),
            ws: format!("{ws_scheme}://{authority}{base}/v1/rtc"),
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
        })
    }
}

/// Prints one JSON line on stdout (the bot's machine-readable progress).
fn announce(event: &str, fields: serde_json::Value) {
    let mut line = json!({ "event": event });
    if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object()) {
        line.extend(fields.clone());
    }
    println!("{line}");
}

/// Runs the bot until `stop` resolves, `duration` elapses or the server ends the session.
pub async fn run(args: BotArgs, stop: impl Future<Output = ()>) -> Result<BotReport, BotError> {
    let log = args.packet_log.as_deref().map(packet_log::PacketLog::create).transpose()?;
    let counters = std::sync::Arc::new(pumps::Counters { log, ..Default::default() });
    let opts = MediaOptions {
        color: args.color,
        pattern: args.pattern.clone(),
        width: args.size.0,
        height: args.size.1,
        fps: args.fps,
        codec: args.codec,
        bitrate_kbps: args.bitrate_kbps,
        video: !args.no_video,
        tone: if args.silent { None } else { Some(args.tone.unwrap_or(440.0)) },
        pace_factor: args.pace_factor,
        sync_marks: args.sync_marks || args.wall_clock_marks,
        wall_clock_marks: args.wall_clock_marks,
    };
    let deadline = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    let stop = async {
        tokio::select! {
            _ = stop => {}
            _ = deadline => {}
        }
    };
    let report = match &args.janus {
        Some(url) => janus::run(url, &args, &opts, std::sync::Arc::clone(&counters), stop).await,
        None => run_tessera(&args, &opts, &counters, stop).await,
    };
    if let Some(log) = &counters.log {
        log.flush();
    }
    let report = report?;
    announce("left", serde_json::to_value(&report).unwrap_or_default());
    Ok(report)
}

/// [`run`] in a Tessera room.
async fn run_tessera(
    args: &BotArgs,
    opts: &MediaOptions,
    counters: &std::sync::Arc<pumps::Counters>,
    stop: impl Future<Output = ()>,
) -> Result<BotReport, BotError> {
    let server = ServerUrl::parse(&args.url)?;
    let token = match (&args.token, &args.api_key) {
        (Some(token), _) => token.clone(),
        (None, Some(key)) => token::mint_token(&server, key, args).await?,
        (None, None) => return Err(BotError::Config("give --api-key (or TESSERA_API_KEY) or --token".into())),
    };
    tokio::pin!(stop);
    // One session per node: a draining node asks its participants (`reconnect`) to join again
    // through another, with the same token; the counts go on across them.
    let mut server = server;
    let report = loop {
        let media = if args.no_publish { None } else { Some(SyntheticMedia::start(opts)?) };
        let session = session::Session::new(
            server.clone(),
            token.clone(),
            args.room.clone(),
            args.name.clone(),
            opts.clone(),
            args.relay_only,
            std::sync::Arc::clone(counters),
        );
        match session.run(media, stop.as_mut()).await? {
            (report, session::SessionEnd::Stopped) => break report,
            (_, session::SessionEnd::Reconnect(url)) => {
                let next = ServerUrl::parse(&url)
                    .map_err(|_| BotError::Signalling(format!("the server asked to reconnect to a bad URL: {url}")))?;
                tracing::info!(url = %next.http, "the node is going away: joining again through another node");
                announce("reconnecting", json!({ "url": next.http }));
                server = next;
            }
        }
    };
    Ok(report)
}

/// How long to wait for our own ICE gathering before sending an offer or answer anyway.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the server has to answer the token request, or to accept the WebSocket.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.http, "http://127.0.0.1:8080");
        assert_eq!(u.ws, "ws://127.0.0.1:8080/v1/rtc");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        let u = ServerUrl::parse("https://media.example.com/tessera/").unwrap();
        assert_eq!(u.http, "https://media.example.com/tessera");
        assert_eq!(u.ws, "wss://media.example.com/tessera/v1/rtc");
        assert_eq!(u.port, 443);
        let u = ServerUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.host, "::1");
        assert!(ServerUrl::parse("ftp://x").is_err());
        assert!(ServerUrl::parse("127.0.0.1:8080").is_err());
    }
}
