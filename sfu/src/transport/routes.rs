//! The way in: which connection a datagram is for. A path (local address, peer address,
//! ICE-TCP or not) is learnt from the first connectivity check on it, which names the
//! connection's ICE username fragment; after that the path alone decides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::BytesMut;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::mpsc;

use super::{Connection, Transport, batch, lock, stun};

/// Paths remembered per connection. A path is learnt from a connectivity check naming the
/// connection's ufrag before its peer connection has checked the check's integrity, so whoever
/// saw the ufrag could otherwise make the table grow; a peer uses a handful (one per candidate
/// pair).
const MAX_PATHS: usize = 32;

/// A transport path: local address, peer address, and whether it is ICE-TCP.
pub(super) type Path = (SocketAddr, SocketAddr, bool);

/// The routing tables of one transport.
#[derive(Default)]
pub(super) struct Routes {
    /// Connections by their local ICE username fragment.
    pub(super) by_ufrag: HashMap<String, Weak<Connection>>,
    /// Connections by the paths their peers have used.
    pub(super) by_path: HashMap<Path, Weak<Connection>>,
    /// The writer of each accepted ICE-TCP stream, by (local, peer) address.
    pub(super) tcp_out: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>>,
}

impl Transport {
    /// Routes connectivity checks naming `ufrag` to `conn`.
    pub(super) fn register(&self, ufrag: &str, conn: &Arc<Connection>) {
        lock(&self.routes).by_ufrag.insert(ufrag.to_owned(), Arc::downgrade(conn));
    }

    /// Forgets a closed connection's routes.
    pub(super) fn unregister(&self, conn: &Connection) {
        let mut r = lock(&self.routes);
        let gone = |w: &Weak<Connection>| std::ptr::eq(w.as_ptr(), conn) || w.strong_count() == 0;
        r.by_ufrag.retain(|_, w| !gone(w));
        r.by_path.retain(|_, w| !gone(w));
    }

    /// The connection a datagram on `path` is for: the path's, or, for a connectivity check
    /// on a new path, the one whose username fragment it names.
    pub(super) fn route(&self, path: Path, data: &[u8]) -> Option<Arc<Connection>> {
        let mut r = lock(&self.routes);
        if let Some(c) = r.by_path.get(&path).and_then(Weak::upgrade) {
            return Some(c);
        }
        let ufrag = stun::local_ufrag(data)?;
        let w = r.by_ufrag.get(ufrag)?.clone();
        let c = w.upgrade()?;
        // Past the limit the check still reaches the connection; its path is just not remembered.
        if c.paths.fetch_add(1, Ordering::Relaxed) < MAX_PATHS {
            r.by_path.insert(path, w);
        }
        Some(c)
    }

    /// Whether the shared table has learnt `path`.
    pub(super) fn knows_path(&self, path: &Path) -> bool {
        lock(&self.routes).by_path.contains_key(path)
    }

    /// Hands a datagram read at `now` to its connection; a datagram no connection claims is
    /// dropped. (A shard's thread routes through its own cache first, see `shard.rs`.)
    pub(crate) fn deliver(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        protocol: TransportProtocol,
        data: &[u8],
        now: Instant,
    ) {
        let tcp = protocol == TransportProtocol::TCP;
        let Some(conn) = self.route((local, peer, tcp), data) else {
            tracing::trace!(%local, %peer, len = data.len(), "datagram for no connection");
            return;
        };
        self.hand_to(&conn, local, peer, protocol, data, now);
    }

    /// Hands a routed datagram to `conn`.
    pub(super) fn hand_to(
        &self,
        conn: &Arc<Connection>,
        local: SocketAddr,
        peer: SocketAddr,
        protocol: TransportProtocol,
        data: &[u8],
        now: Instant,
    ) {
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext { local_addr: local, peer_addr: peer, transport_protocol: protocol, ecn: None },
            message: BytesMut::from(data),
        };
        // Everything the datagram causes (a publisher's packet: a copy for every subscriber)
        // leaves in one batch.
        self.turn(|| conn.handle_read(msg));
    }

    /// Runs `f`, collecting what it sends into one `sendmmsg` per socket and the copies it
    /// defers to other shards into one hand-over each (`batch.rs`).
    pub(super) fn turn<R>(&self, f: impl FnOnce() -> R) -> R {
        batch::collecting(f, |b| self.flush(b), |d| self.hand_over(d))
    }
}
