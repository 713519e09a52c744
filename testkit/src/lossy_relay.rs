//! A UDP relay that loses packets: real loss on loopback without root or netem.
//!
//! Also between two Tessera nodes: a node's relay socket on 127.0.0.1:P is advertised (with
//! `--relay-public-addr`) at 127.0.0.2:P, where this relay forwards to it.
//!
//! The SFU binds its ICE sockets on 127.0.0.1 in a fixed port range and advertises them as
//! `public_ips = [127.0.0.2]` (see `IceConfig::public_ips`). The relay binds 127.0.0.2 on the same
//! ports and forwards between each client and the SFU socket through one upstream socket per
//! client, like a NAT, so the SFU sees the client at the relay's address. Clients must not
//! trickle their own candidates (the web client's `trickle=0`), or the SFU could reach them
//! directly around the relay. Only RTP is dropped (not STUN, DTLS or RTCP), in one direction
//! or both, at a fixed rate from a seeded generator.
//!
//! It can also limit the rate toward clients (a token bucket feeding a queue, like a slow
//! link: packets wait, and are dropped once the queue holds more than [`MAX_QUEUE`]), for the
//! clients it first sees while [`LossyRelay::limit_new_clients`] is set.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The address clients reach the SFU at.
pub const RELAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Loss rates (0.0–1.0) of RTP packets per direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loss {
    /// Only RTP packets of at least this many bytes may be lost (300: video, not Opus audio,
    /// whose loss no one repairs).
    pub min_size: usize,
    /// SFU → client (what subscribers receive; publishers get only RTCP this way).
    pub to_client: f64,
    /// Client → SFU (what publishers send; subscribers send only RTCP this way).
    pub to_sfu: f64,
}

/// Packets the relay forwarded and dropped.
#[derive(Debug, Default)]
pub struct RelayCounts {
    pub to_client: AtomicU64,
    pub to_sfu: AtomicU64,
    pub dropped_to_client: AtomicU64,
    pub dropped_to_sfu: AtomicU64,
}

impl RelayCounts {
    pub fn get(&self) -> [u64; 4] {
        [&self.to_client, &self.to_sfu, &self.dropped_to_client, &self.dropped_to_sfu]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// The running relay; stops on drop.
pub struct LossyRelay {
    /// The SFU's port range, for `IceConfig::udp_port_range`.
    pub ports: (u16, u16),
    pub counts: Arc<RelayCounts>,
    /// Rate (bit/s) toward each client first seen from now on (0: unlimited, the start).
    pub limit_new_clients: Arc<AtomicU64>,
    _tasks: AbortOnDrop,
}

/// The longest a packet waits in a rate-limited direction before it is dropped instead.
pub const MAX_QUEUE: Duration = Duration::from_millis(300);

/// Bytes a rate-limited direction may send at once after an idle moment.
const BURST_BYTES: u64 = 10_000;

/// Token bucket of one rate-limited direction: when each packet may leave.
struct Bucket {
    bps: u64,
    /// When the bucket's tokens run out for the packets admitted so far.
    next_free: Instant,
}

impl Bucket {
    fn new(bps: u64) -> Self {
        Bucket { bps, next_free: Instant::now() }
    }

    /// Departure time of a packet of `len` bytes arriving now, or `None` (dropped: the queue
    /// is full).
    fn admit(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let burst = Duration::from_micros(BURST_BYTES * 8 * 1_000_000 / self.bps);
        let start = self.next_free.max(now.checked_sub(burst).unwrap_or(now));
        let send_at = start.max(now);
        if send_at.saturating_duration_since(now) > MAX_QUEUE {
            return None;
        }
        self.next_free = start + Duration::from_micros(len as u64 * 8 * 1_000_000 / self.bps);
        Some(send_at)
    }
}

/// RTP, not RTCP/STUN/DTLS (RFC 7983 demultiplexing; RTCP packet types 192–223).
fn is_rtp(b: &[u8]) -> bool {
    b.len() >= 12 && (128..=191).contains(&b[0]) && !(192..=223).contains(&b[1])
}

/// xorshift64*, seeded: the same loss pattern on every run.
struct Dice(u64);

impl Dice {
    fn lose(&mut self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (x as f64 / (1u64 << 53) as f64) < rate
    }
}

impl LossyRelay {
    /// Binds `n` consecutive ports on [`RELAY_IP`] whose 127.0.0.1 twins are free, and relays.
    pub async fn start(n: u16, loss: Loss) -> LossyRelay {
        let seed = std::process::id() as u64;
        for attempt in 0..50u64 {
            let base = 20_000 + ((seed * 7919 + attempt * 104_729) % 2_000) as u16 * 16;
            let mut socks = Vec::new();
            for p in base..base + n {
                let twin_free = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
                match UdpSocket::bind(SocketAddr::new(RELAY_IP, p)).await {
                    Ok(s) if twin_free => socks.push(s),
                    _ => break,
                }
            }
            if socks.len() == n as usize {
                let counts = Arc::new(RelayCounts::default());
                let limit = Arc::new(AtomicU64::new(0));
                let tasks: Vec<JoinHandle<()>> = socks
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let (counts, limit) = (Arc::clone(&counts), Arc::clone(&limit));
                        tokio::spawn(relay_port(Arc::new(s), base + i as u16, loss, counts, limit, seed + i as u64))
                    })
                    .collect();
                return LossyRelay {
                    ports: (base, base + n - 1),
                    counts,
                    limit_new_clients: limit,
                    _tasks: AbortOnDrop(tasks),
                };
            }
        }
        panic!("no free port range for the relay");
    }
}

async fn relay_port(
    public: Arc<UdpSocket>,
    port: u16,
    loss: Loss,
    counts: Arc<RelayCounts>,
    limit: Arc<AtomicU64>,
    seed: u64,
) {
    let sfu = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    // Aborted when this task is (the relay dropped).
    let mut children = AbortOnDrop(Vec::new());
    let mut dice = Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = public.recv_from(&mut buf).await else { break };
        let up = match upstreams.get(&client) {
            Some(u) => Arc::clone(u),
            None => {
                let Ok(u) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await else { continue };
                let u = Arc::new(u);
                upstreams.insert(client, Arc::clone(&u));
                let (public, counts, u2) = (Arc::clone(&public), Arc::clone(&counts), Arc::clone(&u));
                let mut dice = Dice(dice.0 ^ 0x5555_5555_5555_5555);
                // Rate-limited: a pacer sends each packet at its departure time.
                let mut bucket = match limit.load(Ordering::Relaxed) {
                    0 => None,
                    bps => {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                        let public = Arc::clone(&public);
                        children.0.push(tokio::spawn(async move {
                            while let Some((at, b)) = rx.recv().await {
                                tokio::time::sleep_until(at.into()).await;
                                let _ = public.send_to(&b, client).await;
                            }
                        }));
                        Some((Bucket::new(bps), tx))
                    }
                };
                children.0.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok((n, _)) = u2.recv_from(&mut buf).await {
                        if n >= loss.min_size && is_rtp(&buf[..n]) && dice.lose(loss.to_client) {
                            counts.dropped_to_client.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if let Some((b, tx)) = &mut bucket {
                            match b.admit(n, Instant::now()) {
                                Some(at) => {
                                    counts.to_client.fetch_add(1, Ordering::Relaxed);
                                    let _ = tx.send((at, buf[..n].to_vec()));
                                }
                                None => {
                                    counts.dropped_to_client.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            continue;
                        }
                        counts.to_client.fetch_add(1, Ordering::Relaxed);
                        let _ = public.send_to(&buf[..n], client).await;
                    }
                }));
                u
            }
        };
        if n >= loss.min_size && is_rtp(&buf[..n]) && dice.lose(loss.to_sfu) {
            counts.dropped_to_sfu.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        counts.to_sfu.fetch_add(1, Ordering::Relaxed);
        let _ = up.send_to(&buf[..n], sfu).await;
    }
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Per (from, to) node index: datagrams forwarded, RTP packets dropped, and RTP packets
/// delayed (of those forwarded).
type PairCounts = HashMap<(usize, usize), (u64, u64, u64)>;

/// Where a pair's delayed packets wait: (when due, the datagram).
type DelayQueue = tokio::sync::mpsc::UnboundedSender<(Instant, Vec<u8>)>;

/// Relay links between Tessera nodes through loopback twins. Node `i`'s relay socket binds
/// 127.0.0.1:`ports[i]` (`--relay-port`) and is advertised as [`RELAY_IP`]:`ports[i]`
/// (`--relay-public-addr`), where this binds a socket. A datagram arriving at
/// [`RELAY_IP`]:P_dst from 127.0.0.1:P_src goes on to 127.0.0.1:P_dst from [`RELAY_IP`]:P_src,
/// so every node sees every other at its advertised address, and RTP of at least `min_size`
/// bytes is lost at the rate set for its (from, to) pair, or held back by the delay set for
/// it (in order: an uneven path, video later than audio).
pub struct NodeRelays {
    pub ports: Vec<u16>,
    counts: Arc<std::sync::Mutex<PairCounts>>,
    _tasks: AbortOnDrop,
}

impl NodeRelays {
    /// Twins for `n` nodes; `loss(from, to)` is the loss rate of RTP from node `from` to node
    /// `to` (0.0 to 1.0).
    pub async fn start(n: usize, min_size: usize, loss: impl Fn(usize, usize) -> f64) -> NodeRelays {
        Self::start_with_delay(n, min_size, loss, |_, _, _| Duration::ZERO).await
    }

    /// As [`Self::start`], with RTP of at least `min_size` bytes from node `from` to node `to`
    /// delayed by `delay(from, to, payload_type)` (kept in order).
    pub async fn start_with_delay(
        n: usize,
        min_size: usize,
        loss: impl Fn(usize, usize) -> f64,
        delay: impl Fn(usize, usize, u8) -> Duration + Send + Sync + 'static,
    ) -> NodeRelays {
        let delay: Arc<dyn Fn(usize, usize, u8) -> Duration + Send + Sync> = Arc::new(delay);
        let seed = std::process::id() as u64;
        let rates: Vec<Vec<f64>> = (0..n).map(|f| (0..n).map(|t| loss(f, t)).collect()).collect();
        for attempt in 0..50u64 {
            let base = 52_000 + ((seed * 7919 + attempt * 104_729) % 500) as u16 * 16;
            let mut socks = Vec::new();
            for p in base..base + n as u16 {
                let twin_free = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
                match UdpSocket::bind(SocketAddr::new(RELAY_IP, p)).await {
                    Ok(s) if twin_free => socks.push(Arc::new(s)),
                    _ => break,
                }
            }
            if socks.len() != n {
                continue;
            }
            let ports: Vec<u16> = (base..base + n as u16).collect();
            let counts = Arc::new(std::sync::Mutex::new(HashMap::new()));
            let mut tasks = Vec::new();
            // Each pair's queue of delayed packets, sent in order once each is due.
            let mut queues: HashMap<(usize, usize), DelayQueue> = HashMap::new();
            for (from, sock) in socks.iter().enumerate() {
                for to in (0..n).filter(|t| *t != from) {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                    queues.insert((from, to), tx);
                    let sock = Arc::clone(sock);
                    let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ports[to]);
                    tasks.push(tokio::spawn(async move {
                        while let Some((due, packet)) = rx.recv().await {
                            tokio::time::sleep_until(due.into()).await;
                            let _ = sock.send_to(&packet, dst).await;
                        }
                    }));
                }
            }
            let queues = Arc::new(queues);
            tasks.extend((0..n).map(|to| {
                let (socks, ports, rates, counts, queues, delays) = (
                    socks.clone(),
                    ports.clone(),
                    rates.clone(),
                    Arc::clone(&counts),
                    Arc::clone(&queues),
                    Arc::clone(&delay),
                );
                tokio::spawn(async move {
                    let mut dice = Dice((seed + to as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                    let mut buf = vec![0u8; 65_536];
                    let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ports[to]);
                    while let Ok((len, src)) = socks[to].recv_from(&mut buf).await {
                        let Some(from) = ports.iter().position(|p| *p == src.port()) else { continue };
                        let lost = len >= min_size && is_rtp(&buf[..len]) && dice.lose(rates[from][to]);
                        let held = if !lost && len >= min_size && is_rtp(&buf[..len]) {
                            delays(from, to, buf[1] & 0x7f)
                        } else {
                            Duration::ZERO
                        };
                        if let Ok(mut c) = counts.lock() {
                            let e = c.entry((from, to)).or_insert((0, 0, 0));
                            match (lost, held.is_zero()) {
                                (true, _) => e.1 += 1,
                                (false, true) => e.0 += 1,
                                (false, false) => (e.0, e.2) = (e.0 + 1, e.2 + 1),
                            }
                        }
                        if lost {
                            continue;
                        }
                        match queues.get(&(from, to)) {
                            Some(queue) if !held.is_zero() => {
                                let _ = queue.send((Instant::now() + held, buf[..len].to_vec()));
                            }
                            _ => {
                                let _ = socks[from].send_to(&buf[..len], dst).await;
                            }
                        }
                    }
                })
            }));
            return NodeRelays { ports, counts, _tasks: AbortOnDrop(tasks) };
        }
        panic!("no free port range for the node relays");
    }

    /// (forwarded, dropped) from node `from` to node `to` so far.
    pub fn counts(&self, from: usize, to: usize) -> (u64, u64) {
        let (forwarded, dropped, _) = self.pair(from, to);
        (forwarded, dropped)
    }

    /// RTP packets from node `from` to node `to` delayed so far.
    pub fn delayed(&self, from: usize, to: usize) -> u64 {
        self.pair(from, to).2
    }

    fn pair(&self, from: usize, to: usize) -> (u64, u64, u64) {
        self.counts.lock().map(|c| c.get(&(from, to)).copied().unwrap_or_default()).unwrap_or_default()
    }
}
