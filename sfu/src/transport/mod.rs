//! The SFU's own I/O around `rtc`'s sans-IO peer connections.
//!
//! `webrtc` 0.21 gives every peer connection its own event loop, and a forwarded packet costs
//! one turn of each subscriber's loop (see bench/sfu.md). Here all connections
//! share one UDP socket per configured address (and one ICE-TCP listener): a datagram is
//! routed to its connection by its path, or, for the first connectivity check on a path, by
//! the username fragment it names; the connection's core handles it, and what it produces is
//! acted on in the same call: datagrams sent, events and media handed to the connection's
//! [`ConnectionHandler`]. A publisher's packet is therefore forwarded to every subscriber
//! (written into each subscriber's core and sent) before the receive loop reads the next
//! datagram, with no task switch in between. Each connection has a timer task for its
//! core's timeouts (ICE checks and consent, DTLS retransmits, RTCP reports).
//!
//! In tests (`crate::harness`), a `memory::Wire` stands in for the sockets and the timer
//! tasks: the transport then binds nothing, keeps what it sends for the test, and its
//! connections' cores run on the wire's clock. The production build has none of it (the wire
//! and each branch on it are compiled only for the crate's tests and the `test-harness`
//! feature).

mod batch;
mod connection;
pub(crate) mod framing;
#[cfg(any(test, feature = "test-harness"))]
pub(crate) mod memory;
mod stun;
mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub(crate) use connection::{Connection, ConnectionHandler, TrackOpen};

use crate::config::IceConfig;
use crate::delay::ForwardDelay;
use crate::error::{Error, Result};
pub(crate) use crate::sync::lock;

/// Largest datagram read (the receive MTU the cores are configured with is smaller).
const RECV_BUF: usize = 2048;
/// Datagrams a receive loop handles before it yields to the runtime.
const RECV_BURST: usize = 64;
/// Paths remembered per connection. A path is learnt from a connectivity check naming the
/// connection's ufrag before the core has checked its integrity, so whoever saw the ufrag
/// could otherwise make the table grow; a peer uses a handful (one per candidate pair).
const MAX_PATHS: usize = 32;

/// A transport path: local address, peer address, and whether it is ICE-TCP.
type Path = (SocketAddr, SocketAddr, bool);

#[derive(Default)]
struct Routes {
    /// Connections by their local ICE username fragment.
    by_ufrag: HashMap<String, Weak<Connection>>,
    /// Connections by the paths their peers have used.
    by_path: HashMap<Path, Weak<Connection>>,
    /// The writer of each accepted ICE-TCP stream, by (local, peer) address.
    tcp_out: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>>,
}

/// The sockets all of one SFU's peer connections share.
pub(crate) struct Transport {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
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
    }
}

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
    Err(Error::Internal(format!(
        "cannot bind an ICE socket on {ip} ({range:?}): {}",
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

impl Transport {
    /// Binds one UDP socket (and, with ICE-TCP, one TCP listener) per configured address and
    /// starts reading them; `delay` times the forwarded copies leaving.
    pub(crate) fn bind(cfg: &IceConfig, delay: Option<Arc<ForwardDelay>>) -> Result<Arc<Transport>> {
        let mut udp = Vec::new();
        for &ip in &cfg.ice_ips() {
            let std_sock = bind_in(ip, cfg.udp_port_range, std::net::UdpSocket::bind)?;
            std_sock.set_nonblocking(true).map_err(|e| Error::Internal(e.to_string()))?;
            let addr = std_sock.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
            let sock = UdpSocket::from_std(std_sock).map_err(|e| Error::Internal(e.to_string()))?;
            udp.push((addr, Arc::new(sock)));
        }
        let mut listeners = Vec::new();
        if cfg.tcp {
            for &ip in &cfg.ice_ips() {
                let l = bind_in(ip, cfg.tcp_port_range, std::net::TcpListener::bind)?;
                l.set_nonblocking(true).map_err(|e| Error::Internal(e.to_string()))?;
                let l = tokio::net::TcpListener::from_std(l).map_err(|e| Error::Internal(e.to_string()))?;
                listeners.push(l);
            }
        }
        let tcp = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let t = Arc::new(Transport {
            udp,
            tcp,
            routes: Mutex::new(Routes::default()),
            tasks: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            delay,
            #[cfg(any(test, feature = "test-harness"))]
            wire: None,
        });
        let mut tasks = Vec::new();
        for (addr, sock) in &t.udp {
            tasks.push(tokio::spawn(udp_loop(Arc::downgrade(&t), Arc::clone(sock), *addr)));
        }
        for l in listeners {
            tasks.push(tokio::spawn(tcp::accept_loop(Arc::downgrade(&t), l)));
        }
        *lock(&t.tasks) = tasks;
        tracing::info!(udp = ?t.udp.iter().map(|(a, _)| a).collect::<Vec<_>>(), tcp = ?t.tcp, "ICE sockets bound");
        Ok(t)
    }

    /// The local UDP addresses (host candidates).
    pub(crate) fn udp_addrs(&self) -> Vec<SocketAddr> {
        #[cfg(any(test, feature = "test-harness"))]
        if let Some(w) = &self.wire {
            return vec![w.addr()];
        }
        self.udp.iter().map(|(a, _)| *a).collect()
    }

    /// The time the cores are driven with: the wall clock, or the test network's own clock.
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

    fn register(&self, ufrag: &str, conn: &Arc<Connection>) {
        lock(&self.routes).by_ufrag.insert(ufrag.to_owned(), Arc::downgrade(conn));
    }

    /// Forgets a closed connection's routes.
    fn unregister(&self, conn: &Connection) {
        let mut r = lock(&self.routes);
        let gone = |w: &Weak<Connection>| std::ptr::eq(w.as_ptr(), conn) || w.strong_count() == 0;
        r.by_ufrag.retain(|_, w| !gone(w));
        r.by_path.retain(|_, w| !gone(w));
    }

    /// The connection a datagram on `path` is for: the path's, or, for a connectivity check
    /// on a new path, the one whose username fragment it names.
    fn route(&self, path: Path, data: &[u8]) -> Option<Arc<Connection>> {
        let mut r = lock(&self.routes);
        if let Some(c) = r.by_path.get(&path).and_then(Weak::upgrade) {
            return Some(c);
        }
        let ufrag = stun::local_ufrag(data)?;
        let w = r.by_ufrag.get(ufrag)?.clone();
        let c = w.upgrade()?;
        // Past the limit the check still reaches the core; its path is just not remembered.
        if c.paths.fetch_add(1, Ordering::Relaxed) < MAX_PATHS {
            r.by_path.insert(path, w);
        }
        Some(c)
    }

    /// Hands a datagram read at `now` to its connection; a datagram no connection claims is
    /// dropped.
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
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext { local_addr: local, peer_addr: peer, transport_protocol: protocol, ecn: None },
            message: BytesMut::from(data),
        };
        // Everything the datagram causes (a publisher's packet: a copy for every subscriber)
        // leaves in one batch.
        batch::collecting(|| conn.handle_read(msg), |b| self.flush(b));
    }

    /// Sends one datagram a connection's core produced; never waits.
    pub(crate) fn send(&self, msg: TaggedBytesMut) {
        #[cfg(any(test, feature = "test-harness"))]
        if let Some(w) = &self.wire {
            self.departed(&msg.message, w.now());
            w.carry(msg);
            return;
        }
        let t = msg.transport;
        let sent = match t.transport_protocol {
            TransportProtocol::TCP => {
                let out = lock(&self.routes).tcp_out.get(&(t.local_addr, t.peer_addr)).cloned();
                let framed = framing::frame(&msg.message);
                out.zip(framed).is_some_and(|(o, f)| o.try_send(f).is_ok())
            }
            _ => {
                let socket = self.udp.iter().position(|(a, _)| *a == t.local_addr).unwrap_or(0);
                match batch::push(batch::Pending { socket, to: t.peer_addr, data: msg.message }) {
                    Ok(None) => true,
                    Ok(Some(full)) => {
                        self.flush(full);
                        true
                    }
                    Err(p) => {
                        let sent = self.udp.get(socket).is_some_and(|(_, s)| s.try_send_to(&p.data, p.to).is_ok());
                        if sent {
                            self.departed(&p.data, Instant::now());
                        }
                        sent
                    }
                }
            }
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends a batch of UDP datagrams, one `sendmmsg` per socket.
    fn flush(&self, mut datagrams: Vec<batch::Pending>) {
        if datagrams.is_empty() {
            return;
        }
        datagrams.sort_by_key(|d| d.socket);
        for run in datagrams.chunk_by(|a, b| a.socket == b.socket) {
            let dropped = match self.udp.get(run[0].socket) {
                Some((_, s)) => batch::send_all(s.as_raw_fd(), run),
                None => run.len(),
            };
            if dropped > 0 {
                self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        for d in &datagrams {
            self.departed(&d.data, now);
        }
    }

    /// An SRTP datagram left at `now`: if it is a forwarded copy, its delay is recorded (the
    /// RTP header is not encrypted).
    fn departed(&self, data: &[u8], now: Instant) {
        let Some(delay) = &self.delay else { return };
        // RTP version 2, and not RTCP (payload types 192–223 with the marker bit; RFC 5761).
        if data.len() < 12 || data[0] >> 6 != 2 || (192..=223).contains(&data[1]) {
            return;
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        delay.departed(ssrc, seq, now);
    }
}

impl IceConfig {
    /// The addresses to listen on (at least loopback).
    fn ice_ips(&self) -> Vec<std::net::IpAddr> {
        if self.ips.is_empty() { vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)] } else { self.ips.clone() }
    }
}

/// Reads one UDP socket for as long as the transport lives.
async fn udp_loop(transport: Weak<Transport>, sock: Arc<UdpSocket>, local: SocketAddr) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut errors = 0u32;
    loop {
        let first = sock.recv_from(&mut buf).await;
        let Some(t) = transport.upgrade() else { return };
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(r) = next.take() {
            match r {
                Ok((n, peer)) => {
                    errors = 0;
                    t.deliver(local, peer, TransportProtocol::UDP, &buf[..n], Instant::now());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors from a peer that went away surface here; the socket is fine.
                Err(e) => {
                    errors += 1;
                    tracing::debug!(%local, "UDP receive error: {e}");
                    if errors > 100 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            handled += 1;
            if handled < RECV_BURST {
                next = Some(sock.try_recv_from(&mut buf));
            }
        }
        drop(t);
        if handled >= RECV_BURST {
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::TransportCounters;
    use rtc::media_stream::MediaStreamTrack;
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
    };

    struct Quiet;
    impl ConnectionHandler for Quiet {}

    fn audio_track() -> MediaStreamTrack {
        MediaStreamTrack::new(
            "s".into(),
            "a".into(),
            "a".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(1234), ..Default::default() },
                codec: RTCRtpCodec {
                    mime_type: "audio/opus".into(),
                    clock_rate: 48_000,
                    channels: 2,
                    ..Default::default()
                },
                ..Default::default()
            }],
        )
    }

    /// Every connection offers the shared sockets as host candidates, also when they are bound
    /// to the unspecified address (a 1:1 NAT: the public address replaces it in the SDP).
    #[tokio::test]
    async fn connections_share_the_sockets_and_offer_them_as_candidates() {
        for ip in ["127.0.0.1", "0.0.0.0"] {
            let cfg = IceConfig { ips: vec![ip.parse().unwrap()], ..Default::default() };
            let t = Transport::bind(&cfg, None).unwrap();
            let udp = t.udp_addrs()[0];
            let tcp = t.tcp_addrs()[0];
            let mut offers = Vec::new();
            for _ in 0..2 {
                let (core, ufrag) =
                    crate::peer::build_core(Arc::new(TransportCounters::default()), crate::peer::Role::Both).unwrap();
                let c = Connection::open(Arc::clone(&t), core, &ufrag, Box::new(Quiet)).unwrap();
                c.add_track(audio_track()).unwrap();
                let sdp = c.offer().unwrap();
                assert!(sdp.contains(&format!("a=ice-ufrag:{ufrag}")), "{sdp}");
                offers.push(sdp);
                c.close();
            }
            for sdp in offers {
                assert!(
                    sdp.contains(" udp ") && sdp.contains(&format!(" {} {} typ host", udp.ip(), udp.port())),
                    "{sdp}"
                );
                assert!(sdp.contains(&format!(" {} {} typ host tcptype passive", tcp.ip(), tcp.port())), "{sdp}");
            }
            assert!(lock(&t.routes).by_ufrag.is_empty(), "closed connections are forgotten");
        }
    }

    /// A connectivity check is routed by the ufrag it names, and its path is remembered; a
    /// datagram on an unknown path that is not a check reaches no one.
    #[tokio::test]
    async fn checks_are_routed_by_ufrag_then_by_path() {
        let t = Transport::bind(&IceConfig { tcp: false, ..Default::default() }, None).unwrap();
        let (core, ufrag) =
            crate::peer::build_core(Arc::new(TransportCounters::default()), crate::peer::Role::Both).unwrap();
        let c = Connection::open(Arc::clone(&t), core, &ufrag, Box::new(Quiet)).unwrap();
        let local = t.udp_addrs()[0];
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut check = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        check.extend_from_slice(&[9; 12]);
        let name = format!("{ufrag}:remote");
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(name.len() as u16).to_be_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.resize(attr.len().div_ceil(4) * 4, 0);
        check[2..4].copy_from_slice(&(attr.len() as u16).to_be_bytes());
        check.extend_from_slice(&attr);
        assert!(t.route((local, peer, false), &[0x80; 40]).is_none());
        let routed = t.route((local, peer, false), &check).expect("routed by ufrag");
        assert!(Arc::ptr_eq(&routed, &c));
        assert!(t.route((local, peer, false), &[0x80; 40]).is_some_and(|r| Arc::ptr_eq(&r, &c)), "then by path");
        assert!(t.route((local, "127.0.0.1:40001".parse().unwrap(), false), &[0x80; 40]).is_none());
        c.close();
        assert!(t.route((local, peer, false), &[0x80; 40]).is_none(), "closed: unrouted");
    }
}
