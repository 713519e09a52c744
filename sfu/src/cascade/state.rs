//! What a node tells the other nodes of a room about its own part of it: its participants and
//! their tracks, each track with the link SSRCs its layers travel on. The binary carries it
//! (through Redis); this crate makes it ([`crate::Sfu::local_room_state`]) and applies another
//! node's ([`crate::Sfu::apply_remote_room_state`]).

use serde::{Deserialize, Serialize};

use crate::handoff::TrackSource;

/// One node's participants in one room.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRoomState {
    pub participants: Vec<RemoteParticipant>,
}

/// A participant as the nodes that do not host it see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteParticipant {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub tracks: Vec<RemoteTrack>,
    /// Made in its node's process (the room's program, [`crate::Sfu::publish_local`]): the
    /// other nodes hand its tracks to no program either and subscribe to it only on request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_process: bool,
}

/// A track as the nodes that do not host its publisher see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteTrack {
    pub id: String,
    pub source: TrackSource,
    pub mime_type: String,
    pub clock_rate: u32,
    #[serde(default)]
    pub channels: u16,
    #[serde(default)]
    pub fmtp: String,
    /// RTCP feedback the publisher negotiated, as (type, parameter).
    #[serde(default)]
    pub feedback: Vec<(String, String)>,
    /// The link SSRC of each layer, lowest first (one for audio and plain video).
    pub layers: Vec<u32>,
    /// The audio level extension's id in the relayed packets (RFC 6464).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_level_id: Option<u8>,
    #[serde(default)]
    pub muted: bool,
}

impl RemoteTrack {
    pub(crate) fn codec(&self) -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
        rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
            mime_type: self.mime_type.clone(),
            clock_rate: self.clock_rate,
            channels: self.channels,
            sdp_fmtp_line: self.fmtp.clone(),
            rtcp_feedback: self
                .feedback
                .iter()
                .map(|(typ, parameter)| rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
                    typ: typ.clone(),
                    parameter: parameter.clone(),
                })
                .collect(),
        }
    }
}

/// A video track's layers as its origin measures them: (link SSRC of the lowest layer, per
/// layer (bit/s, height)).
pub(crate) type LayerReport = (u32, Vec<(u64, u32)>);

/// Control messages between the nodes of a link (in RTCP APP packets, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Control {
    /// "Send me these streams" (link SSRCs of layers), for the next [`super::WANT_TTL`].
    Want { ssrcs: Vec<u32> },
    /// The origin's measurements of tracks' layers: (link SSRC of the lowest layer, per layer
    /// (bit/s, height)).
    Layers { tracks: Vec<LayerReport> },
}

/// Messages of at most this many items, so that one fits a datagram.
pub(crate) const MAX_ITEMS: usize = 100;
