//! The recording journal: append-only JSON lines next to the spool file, fsync'd after each
//! line. Replaying it tells recovery what is durable locally and what is already uploaded.
//! It never holds credentials.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const JOURNAL_EXT: &str = "journal";
pub const SPOOL_EXT: &str = "mp4";

/// Where the recording goes. Endpoint and region are informative: recovery prefers the
/// caller's configuration and falls back to these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum Destination {
    S3 {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
    },
    Local {
        location: PathBuf,
    },
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::S3 { bucket, key, .. } => write!(f, "s3://{bucket}/{key}"),
            Destination::Local { location } => write!(f, "{}", location.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub n: u32,
    pub offset: u64,
    pub len: u64,
    pub etag: String,
}

impl PartRecord {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Entry {
    Begin {
        v: u32,
        dest: Destination,
        min_part_size: u64,
        started_unix_ms: u64,
        /// The recording also stores its tail as tail objects (`tail-objects`): they are
        /// deleted when its upload completes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tail_objects: bool,
    },
    /// A (new) multipart upload: parts of an earlier one no longer count.
    Upload {
        upload_id: String,
    },
    /// The spool is durable and playable up to `end` (the end of a whole fragment).
    Fragment {
        end: u64,
    },
    Part(PartRecord),
    /// Normal end of stream: the object is the spool up to `end`.
    Eos {
        end: u64,
    },
    Complete {
        bytes: u64,
        parts: u32,
    },
    /// Gave up; `aborted` tells whether the multipart upload was aborted.
    Failed {
        reason: String,
        aborted: bool,
    },
}

/// What a journal says, replayed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JournalState {
    pub dest: Option<Destination>,
    pub min_part_size: u64,
    pub started_unix_ms: u64,
    /// Tail objects were stored (see [`Entry::Begin`]).
    pub tail_objects: bool,
    pub upload_id: Option<String>,
    pub parts: Vec<PartRecord>,
    pub playable_end: u64,
    pub eos_end: Option<u64>,
    pub complete: bool,
    pub failed: Option<String>,
    /// The last line was cut short (a crash while writing it) and was ignored.
    pub torn: bool,
}

impl JournalState {
    pub fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Begin { dest, min_part_size, started_unix_ms, tail_objects, .. } => {
                self.dest = Some(dest);
                self.min_part_size = min_part_size;
                self.started_unix_ms = started_unix_ms;
                self.tail_objects = tail_objects;
            }
            Entry::Upload { upload_id } => {
                self.upload_id = Some(upload_id);
                self.parts.clear();
                self.failed = None;
            }
            Entry::Fragment { end } => self.playable_end = self.playable_end.max(end),
            Entry::Part(p) => {
                self.parts.retain(|q| q.n < p.n);
                self.parts.push(p);
            }
            Entry::Eos { end } => self.eos_end = Some(end),
            Entry::Complete { .. } => self.complete = true,
            Entry::Failed { reason, aborted } => {
                self.failed = Some(reason);
                if aborted {
                    self.upload_id = None;
                    self.parts.clear();
                }
            }
        }
    }

    /// Where the object ends: all bytes after a normal stop, else the last whole fragment.
    pub fn final_end(&self) -> u64 {
        self.eos_end.unwrap_or(self.playable_end)
    }
}

/// Replays journal text. A line that is not a whole valid entry can only be a write cut
/// short by a crash (later repaired by a newline): it is skipped.
pub fn replay(text: &str) -> JournalState {
    let mut state = JournalState::default();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(nl) = rest.find('\n') else {
            state.torn = true;
            break;
        };
        let line = &rest[..nl];
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => state.apply(e),
            Err(_) if line.trim().is_empty() => {}
            Err(_) => state.torn = true,
        }
        rest = &rest[nl + 1..];
    }
    state
}

pub fn read_journal(path: &Path) -> Result<JournalState> {
    let bytes = std::fs::read(path).map_err(Error::io("reading journal", path))?;
    Ok(replay(&String::from_utf8_lossy(&bytes)))
}

/// The spool file recorded next to a journal.
pub fn spool_path_for(journal: &Path) -> PathBuf {
    journal.with_extension(SPOOL_EXT)
}

/// Appends entries, each made durable before `append` returns. Holds an exclusive lock on
/// the journal file for as long as it lives, so recovery skips recordings still running.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Creates a new journal (fails if it exists).
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            OpenOptions::new().append(true).create_new(true).open(path).map_err(Error::io("creating journal", path))?;
        Self::locked(file, path)
    }

    /// Opens an existing journal for appending, if no one else holds it.
    pub fn open_existing(path: &Path) -> Result<Option<Self>> {
        let file = OpenOptions::new().append(true).open(path).map_err(Error::io("opening journal", path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file, path: path.to_owned() })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking journal", path)(e)),
        }
    }

    fn locked(file: File, path: &Path) -> Result<Self> {
        file.lock().map_err(Error::io("locking journal", path))?;
        Ok(Self { file, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A torn last line (crash mid-write) would hide every line after it: start on a
    /// fresh line.
    pub fn repair_torn_tail(&mut self) -> Result<()> {
        let len = self.file.metadata().map_err(Error::io("reading journal", &self.path))?.len();
        let mut last = [0u8];
        let ends_line = len == 0
            || std::os::unix::fs::FileExt::read_at(
                &File::open(&self.path).map_err(Error::io("reading journal", &self.path))?,
                &mut last,
                len - 1,
            )
            .is_ok_and(|n| n == 1 && last[0] == b'\n');
        if !ends_line {
            self.file.write_all(b"\n").map_err(Error::io("writing journal", &self.path))?;
        }
        Ok(())
    }

    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        let mut line =
            serde_json::to_vec(entry).map_err(|source| Error::JournalEncode { path: self.path.clone(), source })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(Error::io("writing journal", &self.path))?;
        self.file.sync_data().map_err(Error::io("syncing journal", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin() -> Entry {
        Entry::Begin {
            v: 1,
            dest: Destination::S3 { bucket: "b".into(), key: "k.mp4".into(), region: None, endpoint_url: None },
            min_part_size: 5,
            started_unix_ms: 7,
            tail_objects: false,
        }
    }

    fn part(n: u32, offset: u64, len: u64) -> Entry {
        Entry::Part(PartRecord { n, offset, len, etag: format!("e{n}") })
    }

    #[test]
    fn write_and_replay_with_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let mut w = JournalWriter::create(&path).unwrap();
        for e in [
            begin(),
            Entry::Upload { upload_id: "u1".into() },
            Entry::Fragment { end: 10 },
            part(1, 0, 10),
            Entry::Fragment { end: 25 },
        ] {
            w.append(&e).unwrap();
        }
        drop(w);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"t":"part","n":2,"offs"#);
        std::fs::write(&path, &text).unwrap();

        let s = read_journal(&path).unwrap();
        assert!(s.torn);
        assert_eq!(s.upload_id.as_deref(), Some("u1"));
        assert_eq!(s.parts, vec![PartRecord { n: 1, offset: 0, len: 10, etag: "e1".into() }]);
        assert_eq!((s.playable_end, s.final_end(), s.min_part_size), (25, 25, 5));

        // Appending after a torn tail: the new line still counts.
        let mut w = JournalWriter::open_existing(&path).unwrap().unwrap();
        w.repair_torn_tail().unwrap();
        w.append(&Entry::Eos { end: 30 }).unwrap();
        let s = read_journal(&path).unwrap();
        assert_eq!(s.eos_end, Some(30));
    }

    #[test]
    fn tail_objects_are_journaled_and_default_to_off() {
        let mut e = begin();
        let Entry::Begin { tail_objects, .. } = &mut e else { unreachable!() };
        *tail_objects = true;
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains(r#""tail_objects":true"#), "{line}");
        assert!(replay(&format!("{line}\n")).tail_objects);
        // Off: not written, and journals written before the field read as off.
        let line = serde_json::to_string(&begin()).unwrap();
        assert!(!line.contains("tail_objects"), "{line}");
        assert!(!replay(&format!("{line}\n")).tail_objects);
    }

    #[test]
    fn a_running_recording_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let _w = JournalWriter::create(&path).unwrap();
        assert!(JournalWriter::open_existing(&path).unwrap().is_none());
    }

    #[test]
    fn new_upload_and_abort_reset_parts() {
        let mut s = JournalState::default();
        for e in [begin(), Entry::Upload { upload_id: "u1".into() }, part(1, 0, 10), part(2, 10, 5)] {
            s.apply(e);
        }
        s.apply(part(2, 10, 6)); // re-uploaded part replaces the old record
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[1].len, 6);
        s.apply(Entry::Upload { upload_id: "u2".into() });
        assert!(s.parts.is_empty());
        s.apply(part(1, 0, 10));
        s.apply(Entry::Failed { reason: "NoSuchBucket".into(), aborted: true });
        assert_eq!((s.upload_id.as_deref(), s.parts.len()), (None, 0));
        assert_eq!(s.failed.as_deref(), Some("NoSuchBucket"));
    }
}
