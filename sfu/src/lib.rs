//! Tessera's WebRTC SFU: rooms, participants, publish and subscribe over the sans-IO `rtc` 0.21
//! peer connection (driven by our own transport, see `transport/`), with
//! simulcast layer selection, keyframe-request rate limiting, active speaker detection, a
//! WebSocket signalling protocol (`PROTOCOL.md`), WHIP ingest, WHEP playback of a room's
//! program ([`WhepSource`]), an in-process hand-off to the compositor ([`MediaHandoff`]) and the way back: media made in the process (the room's
//! program) published into a room as a participant ([`Sfu::publish_local`]). No GStreamer
//! here.

pub mod cascade;
mod codecs;
pub mod config;
pub mod core;
mod delay;
pub mod error;
pub mod events;
pub mod forward;
pub mod handoff;
#[cfg(any(test, feature = "test-harness"))]
pub mod harness;
pub mod http;
mod local_publisher;
mod participant;
mod peer;
#[cfg(test)]
mod proptests;
mod random;
pub mod relay;
mod resend_limiter;
pub mod room;
mod rtx;
mod sfu;
pub mod signal;
pub mod stats;
mod sync;
mod tap;
mod track;
mod transport;
mod whep;

pub use config::{IceConfig, IceServerProvider, SfuConfig};
pub use error::{Error, Result};
pub use events::{ParticipantEvent, RoomObserver};
pub use handoff::{KeyframeRequester, MediaGate, MediaHandoff, SenderReportInfo, TrackInfo, TrackSource};
pub use http::{Grants, TokenValidator, router, serve_socket, valid_room};
pub use local_publisher::{LocalPublisher, LocalTrackSpec};
pub use participant::Participant;
pub use peer::{AUDIO_LEVEL_URI, build_client_peer, build_peer};
pub use room::Room;
pub use sfu::{IceAddrs, Sfu};
pub use signal::IceServer;
pub use stats::{Counter, DELAY_BUCKETS_US, DelayHistogram, TransportCounters};
pub use track::PublishedTrack;
pub use transport::MAX_FORWARDING_THREADS;
pub use whep::WhepSource;
