//! An in-memory network in place of the sockets, for tests (compiled only for the crate's own
//! tests and with the `test-harness` feature; see `crate::harness`).
//!
//! A transport on a [`Wire`] binds nothing and starts no task: what its connections send is
//! kept here for the test to carry to its clients, what the clients send comes in through
//! [`Transport::deliver`] as it would from a socket, and the connections' timeouts are handled
//! when the test says, at the time the test says: the wire's clock is the only clock the
//! connections' peer connections see (`Transport::now`), so seconds of a call take
//! milliseconds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use rtc::shared::TaggedBytesMut;

use super::{Connection, Routes, Transport, lock};
use crate::delay::ForwardDelay;

/// The SFU's end of the in-memory network: one host address, a clock, and what was sent.
///
/// Lock order: `clock`, `sent` and `connections` are leaves, each held for one statement;
/// `clock` and `sent` are taken under a connection's `pc` when it sends.
pub(crate) struct Wire {
    addr: SocketAddr,
    clock: Mutex<Instant>,
    sent: Mutex<Vec<TaggedBytesMut>>,
    /// Every connection opened on the wire, for its timeouts.
    connections: Mutex<Vec<Weak<Connection>>>,
}

impl Wire {
    /// A wire whose SFU end is `addr` (its only host candidate), its clock at `start`.
    pub(crate) fn new(addr: SocketAddr, start: Instant) -> Arc<Wire> {
        Arc::new(Wire {
            addr,
            clock: Mutex::new(start),
            sent: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
        })
    }

    /// The SFU's address on the wire.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The wire's time now.
    pub(crate) fn now(&self) -> Instant {
        *lock(&self.clock)
    }

    /// Moves the clock to `now` (never back).
    pub(crate) fn advance_to(&self, now: Instant) {
        let mut c = lock(&self.clock);
        *c = (*c).max(now);
    }

    /// The datagrams the SFU sent since the last call, in order.
    pub(crate) fn take_sent(&self) -> Vec<TaggedBytesMut> {
        std::mem::take(&mut *lock(&self.sent))
    }

    /// The earliest timeout any open connection waits for.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.live().iter().filter_map(|c| c.next_timeout()).min()
    }

    /// Handles the timeouts due at `now`; returns whether any was.
    pub(crate) fn handle_timeouts(&self, now: Instant) -> bool {
        let mut any = false;
        for c in self.live() {
            if c.next_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
                any = true;
            }
        }
        any
    }

    /// A datagram a connection sent.
    pub(super) fn carry(&self, msg: TaggedBytesMut) {
        lock(&self.sent).push(msg);
    }

    /// Takes over the timeouts of a connection opened on the wire.
    pub(super) fn adopt(&self, conn: &Arc<Connection>) {
        lock(&self.connections).push(Arc::downgrade(conn));
    }

    /// The connections still alive (the dead ones forgotten).
    fn live(&self) -> Vec<Arc<Connection>> {
        let mut cs = lock(&self.connections);
        cs.retain(|w| w.strong_count() > 0);
        cs.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Transport {
    /// A transport on `wire` instead of sockets; `delay` times the forwarded copies leaving
    /// (in the wire's time).
    pub(crate) fn in_memory(wire: Arc<Wire>, delay: Option<Arc<ForwardDelay>>) -> Arc<Transport> {
        Arc::new(Transport {
            addrs: Vec::new(),
            shards: Vec::new(),
            threads: Default::default(),
            tcp: Vec::new(),
            routes: Mutex::new(Routes::default()),
            tasks: Mutex::new(Vec::new()),
            dropped: Default::default(),
            delay,
            wire: Some(wire),
        })
    }
}
