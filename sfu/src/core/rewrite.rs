//! Sequence-number and timestamp rewriting so a subscriber sees one continuous stream while
//! the forwarder switches between sources (simulcast layers, pauses, republished tracks).

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Mapping {
    src_ssrc: u32,
    /// First input sequence number forwarded from this source; older ones are dropped.
    base_in_seq: u16,
    seq_offset: u16,
    ts_offset: u32,
}

/// Maps input (ssrc, seq, ts) onto one output sequence/timestamp space.
///
/// The first packet of a new source continues right after the last packet sent: sequence
/// number + 1, timestamp advanced by the wall-clock time since then (at least 1 tick), so
/// decoders and jitter buffers see neither a gap nor a jump.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    clock_rate: u32,
    mapping: Option<Mapping>,
    /// Highest output sequence number and the timestamp that went with it.
    last_out: Option<(u16, u32, Instant)>,
    force_rebase: bool,
}

/// Output sequence number and timestamp of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Sequence number to send.
    pub seq: u16,
    /// RTP timestamp to send.
    pub ts: u32,
    /// True for the first packet after a source change.
    pub rebased: bool,
}

/// How far behind the newest packet a late one (reordered, or a resend) is still taken.
const RECENT: u16 = 0x1000;

fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl StreamRewriter {
    /// A rewriter for a stream with this RTP clock rate (90000 for video, 48000 for Opus).
    pub fn new(clock_rate: u32) -> Self {
        Self { clock_rate: clock_rate.max(1), mapping: None, last_out: None, force_rebase: false }
    }

    /// The next packet starts a new mapping even if it comes from the same SSRC (after a
    /// pause, say, where the source's own numbering kept running).
    pub fn rebase_next(&mut self) {
        self.force_rebase = true;
    }

    /// Rewrites one packet arriving at `now`; `None` means drop it (it predates the switch to
    /// its source, or belongs to a source we already left).
    pub fn rewrite(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) -> Option<Rewritten> {
        let mut rebased = false;
        let mapping = match self.mapping {
            Some(m) if m.src_ssrc == ssrc && !self.force_rebase => m,
            _ => {
                let m = match self.last_out {
                    None => Mapping { src_ssrc: ssrc, base_in_seq: seq, seq_offset: 0, ts_offset: 0 },
                    Some((out_seq, out_ts, at)) => {
                        let elapsed = now.saturating_duration_since(at);
                        let ticks = (elapsed.as_secs_f64() * self.clock_rate as f64) as u64;
                        let ticks = ticks.clamp(1, u32::MAX as u64 / 2) as u32;
                        let next_seq = out_seq.wrapping_add(1);
                        let next_ts = out_ts.wrapping_add(ticks);
                        Mapping {
                            src_ssrc: ssrc,
                            base_in_seq: seq,
                            seq_offset: next_seq.wrapping_sub(seq),
                            ts_offset: next_ts.wrapping_sub(ts),
                        }
                    }
                };
                self.mapping = Some(m);
                self.force_rebase = false;
                rebased = true;
                m
            }
        };
        if seq != mapping.base_in_seq && !seq_newer(seq, mapping.base_in_seq) {
            return None;
        }
        // The reference follows the stream: sequence numbers only compare within half their
        // space, so against a fixed base every packet from the 32,768th on would look older
        // than it and be dropped (a call lost its audio after 11 minutes and its video a few
        // minutes later). What stays behind it by more than RECENT is too late to matter.
        if seq.wrapping_sub(mapping.base_in_seq) > 2 * RECENT
            && let Some(m) = self.mapping.as_mut()
        {
            m.base_in_seq = seq.wrapping_sub(RECENT);
        }
        let out_seq = seq.wrapping_add(mapping.seq_offset);
        let out_ts = ts.wrapping_add(mapping.ts_offset);
        match self.last_out {
            Some((last, _, _)) if !seq_newer(out_seq, last) => {}
            _ => self.last_out = Some((out_seq, out_ts, now)),
        }
        Some(Rewritten { seq: out_seq, ts: out_ts, rebased })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_stream_goes_on_past_every_wrap() {
        // Four wraps of the sequence numbers (a 50 packet/s audio track for about 90 minutes),
        // starting anywhere: every packet passes, numbered on without a gap.
        let mut r = StreamRewriter::new(48_000);
        let t = Instant::now();
        let (mut seq, mut ts) = (60_000u16, 7u32);
        let mut last = None;
        for _ in 0..4 * 65_536 {
            let out = r.rewrite(1, seq, ts, t).expect("the packet passes");
            if let Some(l) = last {
                assert_eq!(out.seq, u16::wrapping_add(l, 1));
            }
            last = Some(out.seq);
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
        // A packet a little late still passes; one from before the switch does not.
        assert!(r.rewrite(1, seq.wrapping_sub(100), ts, t).is_some());
    }
    use std::time::Duration;

    #[test]
    fn passes_first_source_unchanged() {
        let t = Instant::now();
        let mut r = StreamRewriter::new(90_000);
        assert_eq!(r.rewrite(1, 100, 5000, t).map(|o| (o.seq, o.ts)), Some((100, 5000)));
        assert_eq!(r.rewrite(1, 101, 8000, t).map(|o| (o.seq, o.ts)), Some((101, 8000)));
        // Reordered old packet still maps, does not move the high-water mark.
        assert_eq!(r.rewrite(1, 99, 2000, t), None, "before the first forwarded packet");
    }

    #[test]
    fn switch_is_continuous() {
        let t = Instant::now();
        let mut r = StreamRewriter::new(90_000);
        r.rewrite(1, 65_534, 1000, t);
        r.rewrite(1, 65_535, 4000, t);
        // Switch 100 ms later to a source with unrelated numbering.
        let o = r.rewrite(2, 7, 123_456, t + Duration::from_millis(100)).unwrap();
        assert!(o.rebased);
        assert_eq!(o.seq, 0, "wraps to 0 right after 65535");
        assert_eq!(o.ts, 4000 + 9000);
        let o = r.rewrite(2, 8, 123_456 + 3000, t + Duration::from_millis(133)).unwrap();
        assert_eq!((o.seq, o.ts, o.rebased), (1, 4000 + 9000 + 3000, false));
        // A late packet of the new source from before the switch is dropped.
        assert_eq!(r.rewrite(2, 6, 120_000, t + Duration::from_millis(140)), None);
        // Going back to the old source rebases again.
        let o = r.rewrite(1, 3, 9_999, t + Duration::from_millis(200)).unwrap();
        assert_eq!(o.seq, 2);
        assert!(o.rebased);
    }

    #[test]
    fn rebase_same_ssrc_after_pause() {
        let t = Instant::now();
        let mut r = StreamRewriter::new(48_000);
        r.rewrite(5, 10, 0, t);
        r.rebase_next();
        let o = r.rewrite(5, 500, 480_000, t + Duration::from_millis(20)).unwrap();
        assert_eq!((o.seq, o.ts), (11, 960));
    }
}
