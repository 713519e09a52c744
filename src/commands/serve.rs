//! `tessera serve`: resolve the configuration, then run the HTTP server until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::api_key::ApiKey;
use crate::cli::ServeArgs;
use crate::config::ServeConfig;
use crate::logging;
use crate::media::ProgramHub;
use crate::webhooks::Webhooks;
use crate::recording::RecordingStore;
use crate::server::Media;
use std::sync::Arc;
use crate::server::{self, AppState};

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

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
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
    std::fs::create_dir_all(&config.data_dir).map_err(|err| {
        format!(
            "cannot create data directory {}: {err}",
            config.data_dir.display()
        )
    })?;
    tracing::info!(data_dir = %config.data_dir.display(), "data directory ready");

    // A missing element would only show when the first participant joins a room.
    tessera_compositor::program::init().map_err(|err| err.to_string())?;
    let missing = tessera_compositor::program::missing_elements();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|(element, package)| format!("{element} (Debian: {package})")).collect();
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
    let addr = listener
        .local_addr()
        .map_err(|err| format!("cannot read the listening address: {err}"))?;
    let shutdown = server::shutdown::signal()
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
    let ice = sfu.bind_transport().map_err(|err| format!("cannot open the WebRTC ports: {err}"))?;
    tracing::info!(ips = ?config.rtc_ips, udp = ?ice.udp, tcp = ?ice.tcp, "WebRTC: advertising these addresses");
    let media = Media::new(sfu, hub, recordings);
    // Recordings a crashed process left behind are completed in the background: the server
    // is usable at once (they show as `stopping` meanwhile), and a store that is down only
    // delays them to the next start.
    let recovering = media.recordings.clone();
    tokio::task::spawn_blocking(move || recovering.recover());
    let state = AppState::new(api_key, config.data_dir).with_media(media);
    server::serve(listener, state, shutdown)
        .await
        .map_err(|err| format!("server error: {err}"))
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
    tessera_sfu::SfuConfig { ice, ..Default::default() }
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
