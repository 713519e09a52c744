//! A received stream's packets back in order. A packet after a gap waits until the gap is
//! filled (a repair usually comes one round trip later) or for at most the hold time, then
//! goes on; a packet that comes after those behind it went on goes on at once (late). In
//! order matters to what reads the stream next: a subscriber's layer switch starts at the
//! first packet of a keyframe, and a keyframe whose first packet was repaired after the rest
//! of it arrived would otherwise start a subscriber's picture without the rest of the frame.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rtc::rtp;

/// Packets waiting per stream at most (beyond, the oldest goes on).
const MAX_WAITING: usize = 512;

/// One stream's reordering.
#[derive(Default)]
pub(crate) struct InOrder {
    /// The extended sequence number expected next.
    next: Option<u64>,
    /// Packets after a gap: when they arrived, and the packet.
    waiting: BTreeMap<u64, (Instant, rtp::Packet)>,
}

impl InOrder {
    /// A packet with extended sequence number `ext` arrived at `now`: what goes on now.
    pub(crate) fn push(&mut self, ext: u64, packet: rtp::Packet, now: Instant) -> Vec<rtp::Packet> {
        let next = *self.next.get_or_insert(ext);
        if ext < next {
            return vec![packet];
        }
        if ext > next {
            self.waiting.insert(ext, (now, packet));
            if self.waiting.len() > MAX_WAITING {
                return self.skip_to_first();
            }
            return Vec::new();
        }
        let mut out = vec![packet];
        self.next = Some(ext + 1);
        self.drain(&mut out);
        out
    }

    /// Packets that waited `hold` or more go on, skipping the gap before them.
    pub(crate) fn release_overdue(&mut self, now: Instant, hold: Duration) -> Vec<rtp::Packet> {
        let mut out = Vec::new();
        while self.waiting.first_key_value().is_some_and(|(_, (at, _))| now.saturating_duration_since(*at) >= hold) {
            out.extend(self.skip_to_first());
        }
        out
    }

    /// When the oldest waiting packet is due.
    pub(crate) fn next_due(&self, hold: Duration) -> Option<Instant> {
        self.waiting.first_key_value().map(|(_, (at, _))| *at + hold)
    }

    fn skip_to_first(&mut self) -> Vec<rtp::Packet> {
        let Some((ext, (_, p))) = self.waiting.pop_first() else { return Vec::new() };
        let mut out = vec![p];
        self.next = Some(ext + 1);
        self.drain(&mut out);
        out
    }

    fn drain(&mut self, out: &mut Vec<rtp::Packet>) {
        while let Some(next) = self.next
            && let Some((_, p)) = self.waiting.remove(&next)
        {
            out.push(p);
            self.next = Some(next + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.sequence_number = seq;
        p
    }

    fn seqs(ps: Vec<rtp::Packet>) -> Vec<u16> {
        ps.into_iter().map(|p| p.header.sequence_number).collect()
    }

    #[test]
    fn a_gap_holds_what_follows_until_it_is_filled_or_overdue() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut o = InOrder::default();
        assert_eq!(seqs(o.push(10, p(10), t)), [10]);
        assert!(o.push(12, p(12), t).is_empty());
        assert!(o.push(13, p(13), t + ms(1)).is_empty());
        assert_eq!(o.next_due(ms(30)), Some(t + ms(30)));
        assert_eq!(seqs(o.push(11, p(11), t + ms(5))), [11, 12, 13], "the repair releases the rest in order");
        assert!(o.push(15, p(15), t + ms(10)).is_empty());
        assert!(o.release_overdue(t + ms(39), ms(30)).is_empty());
        assert_eq!(seqs(o.release_overdue(t + ms(40), ms(30))), [15], "overdue: the gap is skipped");
        assert_eq!(seqs(o.push(14, p(14), t + ms(50))), [14], "late: on at once");
        assert_eq!(seqs(o.push(16, p(16), t + ms(51))), [16]);
    }

    #[test]
    fn too_many_waiting_let_the_oldest_go() {
        let t = Instant::now();
        let mut o = InOrder::default();
        o.push(0, p(0), t);
        let mut out = Vec::new();
        for s in 2..(2 + MAX_WAITING as u64 + 1) {
            out.extend(o.push(s, p(s as u16), t));
        }
        assert_eq!(seqs(out).len(), MAX_WAITING + 1);
    }
}
