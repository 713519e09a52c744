//! Relay links: media between the nodes of one room (a room spread over several nodes, as
//! Jitsi's bridge relays and Daily's mesh do it).
//!
//! Two nodes that share rooms exchange their media over one link per node pair: plain RTP and
//! RTCP (RFC 3550), encrypted as SRTP/SRTCP with AEAD_AES_128_GCM under keys each node makes
//! for what it sends ([`LinkKeys`]; the cluster's shared state hands them over), on one UDP
//! socket per node. Each stream on the link is one simulcast layer of one track, on a link
//! SSRC chosen by the sending node (even; its RTX stream is the SSRC `| 1`), carried once
//! whatever the number of subscribers behind it. Loss is repaired on the link (NACK and RTX),
//! keyframe requests and sender reports cross it, and the relay's own control messages ride
//! in RTCP APP packets.
//!
//! - `link.rs`: one link, sans-IO ([`RelayLink`]): encryption, repairs, the round-trip probe,
//!   receiver reports.
//! - `receive.rs`: a received stream's missing packets and loss (pure).
//! - `order.rs`: a received stream's packets back in order, repairs included (pure).
//! - `history.rs`: the sent packets repairs come from, and RTX.
//! - `wire.rs`: RTCP compounds and our APP packets.
//! - `keys.rs`, `counters.rs`.

mod counters;
mod history;
mod keys;
mod link;
mod order;
mod receive;
#[cfg(test)]
mod tests;
mod wire;

pub use counters::{Count, LinkCounters};
pub use history::{media_ssrc, rtx_ssrc};
pub use keys::LinkKeys;
pub use link::{GIVE_UP, LinkEvent, LinkState, NACK_TRIES, PROBE_INTERVAL, RelayLink, SILENT_AFTER};
