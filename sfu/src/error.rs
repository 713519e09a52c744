//! The crate's one error type.
//!
//! A failure that has a cause (the WebRTC stack refusing an SDP, a socket that cannot be set
//! up) keeps it: [`std::error::Error::source`] returns it, for logs and for callers that look
//! at it. Its text is also part of the message, since the message is what a client gets back
//! (`{"error":{"code","message"}}` over HTTP, an `error` message over the WebSocket).

use std::net::IpAddr;

/// The WebRTC stack's error (`rtc` 0.21; `webrtc` 0.21 re-exports the same type).
pub type RtcError = rtc::shared::error::Error;

/// Everything that can go wrong in the SFU.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token was missing or refused.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A client sent something we cannot use (malformed JSON, bad SDP, wrong order).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A client's description or candidate that the WebRTC stack refused (`what`: "offer",
    /// "answer" or "candidate"). A bad request, like [`Error::BadRequest`].
    #[error("bad request: invalid {what}: {source}")]
    Invalid {
        what: &'static str,
        #[source]
        source: RtcError,
    },
    /// The token does not allow this (publishing or subscribing).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Unknown room, participant or resource.
    #[error("not found: {0}")]
    NotFound(String),
    /// The room is full or the participant is gone.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Failure inside the WebRTC stack while doing `context` (building a peer connection,
    /// creating an offer or answer, adding a track or a candidate of ours).
    #[error("webrtc: {context}: {source}")]
    Rtc {
        context: &'static str,
        #[source]
        source: RtcError,
    },
    /// No port in the configured range (or no port at all) could be bound for an ICE socket.
    #[error("internal: cannot bind an ICE socket on {ip} ({range:?}): {source}")]
    Bind {
        ip: IpAddr,
        range: Option<(u16, u16)>,
        /// The last port's error.
        #[source]
        source: std::io::Error,
    },
    /// A bound socket could not be set up while doing `context`.
    #[error("internal: {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Anything else.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The stable machine-readable code used in JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "unauthorized",
            Error::BadRequest(_) | Error::Invalid { .. } => "bad_request",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Rtc { .. } => "webrtc_error",
            Error::Bind { .. } | Error::Io { .. } | Error::Internal(_) => "internal",
        }
    }

    /// For `map_err`: the WebRTC stack failed while doing `context`.
    pub(crate) fn rtc(context: &'static str) -> impl FnOnce(RtcError) -> Error {
        move |source| Error::Rtc { context, source }
    }

    /// For `map_err`: the WebRTC stack refused a client's `what` ("offer", "answer",
    /// "candidate").
    pub(crate) fn invalid(what: &'static str) -> impl FnOnce(RtcError) -> Error {
        move |source| Error::Invalid { what, source }
    }

    /// For `map_err`: setting up a socket failed while doing `context`.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use rtc::peer_connection::sdp::RTCSessionDescription;

    use super::*;

    #[test]
    fn a_refused_offer_is_a_bad_request_that_keeps_its_cause() {
        let cause = RTCSessionDescription::offer("v=0\r\nnot sdp\r\n".into()).expect_err("not SDP");
        let text = cause.to_string();
        let e = Error::invalid("offer")(cause);
        assert_eq!(e.code(), "bad_request");
        assert_eq!(e.to_string(), format!("bad request: invalid offer: {text}"));
        assert!(e.source().and_then(|s| s.downcast_ref::<RtcError>()).is_some(), "the cause is kept");
    }

    #[test]
    fn a_socket_that_cannot_be_set_up_keeps_its_io_error() {
        let cause = std::io::Error::new(std::io::ErrorKind::AddrInUse, "taken");
        let e = Error::io("cannot make the UDP socket non-blocking")(cause);
        assert_eq!(e.code(), "internal");
        assert_eq!(e.to_string(), "internal: cannot make the UDP socket non-blocking: taken");
        let source = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the cause is kept");
        assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
    }
}
