//! Where finished recordings go. Both backends speak "multipart upload" so the uploader,
//! journal and recovery are one code path. Calls block; the uploader runs on its own thread.

pub mod local;
pub mod s3;

use std::sync::Arc;

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

/// A storage call that failed: how the uploader reacts (`kind`) and what it reports
/// (`message`: the whole text, cause included, as journals and bus messages carry it).
#[derive(Debug, Clone)]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
    /// The cause, where one is kept (I/O, the journal). S3's errors are not: `message` holds
    /// them with credentials redacted, and the cause would carry them whole.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The cause itself, not the `Arc` around it (so that it can be downcast).
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl StorageError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    /// `message` says what failed, with `source`'s text in it; `source` stays the cause.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self { kind, message: message.into(), source: Some(Arc::new(source)) }
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
    /// Stores `range` (whole fragments, from byte `offset` of the final object) as a tail
    /// object, so that another machine can complete the upload without the spool (see
    /// [`complete_abandoned`](crate::abandoned::complete_abandoned)). One attempt: the
    /// uploader decides when to try again.
    fn put_tail(&mut self, offset: u64, range: &SpoolRange) -> Result<(), StorageError>;
    /// Deletes the tail objects wholly below `below` that this backend stored, or, with
    /// `None`, every tail object of the recording (listing them, also those of an earlier
    /// process).
    fn delete_tails(&mut self, below: Option<u64>) -> Result<(), StorageError>;
}

/// The name of the tail object that starts at byte `offset` of the object `key`:
/// `{key}.tail/{offset:020}`, so that names sort by offset.
pub fn tail_key(key: &str, offset: u64) -> String {
    format!("{}{offset:020}", tail_prefix(key))
}

/// The prefix of every tail object of `key`.
pub fn tail_prefix(key: &str) -> String {
    format!("{key}.tail/")
}

/// The offset a tail object's name says, if `name` is one of `key`'s tail objects.
pub fn tail_offset(key: &str, name: &str) -> Option<u64> {
    let digits = name.strip_prefix(&tail_prefix(key))?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_names_sort_by_offset_and_parse_back() {
        assert_eq!(tail_key("room/a.mp4", 1234), "room/a.mp4.tail/00000000000000001234");
        assert!(tail_key("k", 99) < tail_key("k", 100));
        assert_eq!(tail_offset("room/a.mp4", &tail_key("room/a.mp4", u64::MAX)), Some(u64::MAX));
        assert_eq!(tail_offset("room/a.mp4", "room/a.mp4.tail/12"), None);
        assert_eq!(tail_offset("room/a", "room/a.mp4.tail/00000000000000001234"), None);
        assert_eq!(tail_offset("k", "k.tail/0000000000000000123x"), None);
    }
}
