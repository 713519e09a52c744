//! Fast SFU tests without a browser: the SFU on an in-memory network with `rtc` client peers.
//!
//! A [`Net`] is an [`Sfu`] whose transport is a `Wire` (`transport/memory.rs`) instead of
//! sockets, and [`Client`]s, each a participant's two `rtc` peer connections (publish and
//! subscribe). Datagrams go from peer connection to peer connection in memory: what the SFU's
//! connections send is carried to the client whose address it names, what a client's peer
//! connections send is handed to `Transport::deliver` as the UDP receive loop would. Time is
//! the network's own clock, passed to every peer connection (the SFU's through
//! `Transport::now`), and only the harness moves it: from one timeout or packet to the next
//! (str0m style), so a second of a call runs in a few milliseconds, with no sleep and nothing
//! timed by the machine. Signalling calls the participant's API directly and reads its
//! outbox, as the WebSocket handler does.
//!
//! ```rust,ignore
//! let mut net = Net::new();
//! let alice = net.join("alice").await;
//! let bob = net.join("bob").await;
//! net.publish(alice, vec![Media::camera("cam")]).await;
//! net.run_for(Duration::from_secs(1)).await;
//! assert!(!net[bob].received_on(&net.track_id(alice, "cam")).is_empty());
//! ```
//!
//! Still on the wall clock: the bandwidth a subscriber's layers are chosen from is worked out
//! at `Instant::now()` (`participant/subscriptions.rs`: the REMB estimator's holds and
//! probes), so a test of REMB-driven layer changes would see no time pass between reports.
//! A bitrate cap and a video size, as tested, need no time. Ids, SSRCs, ICE credentials and
//! DTLS keys stay random.
//!
//! Built for the crate's tests and with the `test-harness` feature; the production build has
//! neither this module nor the wire.

mod client;
mod media;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Index, IndexMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::sansio::Protocol;
use rtc::shared::TransportProtocol;
use tokio::sync::mpsc;

pub use client::{Client, Received};
pub use media::{AUDIO_PACKET, Layer, Media, VIDEO_FRAME, is_keyframe, layer_of};

use crate::config::SfuConfig;
use crate::handoff::MediaHandoff;
use crate::sfu::Sfu;
use crate::signal::ServerMessage;
use crate::sync::lock;
use crate::track::PublishedTrack;
use crate::transport::Transport;
use crate::transport::memory::Wire;

/// The SFU's address on the network.
const SFU_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 3478);
/// Rounds [`Net::settle`] runs before it gives up on the network going quiet.
const MAX_ROUNDS: usize = 1000;
/// Times the harness yields to the runtime per round, so the tasks the SFU spawned (a new
/// track's subscriptions, keyframe requests) run before it looks again.
const YIELDS: usize = 4;
/// The smallest step the clock takes (no protocol timer is finer): a timeout still due after
/// being handled does not stall the clock.
const MIN_STEP: Duration = Duration::from_millis(1);

/// A client of a [`Net`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId(usize);

/// The SFU and its clients on an in-memory network.
pub struct Net {
    /// The SFU under test.
    pub sfu: Sfu,
    /// The room all clients join.
    pub room: String,
    wire: Arc<Wire>,
    transport: Arc<Transport>,
    clients: Vec<Client>,
}

impl Index<ClientId> for Net {
    type Output = Client;
    fn index(&self, id: ClientId) -> &Client {
        &self.clients[id.0]
    }
}

impl IndexMut<ClientId> for Net {
    fn index_mut(&mut self, id: ClientId) -> &mut Client {
        &mut self.clients[id.0]
    }
}

impl Net {
    /// An SFU with the default configuration, and no clients yet. Needs a tokio runtime (the
    /// SFU spawns tasks); a current-thread one (`#[tokio::test]`'s) runs those tasks only when
    /// the harness yields, so no thread races the harness.
    pub fn new() -> Net {
        Net::with_config(SfuConfig::default())
    }

    /// An SFU with `config` (its ICE settings are unused: the network has one address).
    pub fn with_config(config: SfuConfig) -> Net {
        Net::with_handoff(config, None)
    }

    /// An SFU with `config` that hands its tracks to `handoff`.
    pub fn with_handoff(config: SfuConfig, handoff: Option<Arc<dyn MediaHandoff>>) -> Net {
        let sfu = Sfu::new(config, handoff);
        let wire = Wire::new(SFU_ADDR, Instant::now());
        let transport = Transport::in_memory(Arc::clone(&wire), Some(Arc::clone(&sfu.inner.delay_probe)));
        *lock(&sfu.inner.transport) = Some(Arc::clone(&transport));
        Net { sfu, room: "room".to_owned(), wire, transport, clients: Vec::new() }
    }

    /// The network's time now.
    pub fn now(&self) -> Instant {
        self.wire.now()
    }

    /// A client joins the room as `name` (and subscribes to what is there, as the WebSocket
    /// handler has it do); returns once the network is quiet.
    pub async fn join(&mut self, name: &str) -> ClientId {
        let (tx, rx) = mpsc::unbounded_channel();
        let p = self.sfu.room(&self.room).join_as(name.to_owned(), None, Some(tx)).expect("join");
        p.sync_subscriptions().await.expect("initial subscriptions");
        let n = self.clients.len() as u8 + 1;
        let base = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, n)), 50_000);
        self.clients.push(Client::new(name, p, rx, base));
        self.settle().await;
        ClientId(self.clients.len() - 1)
    }

    /// A client publishes `media` (adding to what it publishes): its publish offer, the SFU's
    /// answer. Its packets go out from its connection's being up, in [`Net::run_for`].
    pub async fn publish(&mut self, id: ClientId, media: Vec<Media>) {
        let now = self.now();
        self.clients[id.0].publish(media, now).await;
        self.settle().await;
    }

    /// A client leaves (as its WebSocket closing does); it sends nothing more.
    pub async fn leave(&mut self, id: ClientId) {
        self.clients[id.0].active = false;
        let p = Arc::clone(&self.clients[id.0].participant);
        p.leave().await;
        self.settle().await;
    }

    /// A client asks for a keyframe of a video track it receives (a PLI; see
    /// [`Client::send_pli`]); panics when it cannot (it has received nothing of the track).
    pub async fn send_pli(&mut self, id: ClientId, track_id: &str) {
        let now = self.now();
        assert!(
            self.clients[id.0].send_pli(track_id, now),
            "{} cannot ask for a keyframe of {track_id}",
            self.clients[id.0].name
        );
        self.settle().await;
    }

    /// Answers the subscribe offers a client holds (its `auto_answer` off).
    pub async fn answer_held(&mut self, id: ClientId) {
        let now = self.now();
        let c = &mut self.clients[id.0];
        for offer in std::mem::take(&mut c.held) {
            c.answer(offer, now).await;
        }
        self.settle().await;
    }

    /// The SFU's track for a client's `media_id` (once its first packet arrived).
    pub fn track(&self, id: ClientId, media_id: &str) -> Option<Arc<PublishedTrack>> {
        lock(&self.clients[id.0].participant.inbound).get(media_id).map(|i| Arc::clone(&i.track))
    }

    /// The server id of a client's published `media_id`.
    pub fn track_id(&self, id: ClientId, media_id: &str) -> String {
        self.track(id, media_id).map(|t| t.id.clone()).unwrap_or_else(|| panic!("{media_id} is not published"))
    }

    /// Lets `d` of network time pass: media is sent, timeouts handled, datagrams carried, and
    /// the SFU's tasks run, from one event to the next.
    pub async fn run_for(&mut self, d: Duration) {
        let end = self.now() + d;
        self.run_until_or(end, |_| false).await;
    }

    /// Runs until `done` holds (checked whenever the network is quiet), at most `limit` of
    /// network time; panics naming `what` when it does not come.
    pub async fn run_until(&mut self, what: &str, limit: Duration, done: impl Fn(&Net) -> bool) {
        let end = self.now() + limit;
        if !self.run_until_or(end, done).await {
            panic!("{what}: not within {limit:?} of network time");
        }
    }

    /// Runs until the SFU has a client's `media` (each published on its first packet).
    pub async fn until_published(&mut self, id: ClientId, media: &[&str]) {
        let what = format!("{} publishing {media:?}", self.clients[id.0].name);
        self.run_until(&what, Duration::from_secs(5), |n| media.iter().all(|m| n.track(id, m).is_some())).await;
    }

    /// Runs until all clients' connections are up.
    pub async fn connect(&mut self) {
        self.run_until("every client connected", Duration::from_secs(10), |n| {
            n.clients.iter().filter(|c| c.active).all(|c| c.connected())
        })
        .await;
    }

    async fn run_until_or(&mut self, end: Instant, done: impl Fn(&Net) -> bool) -> bool {
        loop {
            self.settle().await;
            if done(self) {
                return true;
            }
            let now = self.now();
            if now >= end {
                return false;
            }
            let next = self.next_event().unwrap_or(end).max(now + MIN_STEP).min(end);
            self.wire.advance_to(next);
        }
    }

    /// Runs what is due now until nothing moves: the SFU's tasks, its messages to the clients
    /// (subscribe offers answered), media due, datagrams, timeouts.
    pub async fn settle(&mut self) {
        let mut quiet = 0;
        for _ in 0..MAX_ROUNDS {
            for _ in 0..YIELDS {
                tokio::task::yield_now().await;
            }
            let mut busy = self.read_outboxes().await;
            // What a timeout produces moves in the next exchange (a timeout that is due again
            // at once does not keep the network busy).
            self.handle_timeouts();
            busy |= self.exchange() > 0;
            if busy {
                quiet = 0;
            } else {
                quiet += 1;
                if quiet == 2 {
                    return;
                }
            }
        }
        panic!("the network did not go quiet in {MAX_ROUNDS} rounds");
    }

    /// Reads every client's outbox; answers (or holds) subscribe offers. Whether there was any.
    async fn read_outboxes(&mut self) -> bool {
        let now = self.now();
        let mut any = false;
        for c in &mut self.clients {
            for m in c.take_outbox() {
                any = true;
                if let ServerMessage::SubscribeOffer { sdp } = m {
                    if c.auto_answer && c.active {
                        c.answer(sdp, now).await;
                    } else {
                        c.held.push(sdp);
                    }
                }
            }
        }
        any
    }

    /// Sends what is due and carries every datagram waiting, both ways; returns how many moved.
    fn exchange(&mut self) -> usize {
        let now = self.now();
        let mut moved = 0;
        for c in &mut self.clients {
            moved += c.send_due(now);
        }
        for d in self.wire.take_sent() {
            moved += 1;
            let to = d.transport.peer_addr;
            // A client that left (or an address nobody has) loses it.
            if let Some(peer) = self.clients.iter_mut().find_map(|c| c.peer_at(to)) {
                peer.receive(d.transport.local_addr, d.message, now);
            }
        }
        for c in &mut self.clients {
            for peer in c.peers_mut() {
                while let Some(d) = peer.pc.poll_write() {
                    moved += 1;
                    if d.transport.peer_addr == self.wire.addr() {
                        self.transport.deliver(
                            d.transport.peer_addr,
                            d.transport.local_addr,
                            TransportProtocol::UDP,
                            &d.message,
                            now,
                        );
                    }
                }
            }
            c.poll(now);
        }
        moved
    }

    /// Handles every timeout due now, the SFU's and the clients'.
    fn handle_timeouts(&mut self) {
        let now = self.now();
        self.wire.handle_timeouts(now);
        for c in &mut self.clients {
            for peer in c.peers_mut() {
                if peer.pc.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = peer.pc.handle_timeout(now);
                }
            }
        }
    }

    /// When something happens next: a timeout, or a packet due.
    fn next_event(&mut self) -> Option<Instant> {
        let mut next = self.wire.next_timeout();
        for c in &mut self.clients {
            let media = c.next_send();
            for peer in c.peers_mut() {
                next = min(next, peer.pc.poll_timeout());
            }
            next = min(next, media);
        }
        next
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
