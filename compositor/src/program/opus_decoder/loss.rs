//! Which frame to decode, and how, around lost packets: a plain state machine, no libopus.
//!
//! With in-band FEC the decoder runs one frame behind (as GStreamer's `opusdec` does): the
//! packet after a lost one may carry a low-bitrate copy of it, so a lost frame is only decided
//! once the next frame is known.

/// 2.5 ms at 48 kHz: libopus conceals and recovers in multiples of this.
pub const PLC_STEP: u64 = 120;

/// One input frame: a packet, or a gap of `samples` (at 48 kHz) where packets were lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<P> {
    Packet(P),
    Missing { samples: u64 },
}

/// What to produce for the frame that leaves the delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<P> {
    Decode(P),
    /// The frame was lost: rebuild its `samples` from `next`'s FEC data.
    Recover {
        next: P,
        samples: u64,
    },
    /// The frame was lost: conceal `samples` (0: too short to conceal, output nothing).
    Conceal {
        samples: u64,
    },
}

#[derive(Debug)]
pub struct LossPlanner<P> {
    fec: bool,
    held: Option<Frame<P>>,
    /// Gap time not yet concealed (below one PLC step), carried to the next gap.
    leftover: u64,
}

impl<P: Clone> LossPlanner<P> {
    pub fn new(fec: bool) -> Self {
        LossPlanner { fec, held: None, leftover: 0 }
    }

    /// Takes the next input frame; returns what to produce for the oldest undecided one
    /// (nothing while the first frame waits for its successor, with FEC).
    pub fn push(&mut self, frame: Frame<P>) -> Option<Step<P>> {
        let frame = self.align(frame);
        if !self.fec {
            return Some(Self::alone(frame));
        }
        let previous = self.held.replace(frame)?;
        Some(match (previous, &self.held) {
            (Frame::Packet(p), _) => Step::Decode(p),
            (Frame::Missing { samples }, Some(Frame::Packet(next))) if samples > 0 => {
                Step::Recover { next: next.clone(), samples }
            }
            (Frame::Missing { samples }, _) => Step::Conceal { samples },
        })
    }

    /// At the end of the stream: the held frame, decided without a successor.
    pub fn drain(&mut self) -> Option<Step<P>> {
        self.held.take().map(Self::alone)
    }

    /// After a flush: nothing held, nothing owed.
    pub fn reset(&mut self) {
        self.held = None;
        self.leftover = 0;
    }

    fn alone(frame: Frame<P>) -> Step<P> {
        match frame {
            Frame::Packet(p) => Step::Decode(p),
            Frame::Missing { samples } => Step::Conceal { samples },
        }
    }

    /// Rounds a gap to the nearest PLC step, carrying the difference to the next gap.
    fn align(&mut self, frame: Frame<P>) -> Frame<P> {
        match frame {
            Frame::Packet(p) => Frame::Packet(p),
            Frame::Missing { samples } => {
                let total = samples + self.leftover;
                let aligned = (total + PLC_STEP / 2) / PLC_STEP * PLC_STEP;
                // A gap rounded up borrows from the next one.
                self.leftover = total.saturating_sub(aligned);
                Frame::Missing { samples: aligned }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u32) -> Frame<u32> {
        Frame::Packet(n)
    }
    fn missing(samples: u64) -> Frame<u32> {
        Frame::Missing { samples }
    }

    #[test]
    fn without_fec_every_frame_is_decided_at_once() {
        let mut p = LossPlanner::new(false);
        assert_eq!(p.push(packet(1)), Some(Step::Decode(1)));
        assert_eq!(p.push(missing(960)), Some(Step::Conceal { samples: 960 }));
        assert_eq!(p.push(packet(3)), Some(Step::Decode(3)));
        assert_eq!(p.drain(), None);
    }

    #[test]
    fn with_fec_a_lost_frame_is_rebuilt_from_the_next_packet() {
        let mut p = LossPlanner::new(true);
        assert_eq!(p.push(packet(1)), None);
        assert_eq!(p.push(missing(960)), Some(Step::Decode(1)));
        assert_eq!(p.push(packet(3)), Some(Step::Recover { next: 3, samples: 960 }));
        assert_eq!(p.push(packet(4)), Some(Step::Decode(3)));
        assert_eq!(p.drain(), Some(Step::Decode(4)));
        assert_eq!(p.drain(), None);
    }

    #[test]
    fn with_fec_a_loss_followed_by_a_loss_is_concealed() {
        let mut p = LossPlanner::new(true);
        assert_eq!(p.push(missing(960)), None);
        assert_eq!(p.push(missing(960)), Some(Step::Conceal { samples: 960 }));
        assert_eq!(p.push(packet(3)), Some(Step::Recover { next: 3, samples: 960 }));
        assert_eq!(p.push(missing(960)), Some(Step::Decode(3)));
        assert_eq!(p.drain(), Some(Step::Conceal { samples: 960 }));
    }

    #[test]
    fn gaps_are_rounded_to_plc_steps_and_the_rest_is_carried() {
        let mut p = LossPlanner::new(false);
        // 1 ms is too short to conceal: nothing now, carried to the next gap.
        assert_eq!(p.push(missing(48)), Some(Step::Conceal { samples: 0 }));
        // 20 ms + the carried 1 ms = 21 ms -> 20 ms (nearest 2.5 ms), 1 ms carried again.
        assert_eq!(p.push(missing(960)), Some(Step::Conceal { samples: 960 }));
        assert_eq!(p.push(missing(60 + 12)), Some(Step::Conceal { samples: 120 }));
        assert_eq!(p.leftover, 0);
        // 1.25 ms + 0 rounds up to one step; the 1.25 ms borrowed is not owed back.
        assert_eq!(p.push(missing(60)), Some(Step::Conceal { samples: 120 }));
        assert_eq!(p.leftover, 0);
        p.reset();
        assert_eq!(p.push(packet(1)), Some(Step::Decode(1)));
    }
}
