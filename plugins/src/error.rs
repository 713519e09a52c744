//! The crate's one error type. Each variant keeps its cause (`source()`) and also shows it in
//! its message, as the binary's error chain expects (it skips a cause already in the text).
//! Storage calls have their own [`StorageError`](crate::storage::StorageError), which says
//! whether a retry can help.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ISO-BMFF stream at byte {offset}: {reason}")]
    InvalidBox { offset: u64, reason: &'static str },
    #[error("journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    /// A journal line that cannot be written as JSON.
    #[error("journal {path}: {source}")]
    JournalEncode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("the recording was cancelled before its upload finished")]
    Cancelled,
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
