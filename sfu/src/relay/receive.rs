//! The receiving side of one stream on a relay link: which sequence numbers are missing, when
//! to ask for them again (NACK, RFC 4585), when to give up, and the loss figures a receiver
//! report carries. Pure: the time is an argument.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A gap larger than this is a restart of the stream, not loss: no NACKs for it.
const MAX_GAP: u64 = 512;

/// What became of a packet that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// New (in order, or after a gap).
    New,
    /// One that was missing: late, or repaired.
    Recovered,
    /// Neither new nor missing: already received, or given up on.
    Stale,
}

struct Missing {
    since: Instant,
    asked: Option<Instant>,
    tries: u8,
}

/// One stream's reception.
#[derive(Default)]
pub(crate) struct ReceiveStream {
    /// Highest extended sequence number received.
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
    pub(crate) received: u64,
    pub(crate) recovered: u64,
    /// Packets given up on.
    pub(crate) lost: u64,
    /// At the last receiver report: (expected, received).
    reported: (u64, u64),
}

impl ReceiveStream {
    /// The extended sequence number of `seq` (nearest to the highest so far).
    pub(crate) fn extend(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else { return u64::from(seq) + (1 << 16) };
        let base = highest & !0xffff;
        [base.wrapping_sub(1 << 16), base, base + (1 << 16)]
            .into_iter()
            .map(|b| b.wrapping_add(u64::from(seq)))
            .min_by_key(|e| e.abs_diff(highest))
            .unwrap_or(base + u64::from(seq))
    }

    /// Notes the arrival of sequence number `seq` at `now`.
    pub(crate) fn arrived(&mut self, seq: u16, now: Instant) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(u64::from(seq) + (1 << 16));
            self.received += 1;
            return Arrival::New;
        };
        // The extended number nearest to the highest (RFC 3550 A.1's unwrapping).
        let base = highest & !0xffff;
        let ext = [base.wrapping_sub(1 << 16), base, base + (1 << 16)]
            .into_iter()
            .map(|b| b + u64::from(seq))
            .min_by_key(|e| e.abs_diff(highest))
            .unwrap_or(base + u64::from(seq));
        if ext > highest {
            if ext - highest > MAX_GAP {
                self.missing.clear();
            } else {
                for s in highest + 1..ext {
                    self.missing.insert(s, Missing { since: now, asked: None, tries: 0 });
                }
            }
            self.highest = Some(ext);
            self.received += 1;
            return Arrival::New;
        }
        if self.missing.remove(&ext).is_some() {
            self.received += 1;
            self.recovered += 1;
            return Arrival::Recovered;
        }
        Arrival::Stale
    }

    /// The sequence numbers to ask for at `now`: missing ones not asked for yet, and those
    /// asked for more than `interval` ago; each at most `max_tries` times, and none missing
    /// for longer than `give_up` (counted lost then).
    pub(crate) fn due(&mut self, now: Instant, interval: Duration, max_tries: u8, give_up: Duration) -> Vec<u16> {
        let mut due = Vec::new();
        let mut gone = Vec::new();
        for (&seq, m) in self.missing.iter_mut() {
            let waited = m.asked.map(|t| now.saturating_duration_since(t));
            if now.saturating_duration_since(m.since) > give_up || (m.tries >= max_tries && waited >= Some(interval)) {
                gone.push(seq);
            } else if m.tries < max_tries && waited.is_none_or(|w| w >= interval) {
                m.asked = Some(now);
                m.tries += 1;
                due.push(seq as u16);
            }
        }
        for seq in gone {
            self.missing.remove(&seq);
            self.lost += 1;
        }
        due
    }

    /// The earliest time [`ReceiveStream::due`] has something to do.
    pub(crate) fn next_due(&self, interval: Duration, give_up: Duration) -> Option<Instant> {
        self.missing.values().map(|m| m.asked.map_or(m.since, |t| (t + interval).min(m.since + give_up))).min()
    }

    /// For a receiver report: the fraction lost since the last one (RFC 3550: of 256), the
    /// cumulative number lost, and the extended highest sequence number.
    pub(crate) fn report(&mut self) -> (u8, u32, u32) {
        let Some(highest) = self.highest else { return (0, 0, 0) };
        let first = self.first();
        let expected = highest + 1 - first;
        let (e0, r0) = self.reported;
        let (de, dr) = (expected.saturating_sub(e0), self.received.saturating_sub(r0));
        self.reported = (expected, self.received);
        let fraction = if de == 0 || dr >= de { 0 } else { (((de - dr) << 8) / de).min(255) as u8 };
        let cumulative = expected.saturating_sub(self.received).min(0x7f_ffff) as u32;
        (fraction, cumulative, (highest - (1 << 16)) as u32)
    }

    /// The extended sequence number the stream started at (as if nothing came before).
    fn first(&self) -> u64 {
        let highest = self.highest.unwrap_or(0);
        (highest + 1).saturating_sub(self.received + self.missing.len() as u64 + self.lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn gaps_are_asked_for_again_until_repaired_or_given_up() {
        let t = Instant::now();
        let mut r = ReceiveStream::default();
        assert_eq!(r.arrived(65534, t), Arrival::New);
        // 65535 and 0 lost across the wrap.
        assert_eq!(r.arrived(1, t), Arrival::New);
        assert_eq!(r.due(t, 20 * MS, 3, 1000 * MS), vec![65535, 0]);
        assert!(r.due(t + 10 * MS, 20 * MS, 3, 1000 * MS).is_empty(), "not again before the interval");
        assert_eq!(r.next_due(20 * MS, 1000 * MS), Some(t + 20 * MS));
        assert_eq!(r.arrived(0, t + 15 * MS), Arrival::Recovered);
        assert_eq!(r.arrived(0, t + 16 * MS), Arrival::Stale, "a duplicate");
        assert_eq!(r.due(t + 20 * MS, 20 * MS, 3, 1000 * MS), vec![65535]);
        assert_eq!(r.due(t + 40 * MS, 20 * MS, 3, 1000 * MS), vec![65535]);
        assert!(r.due(t + 50 * MS, 20 * MS, 3, 1000 * MS).is_empty());
        assert_eq!(r.lost, 0);
        // Three tries and an interval after the last: lost.
        assert!(r.due(t + 60 * MS, 20 * MS, 3, 1000 * MS).is_empty());
        assert_eq!(r.lost, 1);
        assert_eq!(r.arrived(65535, t + 70 * MS), Arrival::Stale, "too late");
        assert_eq!((r.received, r.recovered), (3, 1));
    }

    #[test]
    fn a_huge_jump_is_a_restart_and_old_ones_give_up() {
        let t = Instant::now();
        let mut r = ReceiveStream::default();
        r.arrived(10, t);
        r.arrived(12, t);
        r.arrived(5000, t);
        assert!(r.due(t, 20 * MS, 3, 100 * MS).is_empty(), "the gap before a restart is not asked for");
        r.arrived(5002, t);
        assert_eq!(r.due(t, 20 * MS, 10, 100 * MS), vec![5001]);
        assert!(r.due(t + 101 * MS, 20 * MS, 10, 100 * MS).is_empty());
        assert_eq!(r.lost, 1, "missing for longer than the give-up time");
        assert_eq!(r.arrived(3, t), Arrival::Stale, "older than everything");
    }

    #[test]
    fn receiver_reports_count_loss_since_the_last() {
        let t = Instant::now();
        let mut r = ReceiveStream::default();
        for seq in 0..100u16 {
            if seq % 10 != 5 {
                r.arrived(seq, t);
            }
        }
        let (fraction, cumulative, highest) = r.report();
        assert_eq!(cumulative, 10);
        assert_eq!(fraction, (10 * 256 / 100) as u8);
        assert_eq!(highest, 99);
        for seq in 100..200u16 {
            r.arrived(seq, t);
        }
        let (fraction, cumulative, _) = r.report();
        assert_eq!((fraction, cumulative), (0, 10));
    }
}
