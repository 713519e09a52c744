//! Hands a subscriber connection's forwarded packets to its `webrtc` driver in batches.
//!
//! `webrtc` 0.21 runs one event loop per peer connection, and a track's `write_rtp` is one
//! event on that loop's channel: one turn of the loop per packet (the core locked five times,
//! a timer and the socket futures rebuilt, a task woken), which measured 15-19 µs of the
//! 28 µs a forwarded copy cost end to end. Here the forwarding path puts its packets in the
//! connection's [`RtpOutbox`] instead, and an interceptor at the top of the connection's chain
//! ([`RtpOutboxInterceptor`]) releases them whenever the loop drains the core's writes, which it
//! does on every turn. Only the first packet of a batch costs an event: a *wake*, an empty
//! packet written through the track that the interceptor swallows, so the loop turns once
//! and takes everything queued since. The released packets pass through every interceptor
//! below (NACK responder's history, sender reports, counters) exactly as written packets do,
//! and the driver sends a run of them to one subscriber with one GSO `sendmsg`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{Packet, StreamInfo, TaggedPacket};
use rtc::rtp;

use crate::tap::{PacketTap, Tapped};

/// Packets a connection's outbox holds at most; a full outbox drops its oldest packet (a
/// stalled subscriber loses packets, it never holds up the publisher or the others).
const CAPACITY: usize = 1024;

/// A wake that has not reached the interceptor after this long is taken as lost, and the
/// next packet sends another.
const WAKE_STALE: Duration = Duration::from_millis(20);

/// The contributing source a wake carries, which no media packet of ours does (forwarded
/// headers are rewritten without CSRCs).
const WAKE_CSRC: u32 = 0x7e55_e7a0;

/// The packet that wakes a connection's loop, written through a track with that track's
/// SSRC and payload type (the core checks both) and swallowed by [`RtpOutboxInterceptor`].
pub(crate) fn wake_packet(ssrc: u32, payload_type: u8) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type,
            ssrc,
            csrc: vec![WAKE_CSRC],
            ..Default::default()
        },
        payload: Bytes::new(),
    }
}

fn is_wake(p: &rtp::Packet) -> bool {
    p.payload.is_empty() && p.header.csrc.len() == 1 && p.header.csrc[0] == WAKE_CSRC
}

#[derive(Default)]
struct State {
    queue: VecDeque<rtp::Packet>,
    /// When the wake now in flight was sent.
    woken: Option<Instant>,
}

/// What [`RtpOutbox::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// The caller must wake the connection's loop (no wake is in flight).
    pub wake: bool,
    /// The outbox was full: its oldest packet was dropped to make room.
    pub dropped_oldest: bool,
}

/// One subscriber connection's queue of forwarded packets, shared by the forwarding path
/// (which pushes) and the connection's [`RtpOutboxInterceptor`] (which releases).
#[derive(Default)]
pub(crate) struct RtpOutbox {
    state: Mutex<State>,
}

impl RtpOutbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a packet at `now`.
    pub(crate) fn push(&self, p: rtp::Packet, now: Instant) -> Pushed {
        let mut st = self.lock();
        let dropped_oldest = st.queue.len() >= CAPACITY;
        if dropped_oldest {
            st.queue.pop_front();
        }
        st.queue.push_back(p);
        let wake = match st.woken {
            Some(at) => now.saturating_duration_since(at) >= WAKE_STALE,
            None => true,
        };
        if wake {
            st.woken = Some(now);
        }
        Pushed { wake, dropped_oldest }
    }

    /// The wake could not be sent: the next packet sends one.
    pub(crate) fn wake_failed(&self) {
        self.lock().woken = None;
    }

    /// Everything queued, oldest first; the next push wakes the loop again.
    fn take(&self) -> VecDeque<rtp::Packet> {
        let mut st = self.lock();
        st.woken = None;
        std::mem::take(&mut st.queue)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

/// The interceptor that releases a connection's [`RtpOutbox`]; application-most in the chain, so
/// what it releases passes every other interceptor on the way out.
pub(crate) struct RtpOutboxInterceptor {
    outbox: Arc<RtpOutbox>,
    /// SSRCs of the connection's bound senders: the core writes only those, and so does this.
    bound: HashSet<u32>,
}

impl RtpOutboxInterceptor {
    pub(crate) fn new(outbox: Arc<RtpOutbox>) -> Tapped<Self> {
        Tapped::new(RtpOutboxInterceptor { outbox, bound: HashSet::new() })
    }
}

impl PacketTap for RtpOutboxInterceptor {
    /// Swallows the wakes: their work is done once the loop turns.
    fn outbound(&mut self, msg: &TaggedPacket) -> bool {
        !matches!(&msg.message.packet, Packet::Rtp(p) if is_wake(p))
    }

    fn released(&mut self, out: &mut VecDeque<TaggedPacket>) {
        let queued = self.outbox.take();
        if queued.is_empty() {
            return;
        }
        let now = Instant::now();
        for p in queued {
            if self.bound.contains(&p.header.ssrc) {
                out.push_back(TaggedPacket { now, transport: Default::default(), message: Packet::Rtp(p).into() });
            }
        }
    }

    fn bind_local(&mut self, info: &StreamInfo) {
        self.bound.insert(info.ssrc);
    }

    fn unbind_local(&mut self, info: &StreamInfo) {
        self.bound.remove(&info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::Interceptor;
    use rtc::sansio::Protocol;

    fn media(ssrc: u32, seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.payload = Bytes::from_static(&[1, 2, 3]);
        p
    }

    fn tagged(p: rtp::Packet, now: Instant) -> TaggedPacket {
        TaggedPacket { now, transport: Default::default(), message: Packet::Rtp(p).into() }
    }

    fn seqs(i: &mut Tapped<RtpOutboxInterceptor>) -> Vec<(u32, u16)> {
        std::iter::from_fn(|| i.poll_write())
            .map(|m| match m.message.packet {
                Packet::Rtp(p) => (p.header.ssrc, p.header.sequence_number),
                _ => panic!("only RTP here"),
            })
            .collect()
    }

    #[test]
    fn one_wake_per_batch_and_the_wake_is_swallowed() {
        let outbox = Arc::new(RtpOutbox::default());
        let mut i = RtpOutboxInterceptor::new(Arc::clone(&outbox));
        i.bind_local_stream(&StreamInfo { ssrc: 7, ..Default::default() });
        let t0 = Instant::now();
        assert!(outbox.push(media(7, 1), t0).wake, "the first packet wakes the loop");
        assert!(!outbox.push(media(7, 2), t0).wake, "the wake is in flight");
        assert!(!outbox.push(media(7, 3), t0 + Duration::from_millis(5)).wake);
        i.handle_write(tagged(wake_packet(7, 96), t0)).unwrap();
        assert_eq!(seqs(&mut i), vec![(7, 1), (7, 2), (7, 3)], "in order, and no wake on the wire");
        assert!(outbox.push(media(7, 4), t0).wake, "a drained outbox wakes again");
        // A turn of the loop for any other reason releases it too.
        assert_eq!(seqs(&mut i), vec![(7, 4)]);
    }

    #[test]
    fn a_lost_wake_is_replaced() {
        let outbox = RtpOutbox::default();
        let t0 = Instant::now();
        assert!(outbox.push(media(7, 1), t0).wake);
        assert!(!outbox.push(media(7, 2), t0 + WAKE_STALE / 2).wake);
        assert!(outbox.push(media(7, 3), t0 + WAKE_STALE).wake, "a stale wake is sent again");
        outbox.wake_failed();
        assert!(outbox.push(media(7, 4), t0 + WAKE_STALE).wake, "a failed wake is sent again");
    }

    #[test]
    fn unbound_senders_are_not_released_and_a_full_outbox_drops_its_oldest() {
        let outbox = Arc::new(RtpOutbox::default());
        let mut i = RtpOutboxInterceptor::new(Arc::clone(&outbox));
        i.bind_local_stream(&StreamInfo { ssrc: 7, ..Default::default() });
        let t0 = Instant::now();
        outbox.push(media(8, 1), t0);
        outbox.push(media(7, 1), t0);
        assert_eq!(seqs(&mut i), vec![(7, 1)], "SSRC 8 is no sender of this connection");
        for s in 0..CAPACITY as u16 {
            assert!(!outbox.push(media(7, s), t0).dropped_oldest);
        }
        assert!(outbox.push(media(7, 9999), t0).dropped_oldest);
        assert_eq!(outbox.len(), CAPACITY);
        let out = seqs(&mut i);
        assert_eq!(out.first(), Some(&(7, 1)), "the oldest (seq 0) went");
        assert_eq!(out.last(), Some(&(7, 9999)));
        i.unbind_local_stream(&StreamInfo { ssrc: 7, ..Default::default() });
        outbox.push(media(7, 1), t0);
        assert!(seqs(&mut i).is_empty());
    }

    #[test]
    fn other_writes_pass_through() {
        let mut i = RtpOutboxInterceptor::new(Arc::new(RtpOutbox::default()));
        let now = Instant::now();
        i.handle_write(TaggedPacket { now, transport: Default::default(), message: Packet::Rtcp(Vec::new()).into() })
            .unwrap();
        assert!(matches!(i.poll_write().map(|m| m.message.packet), Some(Packet::Rtcp(_))));
        i.handle_read(tagged(media(1, 1), now)).unwrap();
        assert!(i.poll_read().is_some());
    }
}
