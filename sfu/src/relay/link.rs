//! One direction pair of a relay link between two nodes, sans-IO: what this node sends the
//! other (SRTP and SRTCP under this node's keys) and what it receives from it (under the other
//! node's keys). Datagrams go in with [`RelayLink::receive`] and come out of
//! [`RelayLink::poll_transmit`]; the time is always an argument, so two links can be joined in
//! memory in tests and a lossy path put between them.
//!
//! Repairs: the receiver asks for missing packets with NACKs (again every 1.5 round trips, at
//! most [`NACK_TRIES`] times, for at most [`GIVE_UP`]); the sender answers each from its
//! history as RTX (RFC 4588) on the stream's RTX SSRC. The round trip is measured by the
//! link's own probe (an APP packet every [`PROBE_INTERVAL`]), which also tells whether the far
//! node is there at all.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{TransportLayerNack, nack_pairs_from_sequence_numbers};
use rtc::rtp;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::option::{srtcp_replay_protection, srtp_replay_protection};

use super::counters::LinkCounters;
use super::history::{SendHistory, is_rtx, unwrap_rtx};
use super::keys::{LinkKeys, PROFILE};
use super::order::InOrder;
use super::receive::{Arrival, ReceiveStream};
use super::wire::{self, RtcpPart};
use crate::error::{Error, Result};

/// How often each side probes the round trip (and shows it is alive).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// A link that heard nothing for this long is down.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);
/// NACKs per missing packet at most.
pub const NACK_TRIES: u8 = 5;
/// A packet missing for this long is given up.
pub const GIVE_UP: Duration = Duration::from_millis(1000);
/// How often each received stream is reported on.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The round trip assumed until measured (a LAN's, generously).
const INITIAL_RTT: Duration = Duration::from_millis(20);
/// SRTP replay windows: wide enough for the reordering a long link may add.
const REPLAY_WINDOW: usize = 1024;

/// Whether the far node is heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Nothing received yet.
    Connecting,
    /// Heard within [`SILENT_AFTER`].
    Up,
    /// Silent for longer than [`SILENT_AFTER`].
    Down,
}

/// What a received datagram carried, for the layer above.
pub enum LinkEvent {
    /// A media packet (a repair arrives as the packet it repairs), on its link SSRC.
    Rtp(rtp::Packet),
    /// The far side asks for a keyframe of the stream with this link SSRC.
    KeyframeRequest(u32),
    /// A sender report of a stream the far side sends us (its SSRC is the link SSRC).
    SenderReport(SenderReport),
    /// A control message of the layer above.
    Control(Vec<u8>),
}

/// A relay link's two directions with one other node.
pub struct RelayLink {
    /// Encrypts what we send.
    outbound: Context,
    /// Decrypts what they send.
    inbound: Context,
    /// The SSRC our RTCP is sent from (random).
    rtcp_ssrc: u32,
    history: SendHistory,
    streams: HashMap<u32, (ReceiveStream, InOrder)>,
    outbox: VecDeque<Vec<u8>>,
    counters: Arc<LinkCounters>,
    /// Our clock's zero, for the probe's timestamps.
    epoch: Instant,
    rtt: Option<Duration>,
    last_heard: Option<Instant>,
    next_probe: Option<Instant>,
    next_report: Option<Instant>,
}

fn srtp(keys: &LinkKeys) -> Result<Context> {
    let provider =
        rtc::crypto::default_provider().map_err(|e| Error::Internal(format!("relay link: no crypto provider: {e}")))?;
    Context::new(
        &keys.key,
        &keys.salt,
        PROFILE,
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
        provider.crypto(),
    )
    .map_err(Error::rtc("relay link keys"))
}

impl RelayLink {
    /// A link that encrypts with `ours` and decrypts with `theirs`, created at `now`.
    pub fn new(ours: &LinkKeys, theirs: &LinkKeys, now: Instant) -> Result<Self> {
        Ok(Self {
            outbound: srtp(ours)?,
            inbound: srtp(theirs)?,
            rtcp_ssrc: crate::sync::random_u32(),
            history: SendHistory::default(),
            streams: HashMap::new(),
            outbox: VecDeque::new(),
            counters: Arc::default(),
            epoch: now,
            rtt: None,
            last_heard: None,
            next_probe: Some(now),
            next_report: Some(now + REPORT_INTERVAL),
        })
    }

    /// The link's counters (shared: `/metrics` reads them while the link runs).
    pub fn counters(&self) -> &Arc<LinkCounters> {
        &self.counters
    }

    /// The measured round trip, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether the far node is heard at `now`.
    pub fn state(&self, now: Instant) -> LinkState {
        match self.last_heard {
            None => LinkState::Connecting,
            Some(t) if now.saturating_duration_since(t) > SILENT_AFTER => LinkState::Down,
            Some(_) => LinkState::Up,
        }
    }

    /// Whether anything under the far node's keys arrived within `within` of `now`.
    pub fn heard_within(&self, now: Instant, within: Duration) -> bool {
        self.last_heard.is_some_and(|t| now.saturating_duration_since(t) <= within)
    }

    fn rtt_or_initial(&self) -> Duration {
        self.rtt.unwrap_or(INITIAL_RTT)
    }

    /// Sends a media packet on its link SSRC (even: see [`super::media_ssrc`]).
    pub fn send_rtp(&mut self, packet: &rtp::Packet) -> Result<()> {
        let plain = packet.marshal().map_err(Error::rtc("relay: marshal RTP"))?;
        let sealed = self.outbound.encrypt_rtp(&plain).map_err(Error::rtc("relay: encrypt RTP"))?;
        self.counters.sent(packet.payload.len());
        self.history.sent(packet);
        self.outbox.push_back(sealed.to_vec());
        Ok(())
    }

    /// Stops remembering a stream that is no longer sent.
    pub fn stop_stream(&mut self, ssrc: u32) {
        self.history.forget(ssrc);
    }

    /// Forgets a stream no longer received.
    pub fn forget_received(&mut self, ssrc: u32) {
        self.streams.remove(&ssrc);
    }

    /// Sends RTCP packets (in one compound).
    pub fn send_rtcp(&mut self, packets: &[Box<dyn rtcp::Packet>]) -> Result<()> {
        let plain = rtcp::packet::marshal(packets).map_err(Error::rtc("relay: marshal RTCP"))?;
        self.send_rtcp_bytes(&plain)
    }

    fn send_rtcp_bytes(&mut self, plain: &[u8]) -> Result<()> {
        let sealed = self.outbound.encrypt_rtcp(plain).map_err(Error::rtc("relay: encrypt RTCP"))?;
        self.outbox.push_back(sealed.to_vec());
        Ok(())
    }

    /// Asks the far side for a keyframe of the stream it sends on link SSRC `ssrc`.
    pub fn request_keyframe(&mut self, ssrc: u32) -> Result<()> {
        self.counters.keyframe_requests_sent.inc();
        let pli = PictureLossIndication { sender_ssrc: self.rtcp_ssrc, media_ssrc: ssrc };
        self.send_rtcp(&[Box::new(pli)])
    }

    /// Sends a control message of the layer above (arrives as [`LinkEvent::Control`]).
    pub fn send_control(&mut self, message: &[u8]) -> Result<()> {
        let app = wire::app_packet(self.rtcp_ssrc, 0, wire::NAME_CONTROL, &wire::length_prefixed(message));
        self.send_rtcp_bytes(&app)
    }

    /// The next datagram to send to the far node.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// When [`RelayLink::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (interval, give_up) = (self.nack_interval(), GIVE_UP);
        let hold = self.hold();
        let nacks =
            self.streams.values().filter_map(|(s, o)| s.next_due(interval, give_up).min(o.next_due(hold))).min();
        [self.next_probe, self.next_report, nacks].into_iter().flatten().min()
    }

    /// How long a packet after a gap waits for the repair: two round trips and a margin (the
    /// first NACK leaves as soon as the gap shows).
    fn hold(&self) -> Duration {
        (self.rtt_or_initial() * 2 + Duration::from_millis(20)).min(Duration::from_millis(300))
    }

    fn nack_interval(&self) -> Duration {
        (self.rtt_or_initial() * 3 / 2).max(Duration::from_millis(5))
    }

    /// Runs what is due at `now`: NACKs, the probe, receiver reports; returns the packets
    /// that waited for a repair long enough (they go on without it).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<LinkEvent> {
        let interval = self.nack_interval();
        let hold = self.hold();
        let mut overdue = Vec::new();
        let mut nacks: Vec<Box<dyn rtcp::Packet>> = Vec::new();
        for (&ssrc, (s, order)) in self.streams.iter_mut() {
            overdue.extend(order.release_overdue(now, hold).into_iter().map(LinkEvent::Rtp));
            let lost_before = s.lost;
            let due = s.due(now, interval, NACK_TRIES, GIVE_UP);
            self.counters.lost.add(s.lost - lost_before);
            if !due.is_empty() {
                self.counters.nacks_sent.add(due.len() as u64);
                let nacks_of = nack_pairs_from_sequence_numbers(&due);
                nacks.push(Box::new(TransportLayerNack {
                    sender_ssrc: self.rtcp_ssrc,
                    media_ssrc: ssrc,
                    nacks: nacks_of,
                }));
            }
        }
        for chunk in nacks.chunks(8) {
            let _ = self.send_rtcp(chunk);
        }
        if self.next_probe.is_some_and(|t| now >= t) {
            self.next_probe = Some(now + PROBE_INTERVAL);
            let micros = now.saturating_duration_since(self.epoch).as_micros() as u64;
            let ping = wire::app_packet(self.rtcp_ssrc, wire::PROBE_PING, wire::NAME_PROBE, &micros.to_be_bytes());
            let _ = self.send_rtcp_bytes(&ping);
        }
        if self.next_report.is_some_and(|t| now >= t) {
            self.next_report = Some(now + REPORT_INTERVAL);
            let reports: Vec<ReceptionReport> = self
                .streams
                .iter_mut()
                .map(|(&ssrc, (s, _))| {
                    let (fraction_lost, total_lost, last_sequence_number) = s.report();
                    ReceptionReport { ssrc, fraction_lost, total_lost, last_sequence_number, ..Default::default() }
                })
                .collect();
            for chunk in reports.chunks(31) {
                let rr = ReceiverReport { ssrc: self.rtcp_ssrc, reports: chunk.to_vec(), ..Default::default() };
                let _ = self.send_rtcp(&[Box::new(rr)]);
            }
        }
        overdue
    }

    /// A datagram from the far node, received at `now`. What it carried comes back; what it
    /// calls for (repairs, probe answers) is queued for [`RelayLink::poll_transmit`]. A
    /// datagram that does not decrypt (damaged, replayed, or not from the far node) is
    /// counted and dropped.
    pub fn receive(&mut self, datagram: &[u8], now: Instant) -> Vec<LinkEvent> {
        self.try_receive(datagram, now).unwrap_or_else(|| {
            self.counters.rejected.inc();
            Vec::new()
        })
    }

    /// As [`RelayLink::receive`], but a datagram that does not decrypt under this link's keys
    /// is `None` and not counted (the hub asks each link about a datagram from an address it
    /// does not know: the far node behind a NAT that rebound, or a relay between them).
    pub fn try_receive(&mut self, datagram: &[u8], now: Instant) -> Option<Vec<LinkEvent>> {
        if wire::is_rtcp(datagram) {
            let plain = self.inbound.decrypt_rtcp(datagram).ok()?;
            self.last_heard = Some(now);
            Some(self.on_rtcp(&plain, now))
        } else {
            let plain = self.inbound.decrypt_rtp(datagram).ok()?;
            self.last_heard = Some(now);
            let mut packet = wire::parse_rtp(&plain)?;
            let repair = is_rtx(packet.header.ssrc);
            if repair {
                match unwrap_rtx(packet) {
                    Some(p) => packet = p,
                    None => return Some(Vec::new()),
                }
            }
            let (stream, order) = self.streams.entry(packet.header.ssrc).or_default();
            let ext = stream.extend(packet.header.sequence_number);
            Some(match stream.arrived(packet.header.sequence_number, now) {
                Arrival::Stale => {
                    self.counters.duplicates.inc();
                    Vec::new()
                }
                arrival => {
                    if arrival == Arrival::Recovered && repair {
                        self.counters.repaired.inc();
                    }
                    self.counters.received(packet.payload.len());
                    order.push(ext, packet, now).into_iter().map(LinkEvent::Rtp).collect()
                }
            })
        }
    }

    fn on_rtcp(&mut self, plain: &[u8], now: Instant) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        for part in wire::split_rtcp(plain) {
            match part {
                RtcpPart::App { subtype, name, data } if name == wire::NAME_PROBE => self.on_probe(subtype, &data, now),
                RtcpPart::App { name, data, .. } if name == wire::NAME_CONTROL => {
                    if let Some(m) = wire::unprefixed(&data) {
                        events.push(LinkEvent::Control(m.to_vec()));
                    }
                }
                RtcpPart::App { .. } => {}
                RtcpPart::Standard(p) => {
                    let any = p.as_any();
                    if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                        self.on_nack(nack, now);
                    } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                        self.counters.keyframe_requests_received.inc();
                        events.push(LinkEvent::KeyframeRequest(pli.media_ssrc));
                    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                        events.push(LinkEvent::SenderReport(sr.clone()));
                    } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                        let worst = rr.reports.iter().map(|r| r.fraction_lost).max().unwrap_or(0);
                        self.counters.far_fraction_lost.set(u64::from(worst));
                    }
                }
            }
        }
        events
    }

    fn on_nack(&mut self, nack: &TransportLayerNack, now: Instant) {
        // A second NACK crossing the first repair is not answered twice.
        let holdoff = self.rtt_or_initial() / 2;
        for pair in &nack.nacks {
            for seq in pair.packet_list() {
                self.counters.nacks_received.inc();
                let Some(rtx) = self.history.repair(nack.media_ssrc, seq, now, holdoff) else { continue };
                let Ok(plain) = rtx.marshal() else { continue };
                if let Ok(sealed) = self.outbound.encrypt_rtp(&plain) {
                    self.counters.retransmitted.inc();
                    self.outbox.push_back(sealed.to_vec());
                }
            }
        }
    }

    fn on_probe(&mut self, subtype: u8, data: &[u8], now: Instant) {
        let Some(stamp) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else { return };
        match subtype {
            wire::PROBE_PING => {
                let pong = wire::app_packet(self.rtcp_ssrc, wire::PROBE_PONG, wire::NAME_PROBE, &stamp);
                let _ = self.send_rtcp_bytes(&pong);
            }
            wire::PROBE_PONG => {
                let sent = Duration::from_micros(u64::from_be_bytes(stamp));
                if let Some(rtt) = now.saturating_duration_since(self.epoch).checked_sub(sent) {
                    self.rtt = Some(rtt);
                    self.counters.rtt_us.set(rtt.as_micros() as u64);
                }
            }
            _ => {}
        }
    }
}
