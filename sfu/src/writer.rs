//! Hands a subscriber's forwarded packets to its peer connection.
//!
//! The fast path writes each packet straight into the connection's send queue from the
//! forwarding path (`write_rtp` completes at once unless that queue is full), so a packet
//! costs no task hop of its own. When the connection's queue is full the packet waits in a
//! bounded per-track backlog drained by a task, and later packets queue behind it until the
//! backlog is empty, so order is kept; a full backlog drops the packet (a slow subscriber
//! loses packets, it never slows the publisher or the others).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use rtc::rtp;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;

use crate::delay::ArrivalLog;

/// Packets a track may hold back while its connection's queue is full.
const BACKLOG: usize = 1024;

/// Polls a future once, outside the runtime's cooperative budget (an exhausted budget would
/// make a free lock or queue look busy).
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(tokio::task::unconstrained(fut));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// One subscribed track's writer.
pub(crate) struct SubscriberWriter {
    track: Arc<dyn TrackLocal>,
    backlog: mpsc::Sender<rtp::Packet>,
    /// Packets in the backlog or being written from it.
    queued: Arc<AtomicUsize>,
    /// Where each packet's arrival is noted, for the forwarding delay.
    arrivals: Option<ArrivalLog>,
}

impl SubscriberWriter {
    /// A writer into `track`, noting each packet's arrival into `arrivals`. Spawns the
    /// backlog's task on the current runtime; it ends when the writer is dropped.
    pub(crate) fn new(track: Arc<dyn TrackLocal>, arrivals: Option<ArrivalLog>) -> Self {
        let (backlog, mut rx) = mpsc::channel::<rtp::Packet>(BACKLOG);
        let queued = Arc::new(AtomicUsize::new(0));
        let (t, q) = (Arc::clone(&track), Arc::clone(&queued));
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let _ = t.write_rtp(p).await;
                q.fetch_sub(1, Ordering::AcqRel);
            }
        });
        SubscriberWriter { track, backlog, queued, arrivals }
    }

    /// Writes a packet that arrived at `arrived`; false when it was dropped.
    pub(crate) fn write(&self, p: rtp::Packet, arrived: Instant) -> bool {
        if let Some(log) = &self.arrivals {
            log.arrived(p.header.sequence_number, arrived);
        }
        if self.queued.load(Ordering::Acquire) == 0 {
            // Only the forwarding path writes, one packet at a time, so nothing can join the
            // backlog between this check and the write below.
            // A cheap copy (the payload is shared; forwarded headers carry no extensions),
            // kept in case the write cannot complete now.
            let copy = p.clone();
            match poll_once(self.track.write_rtp(p)) {
                Some(result) => return result.is_ok(),
                // The connection's queue is full (or its track is being bound): the pending
                // write was cancelled with nothing sent, so the copy goes to the backlog.
                None => return self.enqueue(copy),
            }
        }
        self.enqueue(p)
    }

    fn enqueue(&self, p: rtp::Packet) -> bool {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.backlog.try_send(p).is_ok() {
            return true;
        }
        self.queued.fetch_sub(1, Ordering::AcqRel);
        false
    }
}
