//! Resolves on SIGINT or SIGTERM, to start a graceful shutdown.

use std::future::Future;
use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that resolves on either.
/// Installing before the server says it is listening matters: a signal that arrives in
/// between would otherwise kill the process with its default action instead of stopping it.
pub fn signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}
