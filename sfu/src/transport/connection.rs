//! One peer connection on the shared transport: a sans-IO `rtc` peer connection behind a
//! lock, driven by the transport (reads), its own timer task (timeouts) and the application
//! (descriptions, tracks, forwarded media). Whoever drives it acts on what it produced before
//! returning: datagrams go out, events and media go to the [`ConnectionHandler`] (with the
//! peer connection unlocked, so a handler may write into other connections).
//!
//! (Just over 400 lines: one type whose every method drives the one locked peer connection;
//! split, its locking discipline would be spread over files.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::TaggedBytesMut;
use rtc::{rtcp, rtp};
use tokio::sync::Notify;

use super::shard::Deferred;
use super::{Transport, batch, lock};
use crate::error::{Error, Result};

/// The longest a timer task sleeps without looking at its peer connection again.
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(1);
/// The shortest: a timeout that is still due right after being handled waits this long.
const MIN_TIMER_SLEEP: Duration = Duration::from_millis(1);

/// A remote track's first packet (or a simulcast layer's) arrived.
#[derive(Debug, Clone)]
pub(crate) struct TrackOpen {
    /// The track id (the `a=msid` track of its m-section).
    pub track_id: String,
    pub receiver_id: RTCRtpReceiverId,
    pub kind: RtpCodecKind,
    pub ssrc: u32,
    pub rid: Option<String>,
    pub codec: Option<RTCRtpCodec>,
}

/// What a connection tells the application. Called with the peer connection unlocked, on
/// whichever thread drove it (a forwarding thread, the timer task, an API call); must
/// not block.
pub(crate) trait ConnectionHandler: Send + Sync {
    fn on_state(&self, _conn: &Arc<Connection>, _state: RTCPeerConnectionState) {}
    fn on_track_open(&self, _conn: &Arc<Connection>, _open: TrackOpen) {}
    fn on_track_closed(&self, _conn: &Arc<Connection>, _track_id: &str) {}
    /// An RTP packet of remote track `track_id`, read from the socket at `read_at`.
    fn on_rtp(&self, _track_id: &str, _pkt: rtp::Packet, _read_at: Instant) {}
    /// RTCP about remote track `track_id` (sender reports) or local track `track_id`
    /// (receiver reports, keyframe requests, REMB).
    fn on_rtcp(&self, _track_id: &str, _pkts: Vec<Box<dyn rtcp::Packet>>) {}
}

/// What driving the peer connection produced besides datagrams.
#[derive(Default)]
struct Produced {
    events: Vec<Happened>,
    deadline: Option<Instant>,
}

enum Happened {
    State(RTCPeerConnectionState),
    Open(TrackOpen),
    Closed(String),
    Media(TaggedRTCMessage),
}

/// A peer connection on the shared transport.
///
/// Lock order: `pc`, then `deadline` (`handle_timeout` re-arms the timer under `pc`). What
/// the peer connection produces is sent from under `pc`, so the transport's `routes`, the
/// delay log's locks and, in tests, the wire's are taken after it; its events are dispatched
/// to the handler once `pc` is released.
pub(crate) struct Connection {
    transport: Arc<Transport>,
    pc: Mutex<RTCPeerConnection>,
    handler: Box<dyn ConnectionHandler>,
    /// When the peer connection next wants `handle_timeout`, as the timer task knows it.
    deadline: Mutex<Instant>,
    timer: Arc<Notify>,
    closed: AtomicBool,
    /// Paths the transport learnt for this connection (see `MAX_PATHS`).
    pub(super) paths: AtomicUsize,
    /// The shard whose thread writes the copies forwarded to this connection (`shard.rs`).
    pub(super) shard: usize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.timer.notify_one();
        // A connection dropped without `close` (its owner gone) leaves no routes behind.
        self.transport.unregister(self);
        self.transport.unplace(self.shard);
    }
}

impl Connection {
    /// Puts `pc` on `transport`: adds the transport's host candidates, routes connectivity
    /// checks for `ufrag` (`pc`'s local username fragment) to it and starts its timer.
    pub(crate) fn open(
        transport: Arc<Transport>,
        mut pc: RTCPeerConnection,
        ufrag: &str,
        handler: Box<dyn ConnectionHandler>,
    ) -> Result<Arc<Connection>> {
        for addr in transport.udp_addrs() {
            add_host_candidate(&mut pc, "udp", addr, rtc::ice::tcp_type::TcpType::Unspecified)?;
        }
        for &addr in transport.tcp_addrs() {
            add_host_candidate(&mut pc, "tcp", addr, rtc::ice::tcp_type::TcpType::Passive)?;
        }
        // End of candidates: gathering is complete at once.
        pc.add_local_candidate(RTCIceCandidateInit::default())
            .map_err(Error::rtc("cannot mark the end of our candidates"))?;
        let conn = Arc::new(Connection {
            transport: Arc::clone(&transport),
            pc: Mutex::new(pc),
            handler,
            deadline: Mutex::new(Instant::now() + MAX_TIMER_SLEEP),
            timer: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            paths: AtomicUsize::new(0),
            shard: transport.place(),
        });
        transport.register(ufrag, &conn);
        // On the test network its clock is passed in: the harness drives the timeouts.
        #[cfg(any(test, feature = "test-harness"))]
        if let Some(wire) = &transport.wire {
            wire.adopt(&conn);
            return Ok(conn);
        }
        tokio::spawn(run_timer(Arc::downgrade(&conn), Arc::clone(&conn.timer)));
        Ok(conn)
    }

    /// Runs `f` on the peer connection, then acts on what it produced.
    fn drive<T>(self: &Arc<Self>, f: impl FnOnce(&mut RTCPeerConnection) -> T) -> T {
        let (out, produced) = {
            let mut pc = lock(&self.pc);
            let out = f(&mut pc);
            (out, self.flush(&mut pc, true))
        };
        self.dispatch(produced);
        out
    }

    /// Sends the peer connection's datagrams and collects its events, media and next deadline.
    fn flush(&self, pc: &mut RTCPeerConnection, with_deadline: bool) -> Produced {
        while let Some(d) = pc.poll_write() {
            self.transport.send(d);
        }
        let mut p = Produced::default();
        while let Some(e) = pc.poll_event() {
            match e {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => p.events.push(Happened::State(s)),
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let Some(receiver) = pc.rtp_receiver(init.receiver_id) else { continue };
                    let track = receiver.track();
                    p.events.push(Happened::Open(TrackOpen {
                        track_id: init.track_id.clone(),
                        receiver_id: init.receiver_id,
                        kind: track.kind(),
                        ssrc: init.ssrc,
                        rid: init.rid.clone().or_else(|| track.rid(init.ssrc).cloned()),
                        codec: track.codec(init.ssrc).cloned(),
                    }));
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(id)) => p.events.push(Happened::Closed(id)),
                _ => {}
            }
        }
        while let Some(m) = pc.poll_read() {
            p.events.push(Happened::Media(m));
        }
        if with_deadline {
            p.deadline = pc.poll_timeout();
        }
        p
    }

    fn dispatch(self: &Arc<Self>, p: Produced) {
        if let Some(d) = p.deadline {
            let mut armed = lock(&self.deadline);
            if d < *armed {
                *armed = d;
                self.timer.notify_one();
            }
        }
        for e in p.events {
            match e {
                Happened::State(s) => self.handler.on_state(self, s),
                Happened::Open(o) => self.handler.on_track_open(self, o),
                Happened::Closed(id) => self.handler.on_track_closed(self, &id),
                Happened::Media(m) => match m.message {
                    RTCMessage::RtpPacket(track, pkt) => self.handler.on_rtp(&track, pkt, m.now),
                    RTCMessage::RtcpPacket(track, pkts) => self.handler.on_rtcp(&track, pkts),
                    _ => {}
                },
            }
        }
    }

    /// A datagram from the transport.
    pub(super) fn handle_read(self: &Arc<Self>, msg: TaggedBytesMut) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let peer = msg.transport.peer_addr;
        if let Err(e) = self.drive(|pc| pc.handle_read(msg)) {
            // A malformed or unexpected datagram; the connection goes on.
            tracing::debug!(%peer, "datagram rejected: {e}");
        }
    }

    /// When the peer connection next wants [`Self::handle_timeout`] (the test network's timer).
    #[cfg(any(test, feature = "test-harness"))]
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.pc).poll_timeout()
    }

    pub(super) fn handle_timeout(self: &Arc<Self>, now: Instant) {
        let produced = {
            let mut pc = lock(&self.pc);
            if let Err(e) = pc.handle_timeout(now) {
                tracing::debug!("timeout handling: {e}");
            }
            let p = self.flush(&mut pc, true);
            // A deadline still due after handling waits a millisecond, not a spin (no protocol
            // timer is finer).
            *lock(&self.deadline) =
                p.deadline.unwrap_or(now + MAX_TIMER_SLEEP).clamp(now + MIN_TIMER_SLEEP, now + MAX_TIMER_SLEEP);
            p
        };
        self.dispatch(Produced { deadline: None, ..produced });
    }

    /// The time its peer connection is driven with (see `Transport::now`).
    pub(crate) fn now(&self) -> Instant {
        self.transport.now()
    }

    /// Applies a remote offer and returns our answer.
    pub(crate) fn answer(self: &Arc<Self>, offer: String) -> Result<String> {
        self.answer_with_tracks(offer, Vec::new()).map(|(sdp, _)| sdp)
    }

    /// Applies a remote offer, adds `tracks` to send (each takes a transceiver of its kind the
    /// offer made, when one has no sender: an answer to a `recvonly` offer sends them), and
    /// returns our answer with the tracks' senders.
    pub(crate) fn answer_with_tracks(
        self: &Arc<Self>,
        offer: String,
        tracks: Vec<MediaStreamTrack>,
    ) -> Result<(String, Vec<RTCRtpSenderId>)> {
        let offer = RTCSessionDescription::offer(offer).map_err(Error::invalid("offer"))?;
        self.drive(|pc| {
            pc.set_remote_description(self.transport.now(), offer).map_err(Error::invalid("offer"))?;
            let senders = tracks
                .into_iter()
                .map(|t| pc.add_track(t).map_err(Error::rtc("cannot add a track")))
                .collect::<Result<Vec<_>>>()?;
            let answer = pc.create_answer(None).map_err(Error::rtc("cannot create an answer"))?;
            pc.set_local_description(self.transport.now(), answer).map_err(Error::rtc("cannot apply our answer"))?;
            let sdp =
                pc.local_description().map(|d| d.sdp).ok_or_else(|| Error::Internal("no local description".into()))?;
            Ok((sdp, senders))
        })
    }

    /// Creates and applies an offer and returns it.
    pub(crate) fn offer(self: &Arc<Self>) -> Result<String> {
        self.drive(|pc| {
            let offer = pc.create_offer(None).map_err(Error::rtc("cannot create an offer"))?;
            pc.set_local_description(self.transport.now(), offer).map_err(Error::rtc("cannot apply our offer"))?;
            pc.local_description().map(|d| d.sdp).ok_or_else(|| Error::Internal("no local description".into()))
        })
    }

    /// Applies the remote answer to our offer.
    pub(crate) fn accept_answer(self: &Arc<Self>, answer: String) -> Result<()> {
        let answer = RTCSessionDescription::answer(answer).map_err(Error::invalid("answer"))?;
        self.drive(|pc| pc.set_remote_description(self.transport.now(), answer)).map_err(Error::invalid("answer"))
    }

    /// Adds a trickled remote candidate.
    pub(crate) fn add_remote_candidate(self: &Arc<Self>, c: RTCIceCandidateInit) -> Result<()> {
        self.drive(|pc| pc.add_remote_candidate(c)).map_err(Error::invalid("candidate"))
    }

    /// Adds a track to send (renegotiation is the caller's).
    pub(crate) fn add_track(self: &Arc<Self>, track: MediaStreamTrack) -> Result<RTCRtpSenderId> {
        self.drive(|pc| pc.add_track(track)).map_err(Error::rtc("cannot add a track"))
    }

    pub(crate) fn remove_track(self: &Arc<Self>, sender: RTCRtpSenderId) {
        if let Err(e) = self.drive(|pc| pc.remove_track(sender)) {
            tracing::debug!("remove track: {e}");
        }
    }

    /// Sets the codecs a sender's transceiver offers.
    pub(crate) fn set_codec_preferences(
        self: &Arc<Self>,
        sender: RTCRtpSenderId,
        codecs: Vec<RTCRtpCodecParameters>,
    ) -> Result<()> {
        self.drive(|pc| pc.rtp_transceiver(sender.into()).map_or(Ok(()), |mut t| t.set_codec_preferences(codecs)))
            .map_err(Error::rtc("cannot set a transceiver's codecs"))
    }

    /// The codecs negotiated for a sender.
    pub(crate) fn sender_codecs(&self, sender: RTCRtpSenderId) -> Vec<RTCRtpCodecParameters> {
        let mut pc = lock(&self.pc);
        pc.rtp_sender(sender).map(|mut s| s.get_parameters().rtp_parameters.codecs.clone()).unwrap_or_default()
    }

    /// Sends RTCP about a remote track (a keyframe request).
    pub(crate) fn write_receiver_rtcp(self: &Arc<Self>, receiver: RTCRtpReceiverId, pkts: Vec<Box<dyn rtcp::Packet>>) {
        let r = self.drive(|pc| match pc.rtp_receiver(receiver) {
            Some(mut r) => r.write_rtcp(self.transport.now(), pkts),
            None => Ok(()),
        });
        if let Err(e) = r {
            tracing::debug!("receiver RTCP: {e}");
        }
    }

    /// The forwarding path: writes a packet through `sender`'s interceptors and SRTP and sends
    /// it, all before returning, or, on another shard's thread, defers it to this connection's
    /// shard. False when the sender cannot send (not negotiated yet, gone).
    pub(crate) fn write_rtp(self: &Arc<Self>, sender: RTCRtpSenderId, pkt: rtp::Packet) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        // On another shard's thread, the copy goes to this connection's own (see `shard.rs`).
        if self.transport.defers_to(self.shard) {
            return match batch::defer(Deferred { conn: Arc::clone(self), sender, pkt }) {
                None => true,
                Some(d) => self.write_now(d.sender, d.pkt),
            };
        }
        self.write_now(sender, pkt)
    }

    /// Writes a forwarded packet on this thread.
    pub(super) fn write_now(&self, sender: RTCRtpSenderId, pkt: rtp::Packet) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let mut pc = lock(&self.pc);
        let written = match pc.rtp_sender(sender) {
            Some(mut s) => s.write_rtp(self.transport.now(), pkt).is_ok(),
            None => false,
        };
        // Only datagrams: a write produces no events, and moves no timer earlier.
        while let Some(d) = pc.poll_write() {
            self.transport.send(d);
        }
        written
    }

    /// Whether the connection was closed.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Closes the connection (DTLS close_notify goes out) and forgets its routes.
    pub(crate) fn close(self: &Arc<Self>) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut pc = lock(&self.pc);
            let _ = pc.close();
            while let Some(d) = pc.poll_write() {
                self.transport.send(d);
            }
        }
        self.transport.unregister(self);
        self.timer.notify_one();
    }
}

fn add_host_candidate(
    pc: &mut RTCPeerConnection,
    network: &str,
    addr: std::net::SocketAddr,
    tcp_type: rtc::ice::tcp_type::TcpType,
) -> Result<()> {
    let c = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()
    .map_err(Error::rtc("cannot make a host candidate"))?;
    let init = RTCIceCandidate::from(&c).to_json().map_err(Error::rtc("cannot encode a host candidate"))?;
    pc.add_local_candidate(init).map_err(Error::rtc("cannot add a host candidate"))
}

/// Calls the peer connection's `handle_timeout` when it is due, for as long as the connection
/// lives.
async fn run_timer(conn: std::sync::Weak<Connection>, timer: Arc<Notify>) {
    loop {
        let Some(c) = conn.upgrade() else { return };
        if c.closed.load(Ordering::Acquire) {
            return;
        }
        let deadline = *lock(&c.deadline);
        drop(c);
        let now = Instant::now();
        if deadline > now {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = timer.notified() => continue,
            }
        }
        let Some(c) = conn.upgrade() else { return };
        if c.closed.load(Ordering::Acquire) {
            return;
        }
        c.handle_timeout(Instant::now());
    }
}
