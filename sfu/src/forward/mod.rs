//! The per-packet forwarding path: a published track's [`TrackForwarder`] fans each packet
//! from the publisher out to its [`DownTrack`]s (one per subscriber, plus one for the
//! hand-off), each of which picks its simulcast layer, rewrites the packet into its own
//! stream (SSRC, sequence numbers, timestamps, payload type) and hands it to its [`Output`].
//! The layer choice and the rewriting are `core/`'s state machines; the per-layer bitrates they
//! need are measured here (`rate_meter.rs`). No sockets here, and an output never blocks: a
//! subscriber's output writes the packet through its connection (`transport/`), which sends
//! it without waiting, so a full queue or socket loses the packet instead of slowing the
//! publisher or the other subscribers.
//!
//! - `track_forwarder.rs`: a published track's side: layers by SSRC, their bitrates, the
//!   fan-out, sender-report times for the hand-off.
//! - `down_track.rs`: one subscriber's copy: layer selection, rewriting, counters.
//! - `rate_meter.rs`: a layer's bitrate over half-second windows.

mod down_track;
mod rate_meter;
mod track_forwarder;

use std::time::Instant;

use rtc::rtp;
use tokio::sync::mpsc;

pub use down_track::DownTrack;
pub use track_forwarder::{RelayTap, TrackForwarder};

/// PT value meaning "not negotiated yet": packets are held back.
pub(crate) const PT_UNKNOWN: u8 = 0xff;

/// Where a down track's packets go.
pub enum Output {
    /// A bounded queue drained by a writer task (tests, benchmarks).
    Queue(mpsc::Sender<rtp::Packet>),
    /// A callback given each packet and when the forwarder got it (a subscriber's
    /// connection, the hand-off); returns false when the packet was dropped. Must not block.
    Callback(Box<dyn Fn(rtp::Packet, Instant) -> bool + Send + Sync>),
}
