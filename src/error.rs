//! The binary's one error type. Causes are kept (`source()`), never flattened to strings, and
//! each kind says how the HTTP API answers it (`server/error.rs` maps them to status codes).

use crate::recordings::store::RecordingError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field at fault (a JSON Pointer such as `/destinations/1`) and why: 422.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A program setting (`width`, `video_bitrate_kbps`, …) an ingest cannot take: 422 at
    /// the request's `/video/…` or `/audio/…` field.
    #[error("{setting}: {reason}")]
    Setting { setting: String, reason: String },
    /// A request that is wrong as a whole: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Not possible in the resource's state (ended, another size already running): 409.
    #[error("{0}")]
    Conflict(String),
    /// No such resource: 404.
    #[error("{0}")]
    NotFound(String),
    /// This node runs as many programs as its budget allows: 503 `no_capacity`.
    #[error("{0}")]
    NoCapacity(String),
    /// The room's program refused or failed: 500 (unless the request set it up wrong, which
    /// the registries report as `Invalid` or `Setting` first).
    #[error("the room's program: {0}")]
    Program(#[from] tessera_compositor::CompositorError),
    /// Where recordings are stored refused: 500.
    #[error("recording storage: {0}")]
    Storage(#[from] RecordingError),
    /// The SFU refused (the program's participant): 500.
    #[error("the room's SFU: {0}")]
    Sfu(#[from] tessera_sfu::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for [`Error::Invalid`].
pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid { field: field.into(), reason: reason.into() }
}
