//! `tessera serve`: resolve the configuration, then run the HTTP server until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::api_key::ApiKey;
use crate::cli::ServeArgs;
use crate::config::ServeConfig;
use crate::logging;
use crate::media::ProgramHub;
use crate::recordings::store::RecordingStore;
use crate::server::Media;
use crate::server::{self, AppState};
use crate::webhooks::Webhooks;
use std::sync::Arc;

/// Exit code for configuration errors (like clap's usage errors).
const EXIT_CONFIG: u8 = 2;

pub fn run(args: ServeArgs) -> ExitCode {
    let config = match ServeConfig::resolve(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tessera serve: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(serve(config));
    // Blocking work still running (a recovery that waits on an unreachable store) must not
    // hold the exit: what it left is finished at the next start.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut config: ServeConfig) -> Result<(), String> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "tessera starting");
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|err| format!("cannot create data directory {}: {err}", config.data_dir.display()))?;
    tracing::info!(data_dir = %config.data_dir.display(), "data directory ready");

    // A missing element would only show when the first participant joins a room.
    tessera_compositor::program::init().map_err(|err| err.to_string())?;
    let missing = tessera_compositor::program::missing_elements();
    if !missing.is_empty() {
        let list: Vec<String> =
            missing.iter().map(|(element, package)| format!("{element} (Debian: {package})")).collect();
        return Err(format!("GStreamer elements missing: {}", list.join(", ")));
    }

    if let Some(ca) = &config.tls_ca_file {
        tessera_compositor::destination::trust_extra_ca_file(ca).map_err(|err| err.to_string())?;
        tracing::info!(file = %ca.display(), "trusting extra CA certificates for rtmps:// destinations");
    }
    let recordings = RecordingStore::new(&config.data_dir, config.storage.clone())
        .map_err(|err| err.to_string())?
        .with_download_url_ttl(config.download_url_ttl);
    match &config.storage.s3_bucket {
        Some(bucket) => tracing::info!(%bucket, prefix = %config.storage.s3_prefix, "recordings go to S3"),
        None => tracing::info!(dir = %config.data_dir.join("recordings").display(), "recordings are written locally"),
    }

    let api_key = match config.api_key.take() {
        Some(key) => {
            if key.len() < 16 {
                tracing::warn!("the configured API key is shorter than 16 characters");
            }
            key
        }
        None => development_key()?,
    };

    let listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", config.http_addr))?;
    let addr = listener.local_addr().map_err(|err| format!("cannot read the listening address: {err}"))?;
    let signals = server::shutdown::Signals::install()
        .map_err(|err| format!("cannot install the SIGINT/SIGTERM handlers: {err}"))?;
    tracing::info!(%addr, "listening on http://{addr}");

    let webhooks = match &config.webhook_url {
        Some(url) => {
            let w = Webhooks::start(url.clone(), api_key.expose().as_bytes().to_vec())?;
            tracing::info!("webhooks on");
            w
        }
        None => Webhooks::default(),
    };
    let hub = ProgramHub::with_webhooks(webhooks);
    let sfu = tessera_sfu::Sfu::new(sfu_config(&config), Some(Arc::new(hub.clone())));
    sfu.set_room_observer(hub.room_observer());
    let ice = sfu.bind_transport().map_err(|err| format!("cannot open the WebRTC ports: {err}"))?;
    tracing::info!(ips = ?config.rtc_ips, udp = ?ice.udp, tcp = ?ice.tcp, "WebRTC: advertising these addresses");
    if let Some(turn) = &config.turn {
        // The URLs only: the secret and the credentials made from it are never logged.
        tracing::info!(urls = ?turn.urls, ttl_s = turn.ttl.as_secs(), "TURN: clients get time-limited credentials");
    }
    let media = Media::new(sfu, hub, recordings);
    // Recordings a crashed process left behind are completed in the background: the server
    // is usable at once (they show as `stopping` meanwhile), and a store that is down only
    // delays them to the next start.
    let recovering = media.recordings.clone();
    tokio::task::spawn_blocking(move || recovering.recover());
    let state = AppState::new(api_key, config.data_dir).with_media(media.clone());
    run_until_stopped(listener, state, media, signals, config.shutdown_grace).await
}

/// Serves until SIGTERM or SIGINT, then stops gracefully: no new requests, every running
/// recording and stream ended properly (the last fragment written and uploaded, the object
/// completed) within `grace`, then back to the caller to exit. A second signal cuts the
/// finishing short; what it leaves is for the next start's recovery.
async fn run_until_stopped(
    listener: TcpListener,
    state: AppState,
    media: Media,
    mut signals: server::shutdown::Signals,
    grace: std::time::Duration,
) -> Result<(), String> {
    let (closing, closed) = tokio::sync::oneshot::channel::<()>();
    let mut http = tokio::spawn(server::serve(listener, state, async move {
        let _ = closed.await;
    }));
    let signal = tokio::select! {
        name = signals.next() => name,
        served = &mut http => {
            return match served {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(format!("server error: {err}")),
                Err(err) => Err(format!("server task failed: {err}")),
            };
        }
    };
    tracing::info!(grace_s = grace.as_secs_f64(), "{signal} received: finishing recordings and streams, then exiting");
    let _ = closing.send(());
    let deadline = std::time::Instant::now() + grace;
    let webhooks = media.hub.webhooks().clone();
    let mut finishing = tokio::task::spawn_blocking(move || media.finish(deadline));
    tokio::select! {
        finished = tokio::time::timeout(grace, &mut finishing) => match finished {
            Ok(Ok(summary)) => tracing::info!(%summary, "finished"),
            Ok(Err(err)) => tracing::error!(%err, "finishing recordings and streams failed"),
            Err(_) => tracing::warn!(grace_s = grace.as_secs_f64(), "grace period over; the next start recovers what is unfinished"),
        },
        name = signals.next() => {
            tracing::warn!("{name} received again: exiting now; the next start recovers what is unfinished");
            return Ok(());
        }
    }
    // The events of what just ended reach the application too, within the same grace.
    let undelivered = webhooks.drained(deadline).await;
    if undelivered > 0 {
        tracing::warn!(undelivered, "webhooks not delivered before the grace period ended");
    }
    // In-flight requests get a moment; long-lived connections (WebSockets) are not waited for.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), http).await;
    Ok(())
}

/// ICE on the configured addresses: the ones this host has are bound; the others are
/// advertised in their place (a cloud VM's public address in front of its private one).
fn sfu_config(config: &ServeConfig) -> tessera_sfu::SfuConfig {
    let (local, public): (Vec<std::net::IpAddr>, Vec<std::net::IpAddr>) =
        config.rtc_ips.iter().partition(|ip| std::net::UdpSocket::bind((**ip, 0)).is_ok());
    let mut ice = tessera_sfu::IceConfig::default();
    if !local.is_empty() {
        ice.ips = local;
    } else if !public.is_empty() {
        ice.ips = vec![std::net::Ipv4Addr::UNSPECIFIED.into()];
    }
    ice.public_ips = public.iter().map(|ip| ip.to_string()).collect();
    ice.udp_port_range = config.rtc_udp_port.map(|p| (p, p));
    ice.tcp_port_range = config.rtc_tcp_port.map(|p| (p, p));
    // TURN: clients get time-limited credentials with their join answer (see turn.rs).
    let ice_servers = config.turn.clone().map(|t| Arc::new(t) as Arc<dyn tessera_sfu::IceServerProvider>);
    tessera_sfu::SfuConfig { ice, ice_servers, ..Default::default() }
}

/// Generates a key and shows it once on stdout (not in the logs, which may be shipped elsewhere).
fn development_key() -> Result<ApiKey, String> {
    let key = ApiKey::generate().map_err(|err| format!("cannot generate an API key: {err}"))?;
    tracing::warn!(
        "no API key configured (--api-key / TESSERA_API_KEY); using a generated development key, printed on stdout"
    );
    let mut stdout = std::io::stdout().lock();
    // Printing is best effort: a closed stdout must not stop the server.
    let _ = writeln!(
        stdout,
        "development API key: {} (generated at startup, changes on every start; set TESSERA_API_KEY for production)",
        key.expose()
    );
    let _ = stdout.flush();
    Ok(key)
}
