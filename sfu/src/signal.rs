//! The JSON signalling protocol over WebSocket (documented in `sfu/PROTOCOL.md`).

use serde::{Deserialize, Serialize};

use crate::handoff::TrackSource;

/// An ICE candidate as the browser's `RTCIceCandidateInit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// `sdpMid`.
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// `sdpMLineIndex`.
    #[serde(rename = "sdpMLineIndex", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
}

/// A STUN or TURN server for the client's `RTCPeerConnection`, as the browser's `RTCIceServer`
/// (`{urls, username?, credential?}`). Its `Debug` hides the credential.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    /// `turn:`/`turns:` (or `stun:`) URLs.
    pub urls: Vec<String>,
    /// TURN username (TURN REST API: `EXPIRY:IDENTITY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Which of the participant's two peer connections a message is about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The client → server connection (client offers).
    Publish,
    /// The server → client connection (server offers).
    Subscribe,
}

/// Which local track is which, sent with a publish offer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrackDecl {
    /// The browser's `MediaStreamTrack.id` (the SDP `msid` track id).
    pub track_id: String,
    /// What it is.
    pub source: TrackSource,
}

/// Client → server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: join `room` with `token`.
    Join {
        /// Room name.
        room: String,
        /// Access token.
        token: String,
        /// Display name.
        #[serde(default)]
        name: Option<String>,
        /// Whose tracks to receive from the start, as the `subscribe` message (participant
        /// ids; `[]`: nobody yet), applied before the first subscribe offer. Absent: everyone
        /// (but the program). A client that will pick whom it receives (the program, once it
        /// knows its id) avoids an offer of everyone's tracks it would take back at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subscribe: Option<Vec<String>>,
    },
    /// Offer for the publish connection.
    PublishOffer {
        /// SDP.
        sdp: String,
        /// Track sources.
        #[serde(default)]
        tracks: Vec<TrackDecl>,
    },
    /// Answer to a `subscribe_offer`.
    SubscribeAnswer {
        /// SDP.
        sdp: String,
    },
    /// A trickled ICE candidate of the client.
    Candidate {
        /// Which connection.
        target: Target,
        /// The candidate (`null` candidate string = end of candidates).
        candidate: Candidate,
    },
    /// Mute or unmute one of my published tracks (the server tells the others).
    Mute {
        /// Server track id (from `track_published`).
        track_id: String,
        /// Muted or not.
        muted: bool,
    },
    /// Choose whose tracks to receive: `null` = everyone (the default).
    Subscribe {
        /// Participant ids, or null for all.
        participants: Option<Vec<String>>,
    },
    /// Preferred maximum video height for a track (picks a simulcast layer).
    SetVideoSize {
        /// Server track id.
        track_id: String,
        /// Max height in pixels; null = no limit.
        max_height: Option<u32>,
    },
    /// Caps this client's receive bitrate (added to the server's bandwidth estimate).
    SetMaxBitrate {
        /// Bits per second; null = no cap.
        bps: Option<u64>,
    },
    /// Client statistics (the web client reports `getStats` summaries; logged and kept).
    Stats {
        /// Free-form JSON.
        stats: serde_json::Value,
    },
    /// Keep-alive.
    Ping,
    /// Leave the room.
    Leave,
}

/// A participant as other clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParticipantInfo {
    /// Participant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The identity of a participant the server publishes itself (`program`: the room's
    /// composited program); absent for clients, whose identities are the application's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Published tracks.
    pub tracks: Vec<TrackPublished>,
}

/// A published track as other clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrackPublished {
    /// Server track id (unique in the room).
    pub track_id: String,
    /// Owner.
    pub participant_id: String,
    /// `audio`, `camera`, `screen`.
    pub source: TrackSource,
    /// MIME type.
    pub mime_type: String,
    /// Simulcast layers published (1 without simulcast).
    pub layers: usize,
    /// Muted by its publisher.
    pub muted: bool,
    /// The `MediaStream` id and track id the subscriber's `ontrack` will carry.
    pub stream_id: String,
}

/// Server → client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Joined: who I am and who is here.
    Joined {
        /// My participant id.
        participant_id: String,
        /// Room name.
        room: String,
        /// The others.
        participants: Vec<ParticipantInfo>,
        /// Current active speaker.
        active_speaker: Option<String>,
        /// STUN/TURN servers for the client's peer connections, with credentials for this
        /// participant (absent when the server has none configured).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// Answer to `publish_offer`.
    PublishAnswer {
        /// SDP.
        sdp: String,
    },
    /// Offer for the subscribe connection (send `subscribe_answer`).
    SubscribeOffer {
        /// SDP.
        sdp: String,
    },
    /// A trickled server candidate.
    Candidate {
        /// Which connection.
        target: Target,
        /// The candidate.
        candidate: Candidate,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left.
    ParticipantLeft {
        /// Participant id.
        participant_id: String,
    },
    /// A track was published.
    TrackPublished {
        /// The track.
        track: TrackPublished,
    },
    /// A track was unpublished.
    TrackUnpublished {
        /// Track id.
        track_id: String,
        /// Owner.
        participant_id: String,
    },
    /// A track was muted or unmuted.
    Mute {
        /// Track id.
        track_id: String,
        /// Owner.
        participant_id: String,
        /// Now muted.
        muted: bool,
    },
    /// The active speaker changed.
    ActiveSpeaker {
        /// Participant id, or null.
        participant_id: Option<String>,
    },
    /// Answer to `ping`.
    Pong,
    /// This node is going away (it drains): join the room again through `url`, the base URL
    /// of another node, with the same token. The call goes on there, as a new participant.
    Reconnect {
        /// Base URL of the node to join through (`http(s)://host:port`).
        url: String,
    },
    /// Something the client sent was refused. `fatal` errors close the connection.
    Error {
        /// Stable code (`bad_request`, `unauthorized`, ...).
        code: String,
        /// Human-readable text.
        message: String,
        /// Whether the server closes the connection after this.
        fatal: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"join","room":"r","token":"t","name":"alice"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Join { room: "r".into(), token: "t".into(), name: Some("alice".into()), subscribe: None }
        );
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"candidate","target":"publish","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        assert!(matches!(m, ClientMessage::Candidate { target: Target::Publish, .. }));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"join","room":1}"#).is_err());
        let s = serde_json::to_string(&ServerMessage::ActiveSpeaker { participant_id: None }).unwrap();
        assert_eq!(s, r#"{"type":"active_speaker","participant_id":null}"#);
    }

    #[test]
    fn joined_carries_ice_servers_only_when_there_are_some() {
        let joined = |ice_servers| ServerMessage::Joined {
            participant_id: "PA_1".into(),
            room: "r".into(),
            participants: vec![],
            active_speaker: None,
            ice_servers,
        };
        let s = serde_json::to_string(&joined(vec![])).unwrap();
        assert!(!s.contains("ice_servers"), "{s}");
        let server = IceServer {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            username: Some("1700000000:ada".into()),
            credential: Some("c2VjcmV0".into()),
        };
        let s = serde_json::to_string(&joined(vec![server.clone()])).unwrap();
        assert!(
            s.contains(r#""ice_servers":[{"urls":["turn:127.0.0.1:3478?transport=udp"],"username":"1700000000:ada","credential":"c2VjcmV0"}]"#),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<ServerMessage>(&s).unwrap(), joined(vec![server.clone()]));
        // Older servers' `joined` has no ice_servers; the credential never shows in Debug.
        let old = r#"{"type":"joined","participant_id":"PA_1","room":"r","participants":[],"active_speaker":null}"#;
        assert_eq!(serde_json::from_str::<ServerMessage>(old).unwrap(), joined(vec![]));
        let debug = format!("{:?}", joined(vec![server]));
        assert!(!debug.contains("c2VjcmV0") && debug.contains("<redacted>"), "{debug}");
    }
}
