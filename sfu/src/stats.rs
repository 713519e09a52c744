//! Transport counters: what the peer connections' RTCP machinery did (NACKs, retransmissions,
//! keyframe requests, reports, congestion feedback), counted by a pass-through interceptor that
//! sits between the pacer and the NACK responder, so it sees the responder's retransmissions on
//! their way out and every inbound RTCP packet before anything consumes it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtc::interceptor::{Attribute, Packet, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use crate::tap::{PacketTap, Tapped};

/// Counters of one SFU (all its peer connections), monotonic.
#[derive(Debug, Default)]
pub struct TransportCounters {
    counters: [AtomicU64; Counter::ALL.len()],
}

/// What [`TransportCounters`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// RTCP NACK packets received (from subscribers).
    NacksReceived,
    /// Sequence numbers those NACKs asked for.
    NackedPackets,
    /// RTP packets resent in answer to NACKs (plain or RTX).
    RetransmittedPackets,
    /// Bytes of payload resent.
    RetransmittedBytes,
    /// RTCP NACK packets sent (to publishers).
    NacksSent,
    /// Picture loss indications received.
    PlisReceived,
    /// Full intra requests received.
    FirsReceived,
    /// Picture loss indications sent.
    PlisSent,
    /// Transport-wide congestion control feedback packets sent (to publishers).
    TwccFeedbackSent,
    /// Transport-wide congestion control feedback packets received (from subscribers).
    TwccFeedbackReceived,
    /// REMB packets received.
    RembReceived,
    /// Receiver reports sent.
    ReceiverReportsSent,
    /// Receiver reports received.
    ReceiverReportsReceived,
    /// Sender reports sent.
    SenderReportsSent,
    /// Publishers' RTX repairs of packets the SFU asked for, recovered (announced or simulcast).
    RepairsReceived,
    /// Resends not sent: over the connection's budget (a share of its receiver's estimate).
    ResendsOverBudget,
    /// Resends not sent: packets from before their stream's latest keyframe.
    ResendsBeforeKeyframe,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 17] = [
        Counter::NacksReceived,
        Counter::NackedPackets,
        Counter::RetransmittedPackets,
        Counter::RetransmittedBytes,
        Counter::NacksSent,
        Counter::PlisReceived,
        Counter::FirsReceived,
        Counter::PlisSent,
        Counter::TwccFeedbackSent,
        Counter::TwccFeedbackReceived,
        Counter::RembReceived,
        Counter::ReceiverReportsSent,
        Counter::ReceiverReportsReceived,
        Counter::SenderReportsSent,
        Counter::RepairsReceived,
        Counter::ResendsOverBudget,
        Counter::ResendsBeforeKeyframe,
    ];

    /// Prometheus metric name (a counter, `_total`).
    pub fn metric(self) -> &'static str {
        match self {
            Counter::NacksReceived => "tessera_sfu_nacks_received_total",
            Counter::NackedPackets => "tessera_sfu_nacked_packets_total",
            Counter::RetransmittedPackets => "tessera_sfu_retransmitted_packets_total",
            Counter::RetransmittedBytes => "tessera_sfu_retransmitted_bytes_total",
            Counter::NacksSent => "tessera_sfu_nacks_sent_total",
            Counter::PlisReceived => "tessera_sfu_plis_received_total",
            Counter::FirsReceived => "tessera_sfu_firs_received_total",
            Counter::PlisSent => "tessera_sfu_plis_sent_total",
            Counter::TwccFeedbackSent => "tessera_sfu_twcc_feedback_sent_total",
            Counter::TwccFeedbackReceived => "tessera_sfu_twcc_feedback_received_total",
            Counter::RembReceived => "tessera_sfu_remb_received_total",
            Counter::ReceiverReportsSent => "tessera_sfu_receiver_reports_sent_total",
            Counter::ReceiverReportsReceived => "tessera_sfu_receiver_reports_received_total",
            Counter::SenderReportsSent => "tessera_sfu_sender_reports_sent_total",
            Counter::RepairsReceived => "tessera_sfu_repairs_received_total",
            Counter::ResendsOverBudget => "tessera_sfu_resends_over_budget_total",
            Counter::ResendsBeforeKeyframe => "tessera_sfu_resends_before_keyframe_total",
        }
    }

    /// One-line description for `# HELP`.
    pub fn help(self) -> &'static str {
        match self {
            Counter::NacksReceived => "RTCP NACK packets received from subscribers.",
            Counter::NackedPackets => "RTP sequence numbers subscribers' NACKs asked for.",
            Counter::RetransmittedPackets => "RTP packets resent from the per-track send buffer in answer to NACKs.",
            Counter::RetransmittedBytes => "Payload bytes resent in answer to NACKs.",
            Counter::NacksSent => "RTCP NACK packets sent to publishers for packets lost on the way in.",
            Counter::PlisReceived => "Picture loss indications received.",
            Counter::FirsReceived => "Full intra requests received.",
            Counter::PlisSent => "Picture loss indications sent to publishers.",
            Counter::TwccFeedbackSent => "Transport-wide congestion control feedback packets sent to publishers.",
            Counter::TwccFeedbackReceived => {
                "Transport-wide congestion control feedback packets received from subscribers."
            }
            Counter::RembReceived => "REMB bandwidth estimates received.",
            Counter::ReceiverReportsSent => "RTCP receiver reports sent to publishers.",
            Counter::ReceiverReportsReceived => "RTCP receiver reports received from subscribers.",
            Counter::SenderReportsSent => "RTCP sender reports sent to subscribers.",
            Counter::RepairsReceived => "Publishers' RTX repairs of packets the SFU asked for, recovered.",
            Counter::ResendsOverBudget => {
                "Resends not sent: over the budget of a quarter of the receiver's REMB estimate."
            }
            Counter::ResendsBeforeKeyframe => "Resends not sent: packets from before their stream's latest keyframe.",
        }
    }
}

impl TransportCounters {
    /// The value of one counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter with its value.
    pub fn snapshot(&self) -> Vec<(Counter, u64)> {
        Counter::ALL.iter().map(|&c| (c, self.get(c))).collect()
    }

    fn count_rtcp(&self, packets: &[Box<dyn rtc::rtcp::Packet>], inbound: bool) {
        for p in packets {
            let a = p.as_any();
            if let Some(n) = a.downcast_ref::<TransportLayerNack>() {
                if inbound {
                    self.add(Counter::NacksReceived, 1);
                    let asked: u64 = n.nacks.iter().map(|pair| 1 + u64::from(pair.lost_packets.count_ones())).sum();
                    self.add(Counter::NackedPackets, asked);
                } else {
                    self.add(Counter::NacksSent, 1);
                }
            } else if a.is::<PictureLossIndication>() {
                self.add(if inbound { Counter::PlisReceived } else { Counter::PlisSent }, 1);
            } else if a.is::<FullIntraRequest>() && inbound {
                self.add(Counter::FirsReceived, 1);
            } else if a.is::<TransportLayerCc>() {
                self.add(if inbound { Counter::TwccFeedbackReceived } else { Counter::TwccFeedbackSent }, 1);
            } else if a.is::<ReceiverEstimatedMaximumBitrate>() && inbound {
                self.add(Counter::RembReceived, 1);
            } else if a.is::<ReceiverReport>() {
                self.add(if inbound { Counter::ReceiverReportsReceived } else { Counter::ReceiverReportsSent }, 1);
            } else if a.is::<SenderReport>() && !inbound {
                self.add(Counter::SenderReportsSent, 1);
            }
        }
    }
}

/// The counting tap: passes everything through unchanged.
pub(crate) struct CountingInterceptor {
    counters: Arc<TransportCounters>,
}

impl CountingInterceptor {
    pub(crate) fn new(counters: Arc<TransportCounters>) -> Tapped<Self> {
        Tapped::new(Self { counters })
    }
}

impl PacketTap for CountingInterceptor {
    fn inbound(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            self.counters.count_rtcp(packets, true);
        }
        out.push_back(msg);
    }

    fn outbound(&mut self, msg: &TaggedPacket) -> bool {
        match &msg.message.packet {
            Packet::Rtp(p) if msg.message.has(&Attribute::Retransmission) => {
                self.counters.add(Counter::RetransmittedPackets, 1);
                self.counters.add(Counter::RetransmittedBytes, p.payload.len() as u64);
            }
            Packet::Rtcp(packets) => self.counters.count_rtcp(packets, false),
            _ => {}
        }
        true
    }
}

/// Upper bounds (µs) of [`DelayHistogram`]'s buckets; the last bucket is unbounded.
pub const DELAY_BUCKETS_US: [u64; 18] =
    [25, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000, 100_000];

/// Forwarding delay: from the transport reading a publisher's packet from its socket to the
/// packet's copy for one subscriber leaving the socket (through the forwarding path, the
/// subscriber's peer connection with SRTP, and the send batch; see `delay.rs`). One sample per
/// forwarded copy.
#[derive(Debug, Default)]
pub struct DelayHistogram {
    buckets: [AtomicU64; DELAY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl DelayHistogram {
    /// Records one delay.
    pub fn record(&self, d: std::time::Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = DELAY_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(DELAY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Samples per bucket (not cumulative), the last one unbounded.
    pub fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    }

    /// Sum of all samples in µs.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }

    /// The bucket bound (µs) at or below which the fraction `q` of the samples fall; `None`
    /// without samples or beyond the last bound.
    pub fn quantile_bound_us(counts: &[u64], q: f64) -> Option<u64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return DELAY_BUCKETS_US.get(i).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delay_histogram_quantiles() {
        let h = DelayHistogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(40));
        }
        h.record(Duration::from_micros(900));
        h.record(Duration::from_secs(1));
        let c = h.counts();
        assert_eq!(c.iter().sum::<u64>(), 100);
        assert_eq!(DelayHistogram::quantile_bound_us(&c, 0.5), Some(50));
        assert_eq!(DelayHistogram::quantile_bound_us(&c, 0.99), Some(1_000));
        assert_eq!(DelayHistogram::quantile_bound_us(&c, 1.0), None);
        assert_eq!(DelayHistogram::quantile_bound_us(&[0; 19], 0.5), None);
    }
}
