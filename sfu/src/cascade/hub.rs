//! The relay links' sockets and clock: one UDP socket per node for every link, a receive task
//! that hands each datagram to the link of the node it came from, and a timer that runs the
//! links' repairs, probes and reports. Sends never wait: a full socket buffer loses the
//! datagram (counted), as the SFU's own transport does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::relay::{LinkCounters, LinkEvent, LinkKeys, LinkState, RelayLink};
use crate::sync::{lock, read, write};

/// A link's address may change only after it was silent this long.
const REBIND_AFTER: Duration = Duration::from_secs(1);

/// How often the links' timers run (NACKs are answered to this precision).
const TICK: Duration = Duration::from_millis(5);

/// A link to one other node.
pub struct PeerLink {
    pub(crate) node: String,
    /// Where the other node says it receives (its heartbeat).
    advertised: SocketAddr,
    /// Where its datagrams come from, and ours go: the advertised address until a datagram
    /// under its keys arrives from elsewhere (a NAT that rebound, a relay in between).
    addr: RwLock<SocketAddr>,
    keys: (LinkKeys, LinkKeys),
    link: Mutex<RelayLink>,
    counters: Arc<LinkCounters>,
    socket: Arc<std::net::UdpSocket>,
    pub(crate) send_drops: crate::relay::Count,
}

impl PeerLink {
    /// Runs `f` on the link, then sends what it queued.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RelayLink) -> R) -> R {
        let mut link = lock(&self.link);
        let r = f(&mut link);
        let addr = *read(&self.addr);
        while let Some(d) = link.poll_transmit() {
            if self.socket.send_to(&d, addr).is_err() {
                self.send_drops.inc();
            }
        }
        r
    }

    /// The link's counters.
    pub fn counters(&self) -> &Arc<LinkCounters> {
        &self.counters
    }

    /// Whether the far node is heard.
    pub fn state(&self) -> LinkState {
        lock(&self.link).state(Instant::now())
    }

    /// The other node's id.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// What the hub hands the received media and messages to.
pub(crate) trait LinkHandler: Send + Sync {
    fn on_event(&self, from: &Arc<PeerLink>, event: LinkEvent, now: Instant);
    /// Runs after every tick (the wants and layer reports are paced by the handler).
    fn on_tick(&self, now: Instant);
}

/// The relay socket and the links through it.
pub struct RelayHub {
    socket: Arc<std::net::UdpSocket>,
    addr: SocketAddr,
    by_node: RwLock<HashMap<String, Arc<PeerLink>>>,
    by_addr: RwLock<HashMap<SocketAddr, Arc<PeerLink>>>,
}

impl RelayHub {
    /// Binds the relay socket (port 0: any free port).
    pub fn bind(addr: SocketAddr) -> Result<Arc<Self>> {
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind {
            ip: addr.ip(),
            range: Some((addr.port(), addr.port())),
            source,
        })?;
        socket.set_nonblocking(true).map_err(Error::io("relay socket: non-blocking"))?;
        let addr = socket.local_addr().map_err(Error::io("relay socket: address"))?;
        Ok(Arc::new(Self {
            socket: Arc::new(socket),
            addr,
            by_node: RwLock::new(HashMap::new()),
            by_addr: RwLock::new(HashMap::new()),
        }))
    }

    /// The relay socket's address (other nodes send here).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Links to `node` at `addr`, encrypting with `ours` and decrypting with `theirs`; a link
    /// with other keys or another address is replaced (the other node restarted).
    pub fn connect(&self, node: &str, addr: SocketAddr, ours: LinkKeys, theirs: LinkKeys) -> Result<Arc<PeerLink>> {
        if let Some(p) = read(&self.by_node).get(node)
            && p.advertised == addr
            && p.keys == (ours.clone(), theirs.clone())
        {
            return Ok(Arc::clone(p));
        }
        let link = RelayLink::new(&ours, &theirs, Instant::now())?;
        let peer = Arc::new(PeerLink {
            node: node.to_owned(),
            advertised: addr,
            addr: RwLock::new(addr),
            keys: (ours, theirs),
            counters: Arc::clone(link.counters()),
            link: Mutex::new(link),
            socket: Arc::clone(&self.socket),
            send_drops: Default::default(),
        });
        let old = write(&self.by_node).insert(node.to_owned(), Arc::clone(&peer));
        let mut by_addr = write(&self.by_addr);
        if let Some(old) = old {
            by_addr.remove(&*read(&old.addr));
        }
        by_addr.insert(addr, Arc::clone(&peer));
        tracing::info!(peer = node, %addr, "relay link set up");
        Ok(peer)
    }

    /// Drops the link to `node`.
    pub fn disconnect(&self, node: &str) {
        if let Some(old) = write(&self.by_node).remove(node) {
            write(&self.by_addr).remove(&*read(&old.addr));
            tracing::info!(peer = node, "relay link closed");
        }
    }

    /// The link to `node`, if there is one.
    pub fn peer(&self, node: &str) -> Option<Arc<PeerLink>> {
        read(&self.by_node).get(node).cloned()
    }

    /// Every link.
    pub fn peers(&self) -> Vec<Arc<PeerLink>> {
        read(&self.by_node).values().cloned().collect()
    }

    /// A datagram from an address no link knows: a link whose current address went silent
    /// (a NAT that rebound) and whose keys open it now sends to that address (SRTP's
    /// authentication is the proof; a replay fails it). A link still heard from keeps its
    /// address: two paths between the same nodes never take turns.
    fn learn(&self, from: SocketAddr, datagram: &[u8], now: Instant) -> Option<(Arc<PeerLink>, Vec<LinkEvent>)> {
        for peer in self.peers() {
            let opened =
                peer.with(|l| if l.heard_within(now, REBIND_AFTER) { None } else { l.try_receive(datagram, now) });
            if let Some(events) = opened {
                let old = std::mem::replace(&mut *write(&peer.addr), from);
                let mut by_addr = write(&self.by_addr);
                by_addr.remove(&old);
                by_addr.insert(from, Arc::clone(&peer));
                tracing::info!(peer = %peer.node, %old, new = %from, "relay link: the other node now sends from another address");
                return Some((peer, events));
            }
        }
        None
    }

    /// Starts the receive task and the timer; they stop when the hub is dropped.
    pub(crate) fn start(self: &Arc<Self>, handler: Weak<dyn LinkHandler>) -> Result<()> {
        let socket = self.socket.try_clone().map_err(Error::io("relay socket: clone"))?;
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(Error::io("relay socket: register"))?;
        let hub = Arc::downgrade(self);
        let h = handler.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
                let (Some(hub), Some(handler)) = (hub.upgrade(), h.upgrade()) else { return };
                let now = Instant::now();
                let known = read(&hub.by_addr).get(&from).cloned();
                let (peer, events) = match known {
                    Some(peer) => {
                        let events = peer.with(|l| l.receive(&buf[..n], now));
                        (peer, events)
                    }
                    None => match hub.learn(from, &buf[..n], now) {
                        Some(found) => found,
                        None => continue,
                    },
                };
                for e in events {
                    handler.on_event(&peer, e, now);
                }
            }
        });
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (Some(hub), Some(handler)) = (hub.upgrade(), handler.upgrade()) else { return };
                let now = Instant::now();
                for peer in hub.peers() {
                    let overdue = peer.with(|l| {
                        if l.poll_timeout().is_some_and(|t| t <= now) { l.handle_timeout(now) } else { Vec::new() }
                    });
                    for e in overdue {
                        handler.on_event(&peer, e, now);
                    }
                }
                handler.on_tick(now);
            }
        });
        Ok(())
    }
}
