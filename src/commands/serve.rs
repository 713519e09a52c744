//! `tessera serve`: resolve the configuration, then run the HTTP server until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::api_key::ApiKey;
use crate::cli::ServeArgs;
use crate::cluster::ClusterNode;
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
        Err(err) => {
            // Each error's message carries its causes.
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Why the server could not start or stopped: the error of the step that failed, with its
/// causes (`source()`), or a message.
type ServeError = Box<dyn std::error::Error + Send + Sync>;

async fn serve(mut config: ServeConfig) -> Result<(), ServeError> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "tessera starting");
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|err| format!("cannot create data directory {}: {err}", config.data_dir.display()))?;
    tracing::info!(data_dir = %config.data_dir.display(), "data directory ready");

    // A missing element would only show when the first participant joins a room.
    tessera_compositor::program::init()?;
    let missing = tessera_compositor::program::missing_elements();
    if !missing.is_empty() {
        let list: Vec<String> =
            missing.iter().map(|(element, package)| format!("{element} (Debian: {package})")).collect();
        return Err(format!("GStreamer elements missing: {}", list.join(", ")).into());
    }

    if let Some(ca) = &config.tls_ca_file {
        tessera_compositor::destination::trust_extra_ca_file(ca)?;
        tracing::info!(file = %ca.display(), "trusting extra CA certificates for rtmps:// destinations");
    }
    let recordings = RecordingStore::new(&config.data_dir, config.storage.clone())?
        .with_download_url_ttl(config.download_url_ttl)
        .with_tail_objects(config.cluster.is_some());
    match &config.storage.s3_bucket {
        Some(bucket) => tracing::info!(%bucket, prefix = %config.storage.s3_prefix, "recordings go to S3"),
        None => tracing::info!(dir = %config.data_dir.join("recordings").display(), "recordings are written locally"),
    }

    let node_id = match config.cluster.as_ref().and_then(|c| c.node_id.clone()) {
        Some(id) => id,
        None => tessera_cluster::node_id::load_or_create(&config.data_dir).map_err(|err| err.to_string())?,
    };
    // Cluster mode: joining needs the runtime; the secrets all nodes share come from Redis.
    let cluster = match &config.cluster {
        Some(settings) => {
            let node = ClusterNode::join(settings, node_id.clone(), config.program_budget)?;
            tracing::info!(node = %node_id, url = %settings.public_url, "cluster mode: joining the cluster on redis");
            let host = settings.public_url.split("://").nth(1).unwrap_or_default();
            if host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]") {
                tracing::warn!(
                    url = %settings.public_url,
                    "the public URL is a loopback address: only nodes on this machine can reach this one (set --public-url)"
                );
            }
            Some(node)
        }
        None => None,
    };
    let api_key = match (config.api_key.take(), &cluster) {
        (Some(key), _) => {
            if key.len() < 16 {
                tracing::warn!("the configured API key is shorter than 16 characters");
            }
            key
        }
        (None, Some(node)) => {
            let key = node.shared_api_key().await?;
            show_development_key(&key, "shared by the cluster's nodes");
            key
        }
        (None, None) => development_key()?,
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
    hub.set_program_budget(config.program_budget);
    let sfu = tessera_sfu::Sfu::new(sfu_config(&config), Some(Arc::new(hub.clone())));
    sfu.set_room_observer(hub.room_observer());
    // WHEP viewers watch the room's program, published into the room on demand.
    sfu.set_whep_source(Arc::new(crate::media::whep::ProgramWhepSource::new(hub.clone(), sfu.clone())));
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
    let state = AppState::new(api_key, config.data_dir).with_media(media.clone()).with_node_id(node_id);
    let state = match &cluster {
        Some(node) => {
            // The cluster's keys first: the node serves (and says it does) once it can check
            // tokens and forwarded requests.
            let tokens = node.shared_keys().await?;
            media.recordings.share_with(node.records().clone());
            media.streams.share_with(node.records().clone());
            media.hls.share_with(node.records().clone());
            // WHEP viewers are served here, the program relayed from the room's home.
            let local = crate::media::whep::ProgramWhepSource::new(media.hub.clone(), media.sfu.clone());
            let whep = crate::cluster::whep::ClusterWhepSource::new(
                node.clone(),
                media.sfu.clone(),
                local,
                state.api_key().expose(),
            );
            media.sfu.set_whep_source(Arc::new(whep));
            node.run(media.clone());
            state.with_cluster(node.clone(), tokens)
        }
        None => state,
    };
    Ok(run_until_stopped(listener, state, media, signals, config.shutdown_grace, cluster).await?)
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
    cluster: Option<ClusterNode>,
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
    // Alone, the node stops taking requests at once. In a cluster it drains: no new room is
    // placed here, but requests for the rooms it still hosts (a stop, a participant leaving)
    // are served until they are finished; other nodes take the new ones.
    let mut closing = Some(closing);
    match &cluster {
        Some(node) => node.drain(&media).await,
        None => {
            let _ = closing.take().map(|c| c.send(()));
        }
    }
    let deadline = std::time::Instant::now() + grace;
    // WHEP viewers end first: the programs they kept alive can then finish with the rest.
    media.sfu.close_whep_viewers();
    let webhooks = media.hub.webhooks().clone();
    let media_left = media.clone();
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
    // The final records reach the cluster and the node says it has left before the HTTP
    // server closes: nobody is forwarded to a node that is gone.
    if let Some(node) = &cluster {
        node.leave(&media_left, tokio::time::Instant::from_std(deadline)).await;
    }
    let _ = closing.take().map(|c| c.send(()));
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
    ice.threads = config.forwarding_threads;
    tessera_sfu::SfuConfig {
        ice,
        ice_servers,
        max_participants: config.max_participants,
        forward_delay_sample: config.forward_delay_sample,
        ..Default::default()
    }
}

/// Generates a key and shows it once on stdout (not in the logs, which may be shipped elsewhere).
fn development_key() -> Result<ApiKey, String> {
    let key = ApiKey::generate().map_err(|err| format!("cannot generate an API key: {err}"))?;
    show_development_key(&key, "generated at startup, changes on every start");
    Ok(key)
}

fn show_development_key(key: &ApiKey, origin: &str) {
    tracing::warn!(
        "no API key configured (--api-key / TESSERA_API_KEY); using a generated development key, printed on stdout"
    );
    let mut stdout = std::io::stdout().lock();
    // Printing is best effort: a closed stdout must not stop the server.
    let _ = writeln!(stdout, "development API key: {} ({origin}; set TESSERA_API_KEY for production)", key.expose());
    let _ = stdout.flush();
}
