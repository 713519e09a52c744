//! The crate's one error type.

/// Everything that can go wrong in the SFU.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token was missing or refused.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A client sent something we cannot use (malformed JSON, bad SDP, wrong order).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The token does not allow this (publishing or subscribing).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Unknown room, participant or resource.
    #[error("not found: {0}")]
    NotFound(String),
    /// The room is full or the participant is gone.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Failure inside the WebRTC stack.
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// Anything else.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The stable machine-readable code used in JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "unauthorized",
            Error::BadRequest(_) => "bad_request",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::WebRtc(_) => "webrtc_error",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<webrtc::error::Error> for Error {
    fn from(e: webrtc::error::Error) -> Self {
        Error::WebRtc(e.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
