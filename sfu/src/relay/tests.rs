//! Two relay links joined in memory (str0m style: no sockets, no sleeps, the time passed in),
//! with a path between them that delays and drops datagrams as told.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Whether the path drops a datagram (given its number on the path and its bytes).
type DropRule = Box<dyn FnMut(u64, &[u8]) -> bool>;

/// One direction: datagrams in flight, each delivered `delay` after it was sent unless `drop`
/// says no (called with the datagram's number on this path).
struct Path {
    delay: Duration,
    drop: DropRule,
    sent: u64,
    in_flight: VecDeque<(Instant, Vec<u8>)>,
}

impl Path {
    fn new(delay: Duration, drop: impl FnMut(u64, &[u8]) -> bool + 'static) -> Self {
        Self { delay, drop: Box::new(drop), sent: 0, in_flight: VecDeque::new() }
    }

    fn carry(&mut self, from: &mut RelayLink, now: Instant) {
        while let Some(d) = from.poll_transmit() {
            self.sent += 1;
            if !(self.drop)(self.sent, &d) {
                self.in_flight.push_back((now + self.delay, d));
            }
        }
    }

    fn deliver(&mut self, to: &mut RelayLink, now: Instant) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        while self.in_flight.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, d)) = self.in_flight.pop_front() {
                events.extend(to.receive(&d, now));
            }
        }
        events
    }
}

/// Node A and node B, each with its own keys.
fn pair(now: Instant) -> (RelayLink, RelayLink) {
    let (ka, kb) = (LinkKeys::random(), LinkKeys::random());
    (RelayLink::new(&ka, &kb, now).unwrap(), RelayLink::new(&kb, &ka, now).unwrap())
}

fn media(ssrc: u32, seq: u16) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = 96;
    p.header.ssrc = ssrc;
    p.header.sequence_number = seq;
    p.header.timestamp = u32::from(seq) * 3000;
    p.payload = Bytes::from(format!("frame {seq} of {ssrc} ").repeat(20));
    p
}

/// Runs A → B for `packets` packets of stream `ssrc`, one every 10 ms, then 2 s more for the
/// repairs; returns the sequence numbers B received and every event B saw.
fn run(
    a: &mut RelayLink,
    b: &mut RelayLink,
    ab: &mut Path,
    ba: &mut Path,
    t0: Instant,
    ssrc: u32,
    packets: u16,
) -> (Vec<u16>, usize) {
    let mut got = Vec::new();
    let mut other = 0;
    let end = t0 + 10 * MS * u32::from(packets) + Duration::from_secs(2);
    let mut now = t0;
    let mut next_send = 0u16;
    while now <= end {
        if next_send < packets && now >= t0 + 10 * MS * u32::from(next_send) {
            a.send_rtp(&media(ssrc, next_send.wrapping_add(65_000))).unwrap();
            next_send += 1;
        }
        let _ = a.handle_timeout(now);
        for e in b.handle_timeout(now) {
            if let LinkEvent::Rtp(p) = e {
                got.push(p.header.sequence_number);
            }
        }
        ab.carry(a, now);
        ba.carry(b, now);
        for e in ab.deliver(b, now) {
            match e {
                LinkEvent::Rtp(p) => {
                    assert_eq!(p.payload, media(ssrc, p.header.sequence_number).payload, "intact");
                    got.push(p.header.sequence_number);
                }
                _ => other += 1,
            }
        }
        let _ = ba.deliver(a, now);
        ab.carry(a, now);
        ba.carry(b, now);
        now += MS;
    }
    (got, other)
}

#[test]
fn media_crosses_encrypted_whole_and_once() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let plain = media(40, 1).payload.clone();
    let mut ab = Path::new(2 * MS, move |_, d| {
        assert!(!d.windows(16).any(|w| w == &plain[..16]), "no payload in the clear");
        false
    });
    let mut ba = Path::new(2 * MS, |_, _| false);
    let (got, _) = run(&mut a, &mut b, &mut ab, &mut ba, t0, 40, 200);
    let expected: Vec<u16> = (0..200u16).map(|i| i.wrapping_add(65_000)).collect();
    assert_eq!(got, expected);
    assert_eq!(b.counters().packets_received.get(), 200);
    assert_eq!(a.counters().packets_sent.get(), 200);
    assert_eq!(b.counters().nacks_sent.get(), 0);
    let rtt = a.rtt().expect("measured");
    assert!((3 * MS..=6 * MS).contains(&rtt), "{rtt:?}");
    assert_eq!(a.state(t0 + Duration::from_secs(4)), LinkState::Up);
    assert_eq!(a.state(t0 + Duration::from_secs(9)), LinkState::Down, "silent for longer than 3 s");
}

#[test]
fn five_percent_loss_both_ways_is_repaired() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    // Every 20th datagram lost on the way there (media, repairs, probes) and back (NACKs).
    let mut ab = Path::new(15 * MS, |n, _| n % 20 == 7);
    let mut ba = Path::new(15 * MS, |n, _| n % 20 == 3);
    let (got, _) = run(&mut a, &mut b, &mut ab, &mut ba, t0, 40, 1000);
    let unique: BTreeSet<u16> = got.iter().copied().collect();
    assert_eq!(unique.len(), 1000, "every packet arrived, in the end");
    assert_eq!(got.len(), 1000, "and each once");
    assert!(got.windows(2).all(|w| w[0].wrapping_add(1) == w[1]), "and in order, repairs included");
    let c = b.counters();
    assert!(c.repaired.get() >= 40, "repaired {}", c.repaired.get());
    assert_eq!(c.lost.get(), 0);
    assert!(a.counters().retransmitted.get() >= c.repaired.get());
    // Repairs are not sent many times over: at most one more than needed per loss on average.
    assert!(a.counters().retransmitted.get() <= 2 * c.repaired.get(), "{}", a.counters().retransmitted.get());
}

#[test]
fn a_packet_gone_for_good_is_given_up_and_counted() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    // SRTP leaves the RTP header in the clear: sequence 65_010 of stream 40 and every repair
    // (RTX stream 41) are dropped, so it never arrives.
    let ssrc = |d: &[u8]| u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    let mut ab = Path::new(MS, move |_, d| {
        d[1] < 192 && ((ssrc(d) == 40 && d[2..4] == 65_010u16.to_be_bytes()) || ssrc(d) == rtx_ssrc(40))
    });
    let mut ba = Path::new(MS, |_, _| false);
    let (got, _) = run(&mut a, &mut b, &mut ab, &mut ba, t0, 40, 30);
    assert_eq!(got.len(), 29);
    assert!(!got.contains(&65_010));
    let c = b.counters();
    assert_eq!(c.lost.get(), 1);
    assert_eq!(c.nacks_sent.get(), u64::from(NACK_TRIES), "asked for as often as allowed, then given up");
    assert_eq!(a.counters().retransmitted.get(), u64::from(NACK_TRIES));
    // Datagrams under other keys are refused and counted.
    let (_, mut stranger) = pair(t0);
    a.send_rtp(&media(40, 9)).unwrap();
    let d = a.poll_transmit().unwrap();
    assert!(stranger.receive(&d, t0).is_empty());
    assert!(stranger.receive(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 1, 2, 3], t0).is_empty());
    assert_eq!(stranger.counters().rejected.get(), 2);
}

#[test]
fn keyframe_requests_sender_reports_and_control_messages_cross() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let mut ab = Path::new(MS, |_, _| false);
    let mut ba = Path::new(MS, |_, _| false);
    b.request_keyframe(40).unwrap();
    b.send_control(b"wants 40 42").unwrap();
    a.send_rtcp(&[Box::new(SenderReport { ssrc: 40, ntp_time: 7 << 32, rtp_time: 9000, ..Default::default() })])
        .unwrap();
    ba.carry(&mut b, t0);
    ab.carry(&mut a, t0);
    let at_a = ba.deliver(&mut a, t0 + MS);
    let at_b = ab.deliver(&mut b, t0 + MS);
    assert!(matches!(at_a.as_slice(), [LinkEvent::KeyframeRequest(40), LinkEvent::Control(m)] if m == b"wants 40 42"));
    assert!(matches!(at_b.as_slice(), [LinkEvent::SenderReport(sr)] if sr.ssrc == 40 && sr.rtp_time == 9000));
    assert_eq!(a.counters().keyframe_requests_received.get(), 1);
    // A replayed datagram is refused.
    b.send_control(b"once").unwrap();
    let d = b.poll_transmit().unwrap();
    assert_eq!(a.receive(&d, t0).len(), 1);
    assert!(a.receive(&d, t0).is_empty());
    assert_eq!(a.counters().rejected.get(), 1);
    // A damaged one too.
    b.send_control(b"twice").unwrap();
    let mut d = b.poll_transmit().unwrap();
    let last = d.len() - 1;
    d[last] ^= 1;
    assert!(a.receive(&d, t0).is_empty());
    assert_eq!(a.counters().rejected.get(), 2);
}
