//! SIGINT and SIGTERM: the first starts a graceful stop, a second one cuts it short.

use tokio::signal::unix::{Signal, SignalKind, signal as unix_signal};

/// The process's SIGINT and SIGTERM handlers.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers now. Installing before the server says it is listening matters:
    /// a signal that arrives in between would otherwise kill the process with its default
    /// action instead of stopping it.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: unix_signal(SignalKind::interrupt())?,
            terminate: unix_signal(SignalKind::terminate())?,
        })
    }

    /// Resolves at the next SIGINT or SIGTERM, and names it.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Installs the handlers now (see [`Signals::install`]) and returns a future that resolves at
/// the first SIGINT or SIGTERM, for processes with nothing to finish (`tessera bot`).
pub fn signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut signals = Signals::install()?;
    Ok(async move {
        let name = signals.next().await;
        tracing::info!("{name} received, shutting down");
    })
}
