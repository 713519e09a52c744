//! Hands a subscriber's forwarded packets to its peer connection.
//!
//! Each packet goes into the connection's [`RtpOutbox`], from which the connection's event loop
//! takes everything queued on its next turn; the first packet of a batch wakes the loop with
//! one small write through the track (see `outbox.rs`). The forwarding path never waits: a
//! full outbox drops its oldest packet, so a slow subscriber loses packets and never slows
//! the publisher or the others.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use rtc::rtp;
use webrtc::media_stream::track_local::TrackLocal;

use crate::delay::ArrivalLog;
use crate::outbox::{RtpOutbox, wake_packet};

/// Polls a future once, outside the runtime's cooperative budget (an exhausted budget would
/// make a free lock or queue look busy).
pub(crate) fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(tokio::task::unconstrained(fut));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// One subscribed track's writer.
pub(crate) struct SubscriberWriter {
    track: Arc<dyn TrackLocal>,
    outbox: Arc<RtpOutbox>,
    /// Where each packet's arrival is noted, for the forwarding delay.
    arrivals: Option<ArrivalLog>,
}

impl SubscriberWriter {
    /// A writer into `track` through its connection's `outbox`, noting each packet's arrival
    /// into `arrivals`.
    pub(crate) fn new(track: Arc<dyn TrackLocal>, outbox: Arc<RtpOutbox>, arrivals: Option<ArrivalLog>) -> Self {
        SubscriberWriter { track, outbox, arrivals }
    }

    /// Writes a packet that arrived at `arrived`; false when a packet was dropped for it.
    pub(crate) fn write(&self, p: rtp::Packet, arrived: Instant) -> bool {
        if let Some(log) = &self.arrivals {
            log.arrived(p.header.sequence_number, arrived);
        }
        let (ssrc, pt) = (p.header.ssrc, p.header.payload_type);
        let pushed = self.outbox.push(p, arrived);
        if pushed.wake {
            // Completes at once unless the loop's channel is full (then the loop has events
            // to handle and drains the outbox on its turn anyway) or the track is not bound
            // yet; either way the next packet tries again.
            if !matches!(poll_once(self.track.write_rtp(wake_packet(ssrc, pt))), Some(Ok(()))) {
                self.outbox.wake_failed();
            }
        }
        !pushed.dropped_oldest
    }
}
