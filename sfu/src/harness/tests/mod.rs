//! The SFU's behaviour as its clients see it, on the in-memory network (see `harness/`): each
//! test runs seconds of a call in well under a second of real time, the same way every run.
//! The Chromium tests in `sfu/tests/` stay the end-to-end proof with a browser and sockets.

mod candidates;
mod join;
mod leave;
mod local;
mod mute;
mod publish;
mod simulcast;
mod subscribe;

use crate::harness::Client;
use crate::signal::ServerMessage;

/// The latest subscribe offer a client got.
fn last_offer(c: &Client) -> String {
    c.messages_of(|m| match m {
        ServerMessage::SubscribeOffer { sdp } => Some(sdp.clone()),
        _ => None,
    })
    .pop()
    .expect("a subscribe offer")
}

/// Whether an SDP sends a track (an `a=msid` naming it).
fn offers_track(sdp: &str, track_id: &str) -> bool {
    sdp.lines().any(|l| l.strip_prefix("a=msid:").and_then(|m| m.split_whitespace().nth(1)) == Some(track_id))
}

/// The payload type of `codec` (`VP8/90000`) in an SDP.
fn payload_type(sdp: &str, codec: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (pt, name) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        name.trim().starts_with(codec).then(|| pt.parse().ok())?
    })
}
