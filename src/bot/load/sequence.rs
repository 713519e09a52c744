//! Packets expected, received and lost on one RTP stream, from its sequence numbers (with
//! wrap-around), so that loss is what never arrived: a packet repaired by a retransmission or
//! merely reordered fills its gap, and a duplicate counts once (RFC 3550, appendix A.1). A
//! plain state machine fed with each packet's sequence number.

/// A jump ahead of more than this many sequence numbers (RFC 3550's `MAX_DROPOUT`) counts only
/// once the next packet follows it: a lone packet that far off is a stray.
const MAX_DROPOUT: i64 = 3000;
/// Sequence numbers remembered behind the highest one: a packet up to this far behind (a
/// retransmission answering a NACK, a reordered packet) still fills its gap, and a duplicate
/// within it is recognised. Older packets are discarded, as a receiver's jitter buffer would.
const WINDOW: i64 = 2048;
const WINDOW_WORDS: usize = (WINDOW / 64) as usize;

/// What became of one packet in the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Newer than any before it (perhaps after a gap).
    Next,
    /// Older than the newest but not seen before: reordered, or a repair.
    Late,
    /// Seen already.
    Duplicate,
    /// Too far behind (beyond the window) or too far off (a jump the next packet has not
    /// confirmed yet): not counted.
    Discarded,
}

impl Arrival {
    /// Whether the packet counts as received (its bytes and, for video, its frame).
    pub fn counts(self) -> bool {
        matches!(self, Arrival::Next | Arrival::Late)
    }
}

/// One run of sequence numbers, in extended (wrap-free) numbers.
#[derive(Debug, Clone)]
struct Run {
    base: i64,
    highest: i64,
    received: u64,
    /// Which of the last [`WINDOW`] sequence numbers arrived (bit `ext mod WINDOW`).
    seen: [u64; WINDOW_WORDS],
}

impl Run {
    fn starting_at(ext: i64) -> Run {
        let mut run = Run { base: ext, highest: ext, received: 1, seen: [0; WINDOW_WORDS] };
        run.mark(ext);
        run
    }

    fn slot(ext: i64) -> (usize, u64) {
        let bit = ext.rem_euclid(WINDOW) as usize;
        (bit / 64, 1u64 << (bit % 64))
    }

    fn mark(&mut self, ext: i64) {
        let (word, mask) = Run::slot(ext);
        self.seen[word] |= mask;
    }

    fn is_marked(&self, ext: i64) -> bool {
        let (word, mask) = Run::slot(ext);
        self.seen[word] & mask != 0
    }

    /// Moves the highest number forward, forgetting the slots the new numbers reuse.
    fn advance_to(&mut self, ext: i64) {
        if ext - self.highest >= WINDOW {
            self.seen = [0; WINDOW_WORDS];
        } else {
            for gap in self.highest + 1..=ext {
                let (word, mask) = Run::slot(gap);
                self.seen[word] &= !mask;
            }
        }
        self.highest = ext;
    }

    fn expected(&self) -> u64 {
        (self.highest - self.base + 1) as u64
    }
}

/// Packets expected, received and lost on one RTP stream, from its sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct SequenceCounter {
    run: Option<Run>,
    /// Expected and received packets of the runs before a restart of the sequence.
    earlier_expected: u64,
    earlier_received: u64,
    /// After a big jump: the number that, arriving next, confirms the restart.
    restart_at: Option<u16>,
    duplicates: u64,
    discarded: u64,
}

impl SequenceCounter {
    pub fn on_packet(&mut self, seq: u16) -> Arrival {
        let Some(run) = &mut self.run else {
            self.run = Some(Run::starting_at(i64::from(seq)));
            return Arrival::Next;
        };
        // The extended number closest to the highest so far: wraps at 65535 → 0 either way.
        let delta = i64::from(seq.wrapping_sub(run.highest as u16) as i16);
        let ext = run.highest + delta;
        if delta > 0 && delta <= MAX_DROPOUT {
            self.restart_at = None;
            run.advance_to(ext);
            run.mark(ext);
            run.received += 1;
            return Arrival::Next;
        }
        if delta <= 0 && -delta < WINDOW {
            if ext < run.base {
                // Older than the first packet we saw, which was itself reordered.
                run.base = ext;
            } else if run.is_marked(ext) {
                self.duplicates += 1;
                return Arrival::Duplicate;
            }
            run.mark(ext);
            run.received += 1;
            return Arrival::Late;
        }
        // A big jump either way, confirmed by the next packet following it: forward, a long
        // outage (everything in between was lost); backward, the sender started over (a new
        // run). Unconfirmed, a stray packet.
        if self.restart_at == Some(seq) {
            self.restart_at = None;
            // The packet before this one was discarded as a stray; it counts now.
            self.discarded = self.discarded.saturating_sub(1);
            if delta < 0 {
                self.earlier_expected += run.expected();
                self.earlier_received += run.received;
                *run = Run::starting_at(ext - 1);
                run.received = 0;
            }
            run.advance_to(ext);
            run.mark(ext - 1);
            run.mark(ext);
            run.received += 2;
            return Arrival::Next;
        }
        self.restart_at = Some(seq.wrapping_add(1));
        self.discarded += 1;
        Arrival::Discarded
    }

    /// Distinct packets received (duplicates and discarded packets left out).
    pub fn received(&self) -> u64 {
        self.earlier_received + self.run.as_ref().map_or(0, |r| r.received)
    }

    /// Packets the sequence numbers say were sent, from the first received to the newest.
    pub fn expected(&self) -> u64 {
        self.earlier_expected + self.run.as_ref().map_or(0, Run::expected)
    }

    /// Packets that never arrived (a gap still open now may yet be repaired).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn discarded(&self) -> u64 {
        self.discarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: impl IntoIterator<Item = u16>) -> (SequenceCounter, Vec<Arrival>) {
        let mut counter = SequenceCounter::default();
        let arrivals = seqs.into_iter().map(|s| counter.on_packet(s)).collect();
        (counter, arrivals)
    }

    #[test]
    fn a_gap_is_loss() {
        let (c, _) = feed([10, 11, 12, 15, 16]);
        assert_eq!((c.expected(), c.received(), c.lost()), (7, 5, 2));
    }

    #[test]
    fn wrap_around_is_neither_loss_nor_a_restart() {
        let (c, arrivals) = feed([65533, 65534, 65535, 0, 1, 3]);
        assert!(arrivals.iter().all(|a| *a == Arrival::Next), "{arrivals:?}");
        assert_eq!((c.expected(), c.received(), c.lost()), (7, 6, 1));
        // A gap across the wrap.
        let (c, _) = feed([65534, 1, 2]);
        assert_eq!((c.expected(), c.lost()), (5, 2));
    }

    #[test]
    fn reordered_and_repaired_packets_fill_their_gaps() {
        let (c, arrivals) = feed([1, 3, 2, 5, 6, 7, 4]);
        assert_eq!(arrivals[2], Arrival::Late);
        assert_eq!(arrivals[6], Arrival::Late);
        assert_eq!((c.expected(), c.received(), c.lost()), (7, 7, 0));
        // A retransmission a few hundred packets later, across the wrap.
        let mut seqs: Vec<u16> = (65000..=65535).chain(0..=300).filter(|s| *s != 65400).collect();
        seqs.push(65400);
        let (c, arrivals) = feed(seqs);
        assert_eq!(arrivals.last(), Some(&Arrival::Late));
        assert_eq!((c.received(), c.lost()), (837, 0));
    }

    #[test]
    fn a_packet_before_the_first_one_counts() {
        let (c, arrivals) = feed([101, 100, 102]);
        assert_eq!(arrivals, [Arrival::Next, Arrival::Late, Arrival::Next]);
        assert_eq!((c.expected(), c.received(), c.lost()), (3, 3, 0));
    }

    #[test]
    fn duplicates_count_once() {
        let (c, arrivals) = feed([1, 2, 2, 3, 1, 3]);
        assert_eq!(arrivals[2], Arrival::Duplicate);
        assert_eq!((c.received(), c.duplicates(), c.lost()), (3, 3, 0));
    }

    #[test]
    fn packets_older_than_the_window_are_discarded() {
        let mut seqs: Vec<u16> = (0..3000).filter(|s| *s != 10).collect();
        seqs.push(10);
        let (c, arrivals) = feed(seqs);
        assert_eq!(arrivals.last(), Some(&Arrival::Discarded));
        assert_eq!((c.lost(), c.discarded()), (1, 1));
        // The window's slots are reused: an old duplicate is not taken for a new packet.
        let (c, _) = feed((0..5000).chain([4000, 4999]));
        assert_eq!((c.received(), c.duplicates(), c.lost()), (5000, 2, 0));
    }

    #[test]
    fn a_lone_far_packet_is_a_stray() {
        let (c, arrivals) = feed([1, 2, 40_000, 3, 4]);
        assert_eq!(arrivals[2], Arrival::Discarded);
        assert_eq!((c.expected(), c.received(), c.lost(), c.discarded()), (4, 4, 0, 1));
    }

    #[test]
    fn a_long_outage_confirmed_by_the_next_packet_is_loss() {
        let (c, arrivals) = feed([1, 2, 5002, 5003, 5004]);
        assert_eq!(arrivals[2..], [Arrival::Discarded, Arrival::Next, Arrival::Next]);
        assert_eq!((c.expected(), c.received(), c.lost(), c.discarded()), (5004, 5, 4999, 0));
    }

    #[test]
    fn a_sequence_started_over_is_a_new_run() {
        let (c, _) = feed([30_000, 30_001, 30_003, 100, 101, 102]);
        // First run: 4 expected, 3 received; second: 3 and 3.
        assert_eq!((c.expected(), c.received(), c.lost(), c.discarded()), (7, 6, 1, 0));
    }
}
