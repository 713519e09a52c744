//! Where finished recordings go. Both backends speak "multipart upload" so the uploader,
//! journal and recovery are one code path. Calls block; the uploader runs on its own thread.

pub mod local;
pub mod s3;

use crate::journal::{Destination, PartRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, timeouts, 5xx, throttling: retry.
    Transient,
    /// The upload id is gone (aborted or expired): start a new upload from the spool.
    NoSuchUpload,
    /// Retrying will not help (missing bucket, access denied, bad request).
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// A part's bytes: a range of the spool file, read by the backend as it sends them, so
/// memory stays small whatever the part size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRange {
    pub path: std::path::PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// A part as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePart {
    pub n: u32,
    pub len: u64,
    pub etag: String,
}

pub trait Storage: Send {
    fn destination(&self) -> &Destination;
    fn create_upload(&mut self) -> Result<String, StorageError>;
    fn list_parts(&mut self, upload_id: &str) -> Result<Vec<RemotePart>, StorageError>;
    /// Returns the part's ETag.
    fn upload_part(&mut self, upload_id: &str, n: u32, part: &SpoolRange) -> Result<String, StorageError>;
    fn complete(&mut self, upload_id: &str, parts: &[PartRecord]) -> Result<(), StorageError>;
    fn abort(&mut self, upload_id: &str) -> Result<(), StorageError>;
}
