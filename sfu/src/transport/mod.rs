//! The SFU's own I/O around `rtc`'s sans-IO peer connections.
//!
//! `webrtc` 0.21 gives every peer connection its own event loop, and a forwarded packet costs
//! one turn of each subscriber's loop (see bench/sfu.md). Here all connections share one UDP
//! port per configured address (and one ICE-TCP listener), read by one forwarding thread per
//! core, each with its own socket on the port (`shard.rs`). A datagram is routed to its
//! connection by its path, or, for the first connectivity check on a path, by the username
//! fragment it names; the connection's `rtc` peer connection handles it, and what it produces
//! is acted on in the same call: datagrams sent, events and media handed to the connection's
//! [`ConnectionHandler`]. A publisher's packet is therefore forwarded to every subscriber
//! (written into each subscriber's peer connection and sent, or, for subscribers another
//! thread owns, handed to that thread) before the thread reads the next datagram. Each
//! connection has a timer task for its peer connection's timeouts (ICE checks and consent,
//! DTLS retransmits, RTCP reports).
//!
//! - this file: the [`Transport`] (binding its sockets, starting its threads and tasks, its
//!   clock);
//! - `shard.rs`: the forwarding threads, their sockets, route caches and inboxes;
//! - `routes.rs`: the way in, from a datagram to its connection;
//! - `send.rs`: the way out, UDP batches (`batch.rs`: `sendmmsg`) and ICE-TCP queues;
//! - `tcp.rs`: ICE-TCP streams (`framing.rs`: RFC 4571);
//! - `stun.rs`: the username fragment a connectivity check names;
//! - `connection.rs`: one peer connection on the transport.
//!
//! In tests (`crate::harness`), a `memory::Wire` stands in for the sockets and the timer
//! tasks: the transport then binds nothing, keeps what it sends for the test, and its
//! connections' peer connections run on the wire's clock. The production build has none of it
//! (the wire and each branch on it are compiled only for the crate's tests and the
//! `test-harness` feature).

mod batch;
mod connection;
pub(crate) mod framing;
#[cfg(any(test, feature = "test-harness"))]
pub(crate) mod memory;
mod routes;
mod send;
mod shard;
mod stun;
mod tcp;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

pub(crate) use connection::{Connection, ConnectionHandler, TrackOpen};
use routes::Routes;

use crate::config::IceConfig;
use crate::delay::ForwardDelay;
use crate::error::{Error, Result};
pub(crate) use crate::sync::lock;

/// The sockets all of one SFU's peer connections share.
///
/// Lock order: `routes`, `tasks` and `threads` are leaves, never held together; `routes` is taken under
/// a connection's `pc` when an ICE-TCP datagram is sent (see [`Connection`]). A shard's inbox
/// is a leaf too (`shard.rs`).
pub(crate) struct Transport {
    /// The local UDP addresses, one per configured address (all shards' sockets on it share
    /// its port).
    addrs: Vec<SocketAddr>,
    /// The forwarding threads, each with a socket on every address (none in tests on the
    /// in-memory wire).
    shards: Vec<Arc<shard::Shard>>,
    /// The shards' threads, ended when the transport is dropped.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    tcp: Vec<SocketAddr>,
    routes: Mutex<Routes>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Datagrams that could not be sent (a full socket buffer or TCP queue).
    dropped: AtomicU64,
    /// Times each forwarded copy as it leaves the socket (see `delay.rs`).
    delay: Option<Arc<ForwardDelay>>,
    /// In tests, the in-memory network that stands in for the sockets (see `memory.rs`).
    /// Compiled out of the production build.
    #[cfg(any(test, feature = "test-harness"))]
    wire: Option<Arc<memory::Wire>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        self.end_threads();
    }
}

/// Forwarding threads at most, whatever the configuration or the core count says.
pub const MAX_FORWARDING_THREADS: usize = 64;

/// Binds a socket on `ip`, in `range` when one is configured.
fn bind_in<T>(
    ip: std::net::IpAddr,
    range: Option<(u16, u16)>,
    bind: impl Fn(SocketAddr) -> std::io::Result<T>,
) -> Result<T> {
    let ports: Vec<u16> = match range {
        Some((lo, hi)) => (lo..=hi).collect(),
        None => vec![0],
    };
    let mut last = None;
    for p in ports {
        match bind(SocketAddr::new(ip, p)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    let source = last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no port in the range"));
    Err(Error::Bind { ip, range, source })
}

impl Transport {
    /// Binds the UDP port (and, with ICE-TCP, one TCP listener) of each configured address
    /// and starts reading them: `cfg.threads` forwarding threads (one per core by default),
    /// each with its own socket on every port. `delay` times the forwarded copies leaving.
    pub(crate) fn bind(cfg: &IceConfig, delay: Option<Arc<ForwardDelay>>) -> Result<Arc<Transport>> {
        let threads = cfg.forwarding_threads();
        // by_shard[shard][address]
        let mut by_shard: Vec<Vec<std::net::UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        for &ip in &cfg.ice_ips() {
            let group = shard::bind_group(ip, cfg.udp_port_range, threads)?;
            addrs.push(group[0].local_addr().map_err(Error::io("cannot read the UDP socket's address"))?);
            for (i, s) in group.into_iter().enumerate() {
                by_shard[i].push(s);
            }
        }
        let shards = shard::shards(by_shard)?;
        let mut listeners = Vec::new();
        if cfg.tcp {
            for &ip in &cfg.ice_ips() {
                let l = bind_in(ip, cfg.tcp_port_range, std::net::TcpListener::bind)?;
                l.set_nonblocking(true).map_err(Error::io("cannot make the ICE-TCP listener non-blocking"))?;
                let l = tokio::net::TcpListener::from_std(l)
                    .map_err(Error::io("cannot register the ICE-TCP listener with tokio"))?;
                listeners.push(l);
            }
        }
        let tcp = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let t = Arc::new(Transport {
            addrs,
            shards,
            threads: Mutex::new(Vec::new()),
            tcp,
            routes: Mutex::new(Routes::default()),
            tasks: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            delay,
            #[cfg(any(test, feature = "test-harness"))]
            wire: None,
        });
        let runtime = tokio::runtime::Handle::current();
        for s in &t.shards {
            let thread = shard::start(Arc::downgrade(&t), Arc::clone(s), runtime.clone())?;
            lock(&t.threads).push(thread);
        }
        let mut tasks = Vec::new();
        for l in listeners {
            tasks.push(tokio::spawn(tcp::accept_loop(Arc::downgrade(&t), l)));
        }
        *lock(&t.tasks) = tasks;
        tracing::info!(udp = ?t.addrs, tcp = ?t.tcp, forwarding_threads = threads, "ICE sockets bound");
        Ok(t)
    }

    /// The local UDP addresses (host candidates).
    pub(crate) fn udp_addrs(&self) -> Vec<SocketAddr> {
        #[cfg(any(test, feature = "test-harness"))]
        if let Some(w) = &self.wire {
            return vec![w.addr()];
        }
        self.addrs.clone()
    }

    /// The time the peer connections are driven with: the wall clock, or the test network's
    /// own clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        #[cfg(any(test, feature = "test-harness"))]
        if let Some(w) = &self.wire {
            return w.now();
        }
        Instant::now()
    }

    /// The local ICE-TCP listener addresses (passive host candidates).
    pub(crate) fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Datagrams that could not be sent so far.
    pub(crate) fn send_drops(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl IceConfig {
    /// Forwarding threads: as configured, else one per core.
    fn forwarding_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, MAX_FORWARDING_THREADS)
    }

    /// The addresses to listen on (at least loopback).
    fn ice_ips(&self) -> Vec<std::net::IpAddr> {
        if self.ips.is_empty() { vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)] } else { self.ips.clone() }
    }
}
