//! The resend budget as an interceptor: NACK answers that do not fit a share of the
//! receiver's bandwidth estimate are not sent (see [`crate::core::resend`]).

use std::sync::Arc;

use rtc::interceptor::{Attribute, Packet, TaggedPacket};
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;

use crate::core::ResendBudget;
use crate::stats::{Counter, TransportCounters};
use crate::tap::{PacketTap, Tapped};

/// RTP header bytes counted with each resend's payload (fixed header, RTX's original
/// sequence number, a few header extensions).
const HEADER_BYTES: usize = 24;

/// Sits just below the NACK responder: sees its resends leave and every REMB arrive.
pub(crate) struct ResendLimiter {
    budget: ResendBudget,
    counters: Option<Arc<TransportCounters>>,
}

impl ResendLimiter {
    pub(crate) fn new(counters: Option<Arc<TransportCounters>>) -> Tapped<Self> {
        Tapped::new(ResendLimiter { budget: ResendBudget::new(), counters })
    }
}

impl PacketTap for ResendLimiter {
    fn inbound(&mut self, msg: TaggedPacket, out: &mut std::collections::VecDeque<TaggedPacket>) {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(remb) = p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                    if remb.bitrate.is_finite() && remb.bitrate > 0.0 {
                        self.budget.on_estimate(remb.bitrate.min(u64::MAX as f32) as u64, msg.now);
                    }
                }
            }
        }
        out.push_back(msg);
    }

    fn outbound(&mut self, msg: &TaggedPacket) -> bool {
        let Packet::Rtp(p) = &msg.message.packet else { return true };
        if !msg.message.has(&Attribute::Retransmission) || self.budget.allow(p.payload.len() + HEADER_BYTES, msg.now) {
            return true;
        }
        if let Some(c) = &self.counters {
            c.add(Counter::ResendsOverBudget, 1);
        }
        false
    }
}
