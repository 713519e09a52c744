//! The forwarding delay as a subscriber's network sees it: from the moment the transport read
//! a publisher's packet from its socket to the moment the copy for one subscriber left the
//! socket.
//!
//! A packet's arrival is the instant the shared transport read its datagram (the peer
//! connection hands it up with the packet, see `transport/`). The forwarder notes each copy's
//! arrival by its outgoing SSRC and sequence number ([`ArrivalLog`]); the transport looks the
//! copy up in the (unencrypted) RTP header of each datagram it has sent and records the
//! difference into the [`DelayHistogram`]. Retransmissions are not samples.
//!
//! The probe times one copy in `sample` (by sequence number); off (`sample` 0), it notes
//! nothing and a departing datagram costs one comparison, no lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::stats::DelayHistogram;
use crate::sync::{lock, read, write};

/// Arrivals remembered per outgoing stream (by sequence number modulo this): more than the
/// connection's send queue and a track's backlog hold, so a copy is still there when it leaves.
const RING: usize = 2048;

/// Arrival times of one outgoing stream's packets: (sequence number, µs since the epoch + 1;
/// 0 when empty).
type Ring = Box<[(u16, u64)]>;

/// Arrival times of the SFU's outgoing streams, and the histogram departures are timed into.
///
/// Lock order: `streams`, then one stream's ring (`departed`); each is also taken alone.
pub(crate) struct ForwardDelay {
    epoch: Instant,
    /// One copy in this many is timed; 0: none.
    sample: u16,
    streams: RwLock<HashMap<u32, Arc<Mutex<Ring>>>>,
    histogram: Arc<DelayHistogram>,
}

impl ForwardDelay {
    /// A probe timing one copy in `sample` (0: none) into `histogram`.
    pub(crate) fn new(histogram: Arc<DelayHistogram>, sample: u16) -> Arc<Self> {
        Arc::new(ForwardDelay { epoch: Instant::now(), sample, streams: RwLock::new(HashMap::new()), histogram })
    }

    /// Whether the probe times anything.
    pub(crate) fn is_on(&self) -> bool {
        self.sample > 0
    }

    /// Whether the copy numbered `seq` is timed.
    #[inline]
    fn sampled(&self, seq: u16) -> bool {
        self.sample > 0 && seq.is_multiple_of(self.sample)
    }

    /// Starts noting the arrivals of the outgoing stream `ssrc`; stops when the log is dropped.
    /// Off, the log notes nothing.
    pub(crate) fn log(self: &Arc<Self>, ssrc: u32) -> Option<ArrivalLog> {
        if !self.is_on() {
            return None;
        }
        let ring: Arc<Mutex<Ring>> = Arc::new(Mutex::new(vec![(0u16, 0u64); RING].into_boxed_slice()));
        write(&self.streams).insert(ssrc, Arc::clone(&ring));
        Some(ArrivalLog { owner: Arc::clone(self), ssrc, ring })
    }

    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros().min(u64::MAX as u128 - 1) as u64 + 1
    }

    /// A packet of stream `ssrc` leaves now: records its delay if its arrival is known.
    pub(crate) fn departed(&self, ssrc: u32, seq: u16, now: Instant) {
        if !self.sampled(seq) {
            return;
        }
        let arrived = {
            // Per packet: looked up under the read lock, no reference taken.
            let streams = read(&self.streams);
            let Some(ring) = streams.get(&ssrc) else { return };
            let mut r = lock(ring);
            let slot = &mut r[seq as usize % RING];
            if slot.0 != seq || slot.1 == 0 {
                return;
            }
            // Once only (a resend without RTX reuses the number).
            std::mem::replace(&mut slot.1, 0)
        };
        let us = self.micros(now).saturating_sub(arrived);
        self.histogram.record(std::time::Duration::from_micros(us));
    }
}

/// Notes the arrivals of one outgoing stream (held by its writer).
pub(crate) struct ArrivalLog {
    owner: Arc<ForwardDelay>,
    ssrc: u32,
    ring: Arc<Mutex<Ring>>,
}

impl ArrivalLog {
    /// The copy with this sequence number reached the forwarder at `arrived`.
    pub(crate) fn arrived(&self, seq: u16, arrived: Instant) {
        if !self.owner.sampled(seq) {
            return;
        }
        let us = self.owner.micros(arrived);
        lock(&self.ring)[seq as usize % RING] = (seq, us);
    }
}

impl Drop for ArrivalLog {
    fn drop(&mut self) {
        let mut streams = write(&self.owner.streams);
        if streams.get(&self.ssrc).is_some_and(|r| Arc::ptr_eq(r, &self.ring)) {
            streams.remove(&self.ssrc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_departure_is_timed_from_its_arrival_once() {
        let h = Arc::new(DelayHistogram::default());
        let d = ForwardDelay::new(Arc::clone(&h), 1);
        let log = d.log(42).expect("on");
        let t0 = Instant::now();
        log.arrived(7, t0);
        log.arrived(8, t0);
        d.departed(42, 7, t0 + Duration::from_micros(400));
        d.departed(42, 7, t0 + Duration::from_millis(900)); // a resend: not a sample
        d.departed(43, 8, t0 + Duration::from_micros(10)); // another stream
        d.departed(42, 9, t0 + Duration::from_micros(10)); // never arrived
        let c = h.counts();
        assert_eq!(c.iter().sum::<u64>(), 1, "{c:?}");
        assert_eq!(DelayHistogram::quantile_bound_us(&c, 1.0), Some(500));
        // A wrapped slot holds a newer number: the old one is not matched.
        log.arrived(8 + RING as u16, t0);
        d.departed(42, 8, t0 + Duration::from_micros(10));
        assert_eq!(h.counts().iter().sum::<u64>(), 1);
        drop(log);
        assert!(read(&d.streams).is_empty(), "the log unregisters its stream");
    }

    #[test]
    fn sampled_one_in_four_or_off() {
        let h = Arc::new(DelayHistogram::default());
        let d = ForwardDelay::new(Arc::clone(&h), 4);
        let log = d.log(42).expect("on");
        let t0 = Instant::now();
        for seq in 0..16u16 {
            log.arrived(seq, t0);
            d.departed(42, seq, t0 + Duration::from_micros(100));
        }
        assert_eq!(h.counts().iter().sum::<u64>(), 4, "seq 0, 4, 8 and 12");
        let off = ForwardDelay::new(Arc::clone(&h), 0);
        assert!(off.log(43).is_none());
        off.departed(43, 0, t0);
        assert!(read(&off.streams).is_empty());
        assert_eq!(h.counts().iter().sum::<u64>(), 4);
    }
}
