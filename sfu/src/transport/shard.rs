//! Forwarding on every core: the transport's shards.
//!
//! A shard is one forwarding thread with its own UDP socket on each configured address. With
//! more than one shard, the sockets of an address are bound to the same port with
//! `SO_REUSEPORT`, so users still open one port in their firewall; the kernel spreads the
//! datagrams over the sockets by their 4-tuple, so each peer's datagrams always reach the same
//! thread. Each shard thread reads its sockets and hands each datagram to its connection (a
//! route cache of its own: no process-wide lock per datagram), which forwards a publisher's
//! packet to every subscriber.
//!
//! Each connection is owned by one shard (the one with the fewest connections when it opens).
//! A forwarded copy for a subscriber owned by another shard is not written on the publisher's
//! thread: it is deferred (`batch.rs`), and at the end of the turn every shard's deferred
//! copies go into its inbox together, with one wake-up. So one publisher's fan-out is spread
//! over the cores: the encryption and sending of each copy (most of its cost) happen on the
//! thread that owns the subscriber, which also sends it from its own socket.
//!
//! Lock order: a shard's `inbox` is a leaf, taken alone (by the thread handing over, then by
//! the shard emptying it).

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::shared::TransportProtocol;

use super::routes::Path;
use super::{Connection, Transport, lock};
use crate::error::{Error, Result};

/// Largest datagram read (the peer connections' receive MTU is smaller).
const RECV_BUF: usize = 2048;
/// Datagrams read from one socket before the thread looks at its other sockets and its inbox.
const RECV_BURST: usize = 64;
/// How long a shard thread waits for a datagram before it checks that its transport lives.
const IDLE_WAIT_MS: libc::c_int = 250;
/// Copies waiting in a shard's inbox at most; beyond, copies are dropped (and counted) rather
/// than delaying the publisher's thread or growing without bound.
const INBOX_LIMIT: usize = 4096;
/// Paths a shard's route cache remembers before it forgets the dead ones.
const ROUTE_CACHE_LIMIT: usize = 4096;

thread_local! {
    /// The shard whose thread this is (`None` on every other thread).
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The shard whose forwarding thread is running this code, if any.
pub(super) fn current() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// A forwarded copy to write on the shard that owns its subscriber's connection.
pub(crate) struct Deferred {
    pub(super) conn: Arc<Connection>,
    pub(super) sender: RTCRtpSenderId,
    pub(super) pkt: rtp::Packet,
}

/// One forwarding thread's sockets, inbox and load.
pub(super) struct Shard {
    pub(super) index: usize,
    /// This shard's socket on each configured address (`Transport::addrs`, same order).
    pub(super) sockets: Vec<std::net::UdpSocket>,
    /// Copies other shards deferred to this one.
    inbox: Mutex<Vec<Deferred>>,
    /// An eventfd that wakes the thread for its inbox (and when the transport goes).
    wake: OwnedFd,
    /// A wake-up is pending: handing over more copies before the thread empties its inbox
    /// needs no other (one system call saved per turn while the thread is busy).
    woken: AtomicBool,
    /// The transport is being dropped: the thread returns at its next wake-up.
    stopped: AtomicBool,
    /// Connections this shard owns.
    pub(super) connections: AtomicUsize,
}

impl Shard {
    /// Wakes the shard's thread.
    pub(super) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd this shard owns. A full counter
        // (EAGAIN) means the thread has a wake-up pending anyway.
        unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }

    /// Queues copies for this shard's thread; returns how many were dropped (a full inbox).
    fn hand_over(&self, copies: impl Iterator<Item = Deferred>) -> usize {
        // Dropped after the lock is released: a copy may hold the last reference to its
        // connection, whose drop takes the transport's routes (the inbox stays a leaf).
        let mut overflow = Vec::new();
        {
            let mut inbox = lock(&self.inbox);
            for d in copies {
                if inbox.len() < INBOX_LIMIT {
                    inbox.push(d);
                } else {
                    overflow.push(d);
                }
            }
        }
        let dropped = overflow.len();
        drop(overflow);
        // Pushed before the flag is read: a thread that cleared it takes these copies, either
        // in the emptying it is about to do or after this wake-up.
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.wake();
        }
        dropped
    }
}

/// Binds `count` UDP sockets on `ip` (in `range` when one is configured), all on one port,
/// with `SO_REUSEPORT` when there are several.
///
/// The port is first found with an exclusive bind, which fails on a port anyone holds, also
/// another process's `SO_REUSEPORT` group; only then is the group bound on it. Without that,
/// two servers of one user configured with the same port would share it, each getting a
/// share of the other's datagrams.
pub(super) fn bind_group(
    ip: std::net::IpAddr,
    range: Option<(u16, u16)>,
    count: usize,
) -> Result<Vec<std::net::UdpSocket>> {
    let exclusive = super::bind_in(ip, range, |a| bind_one(a, false))?;
    if count <= 1 {
        return Ok(vec![exclusive]);
    }
    let addr = exclusive.local_addr().map_err(Error::io("cannot read the UDP socket's address"))?;
    drop(exclusive);
    (0..count)
        .map(|_| {
            bind_one(addr, true).map_err(|source| Error::Bind { ip, range: Some((addr.port(), addr.port())), source })
        })
        .collect()
}

/// One non-blocking UDP socket on `addr`; `shared`: on a port other sockets of ours share.
fn bind_one(addr: SocketAddr, shared: bool) -> std::io::Result<std::net::UdpSocket> {
    let s =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if shared {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Makes the shards: `sockets[shard][address]`.
pub(super) fn shards(sockets: Vec<Vec<std::net::UdpSocket>>) -> Result<Vec<Arc<Shard>>> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(index, sockets)| {
            // SAFETY: eventfd returns a new descriptor (or -1, checked) that nothing else owns.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(Error::io("cannot make a forwarding thread's eventfd")(std::io::Error::last_os_error()));
            }
            // SAFETY: `fd` is a valid descriptor owned by nobody else.
            let wake = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(Arc::new(Shard {
                index,
                sockets,
                inbox: Mutex::new(Vec::new()),
                wake,
                woken: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
            }))
        })
        .collect()
}

/// Starts a shard's thread; it runs in `runtime`'s context (connection handlers spawn tasks)
/// until the transport is gone.
pub(super) fn start(
    transport: Weak<Transport>,
    shard: Arc<Shard>,
    runtime: tokio::runtime::Handle,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sfu-forward-{}", shard.index))
        .spawn(move || {
            let _in_runtime = runtime.enter();
            CURRENT.with(|c| c.set(Some(shard.index)));
            run(&transport, &shard);
        })
        .map_err(Error::io("cannot start a forwarding thread"))
}

impl Transport {
    /// Ends the forwarding threads (the transport is being dropped): each wakes, sees it is
    /// stopped and returns, closing its sockets, so the port is free once this returns.
    /// A thread holds no lock between two turns, and a turn holds the transport, so no thread
    /// is in one now. An idle thread holds no reference, so the last one is dropped by a turn
    /// only when there was traffic; that thread is not waited for (it returns as its turn
    /// ends, and its socket closes then).
    pub(super) fn end_threads(&mut self) {
        for s in &self.shards {
            s.stopped.store(true, Ordering::Release);
            s.wake();
        }
        let me = std::thread::current().id();
        for t in std::mem::take(&mut *lock(&self.threads)) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// The paths this shard's thread has routed, to their connections.
#[derive(Default)]
struct RouteCache(HashMap<Path, Weak<Connection>>);

impl RouteCache {
    /// The cached connection of `path`, if it is still open.
    fn get(&self, path: &Path) -> Option<Arc<Connection>> {
        self.0.get(path).and_then(Weak::upgrade).filter(|c| !c.is_closed())
    }

    fn insert(&mut self, path: Path, conn: &Arc<Connection>) {
        if self.0.len() >= ROUTE_CACHE_LIMIT {
            self.prune();
            if self.0.len() >= ROUTE_CACHE_LIMIT {
                self.0.clear();
            }
        }
        self.0.insert(path, Arc::downgrade(conn));
    }

    /// Forgets the paths of connections that are closed or gone (a weak reference keeps a
    /// gone connection's memory until it is dropped).
    fn prune(&mut self) {
        self.0.retain(|_, w| w.upgrade().is_some_and(|c| !c.is_closed()));
    }
}

fn run(transport: &Weak<Transport>, shard: &Shard) {
    let mut fds: Vec<libc::pollfd> = shard
        .sockets
        .iter()
        .map(|s| s.as_raw_fd())
        .chain([shard.wake.as_raw_fd()])
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    let wake_at = fds.len() - 1;
    let mut routes = RouteCache::default();
    let mut buf = vec![0u8; RECV_BUF];
    let mut errors = 0u32;
    loop {
        // SAFETY: `fds` is a valid array of pollfd of this length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, IDLE_WAIT_MS) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::warn!(shard = shard.index, "forwarding thread cannot wait for its sockets: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        if shard.stopped.load(Ordering::Acquire) {
            return;
        }
        // Idle: the transport is only held while there is work, so that an idle thread never
        // holds the last reference (whose drop would then run here, not where it was dropped).
        if ready == 0 {
            if transport.strong_count() == 0 {
                return;
            }
            routes.prune();
            continue;
        }
        let Some(t) = transport.upgrade() else { return };
        if fds[wake_at].revents != 0 {
            let mut n = 0u64;
            // SAFETY: reads 8 bytes into a live u64 from the eventfd (resetting it).
            unsafe { libc::read(shard.wake.as_raw_fd(), &mut n as *mut u64 as *mut libc::c_void, 8) };
            // Cleared before the inbox is emptied: copies handed over from now on wake it again.
            shard.woken.store(false, Ordering::Release);
            t.write_inbox(shard);
        }
        for (i, sock) in shard.sockets.iter().enumerate() {
            if fds[i].revents == 0 {
                continue;
            }
            let local = t.addrs[i];
            for _ in 0..RECV_BURST {
                match sock.recv_from(&mut buf) {
                    Ok((n, peer)) => {
                        errors = 0;
                        t.deliver_on(&mut routes, local, peer, &buf[..n], Instant::now());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // ICMP errors from a peer that went away surface here; the socket is fine.
                    Err(e) => {
                        errors += 1;
                        tracing::debug!(%local, "UDP receive error: {e}");
                        if errors > 100 {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        break;
                    }
                }
            }
        }
    }
}

impl Transport {
    /// The shard a new connection is owned by: the one with the fewest.
    pub(super) fn place(&self) -> usize {
        let Some(s) = self.shards.iter().min_by_key(|s| s.connections.load(Ordering::Relaxed)) else { return 0 };
        s.connections.fetch_add(1, Ordering::Relaxed);
        s.index
    }

    /// A connection owned by `shard` is gone.
    pub(super) fn unplace(&self, shard: usize) {
        if let Some(s) = self.shards.get(shard) {
            s.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether a copy for a connection owned by `owner` is written by another thread: on a
    /// shard thread that is not its owner's.
    pub(super) fn defers_to(&self, owner: usize) -> bool {
        self.shards.len() > 1 && current().is_some_and(|c| c != owner)
    }

    /// Hands a turn's deferred copies to the shards that own their connections.
    pub(super) fn hand_over(&self, mut deferred: Vec<Deferred>) {
        deferred.sort_by_key(|d| d.conn.shard);
        let mut dropped = 0;
        let mut rest = deferred.into_iter().peekable();
        while let Some(first) = rest.next() {
            let owner = first.conn.shard;
            let mut run = vec![first];
            while let Some(d) = rest.next_if(|d| d.conn.shard == owner) {
                run.push(d);
            }
            match self.shards.get(owner) {
                Some(s) => dropped += s.hand_over(run.into_iter()),
                None => dropped += run.len(),
            }
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }

    /// Writes the copies other shards deferred to `shard` (on its thread).
    fn write_inbox(&self, shard: &Shard) {
        let copies = std::mem::take(&mut *lock(&shard.inbox));
        if copies.is_empty() {
            return;
        }
        self.turn(|| {
            for d in copies {
                d.conn.write_now(d.sender, d.pkt);
            }
        });
    }

    /// Hands a datagram a shard's thread read to its connection, routed by the thread's own
    /// cache first.
    fn deliver_on(&self, routes: &mut RouteCache, local: SocketAddr, peer: SocketAddr, data: &[u8], now: Instant) {
        let path = (local, peer, false);
        let conn = match routes.get(&path) {
            Some(c) => c,
            None => {
                let Some(c) = self.route(path, data) else {
                    tracing::trace!(%local, %peer, len = data.len(), "datagram for no connection");
                    return;
                };
                // Only a path the shared table keeps (it has checked the ufrag) is cached.
                if self.knows_path(&path) {
                    routes.insert(path, &c);
                }
                c
            }
        };
        self.hand_to(&conn, local, peer, TransportProtocol::UDP, data, now);
    }
}
