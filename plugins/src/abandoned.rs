//! Completing, from another machine, the S3 upload of a recording whose node died.
//!
//! The node that records stores its parts (≥ 5 MiB, cut at fragment starts) and, with
//! `tail-objects` on, every whole fragment not yet in a part as a tail object
//! `{key}.tail/{offset:020}` (see [`engine`](crate::engine)). Any machine with access to the
//! bucket can then finish the object without the dead node's spool: the parts in order, and
//! the tail objects that continue them, concatenated into one last part.

use std::time::Duration;

use crate::isobmff::{InitScan, Track, find_fragment_chain, last_fragment_end, scan_init};
use crate::journal::PartRecord;
use crate::planner::backoff;
use crate::storage::s3::{S3Config, S3Storage};
use crate::storage::{ErrorKind, RemotePart, Storage, StorageError, tail_key};

/// How [`complete_abandoned`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AbandonedOutcome {
    /// The object is complete now: `bytes` long, in `parts` parts, the last of which holds
    /// the `tail_bytes` of the tail objects (0: the parts alone were complete). It plays
    /// `duration_s` seconds (its video track), `None` when that could not be read.
    Completed { bytes: u64, parts: u32, tail_bytes: u64, duration_s: Option<f64> },
    /// No upload in progress for the key, and the object is there (completed before, by its
    /// node or by another one).
    AlreadyComplete { bytes: u64 },
    /// Nothing playable was stored (no part, no tail object): the upload, if any, is
    /// aborted, and there is no object.
    Empty,
}

/// Transient errors: tries per S3 call (backoff 0.25, 0.5, 1, 2 s), then the error is
/// returned and the caller tries again later.
const ATTEMPTS: u32 = 5;
/// The start of the object read for its header (`moov`) when the tail does not hold it.
const HEAD_BYTES: u64 = 64 * 1024;
/// A larger `moov` is not read.
const MAX_HEAD_BYTES: u64 = 16 * 1024 * 1024;
/// The end of the object read for its last fragment when the tail does not hold it.
const END_WINDOW: u64 = 2 * 1024 * 1024;

/// Completes the multipart upload of `s3://bucket/key` from what is in the bucket: the
/// newest upload in progress for exactly `key`, its parts 1..n as long as they are
/// contiguous, then the tail objects that continue them (each starting where the previous
/// ended) as one last part. Then deletes every tail object of the key, and reads the
/// playable duration from the object's header and its last fragment (without downloading
/// it). Older uploads of the same key are aborted.
///
/// Blocking (a few S3 calls and one upload of at most a part's size); safe from any thread,
/// including inside a tokio runtime (use `spawn_blocking` there). Transient errors are tried
/// a few times; the error returned says whether trying later can help ([`ErrorKind`]).
pub fn complete_abandoned(config: &S3Config, bucket: &str, key: &str) -> Result<AbandonedOutcome, StorageError> {
    // On a thread of our own: the S3 calls block on the crate runtime.
    let completion = || Completion { s3: S3Storage::new(config, bucket, key), key: key.to_owned() }.run();
    std::thread::scope(|s| s.spawn(completion).join())
        .unwrap_or_else(|_| Err(StorageError::new(ErrorKind::Permanent, "the completion panicked")))
}

struct Completion {
    s3: S3Storage,
    key: String,
}

/// What the bucket holds of a recording beyond its parts.
struct Tail {
    /// Where it starts in the object: the end of the contiguous parts.
    start: u64,
    bytes: Vec<u8>,
}

impl Completion {
    fn run(mut self) -> Result<AbandonedOutcome, StorageError> {
        let mut uploads = self.retry(|s| s.list_uploads())?;
        if uploads.is_empty() {
            let outcome = match self.retry(|s| s.head())? {
                Some(bytes) => AbandonedOutcome::AlreadyComplete { bytes },
                None => AbandonedOutcome::Empty,
            };
            // Tail objects left over (a completion that stopped before deleting them).
            self.delete_tails();
            return Ok(outcome);
        }
        uploads.sort_by(|a, b| a.initiated.unwrap_or(0.0).total_cmp(&b.initiated.unwrap_or(0.0)));
        let upload_id = uploads.pop().map(|u| u.upload_id).unwrap_or_default();
        for old in uploads {
            if let Err(e) = self.s3.abort(&old.upload_id) {
                crate::engine::log::warn(&format!("{}: aborting an older upload: {e}", self.s3.destination()));
            }
        }
        match self.complete(&upload_id) {
            // Completed meanwhile (by another node, or its own that came back).
            Err(e) if e.kind == ErrorKind::NoSuchUpload => match self.retry(|s| s.head())? {
                Some(bytes) => {
                    self.delete_tails();
                    Ok(AbandonedOutcome::AlreadyComplete { bytes })
                }
                None => Err(e),
            },
            r => r,
        }
    }

    fn complete(&mut self, upload_id: &str) -> Result<AbandonedOutcome, StorageError> {
        let remote = self.retry_mut(|s| s.list_parts(upload_id))?;
        let parts = contiguous_parts(&remote);
        let covered = parts.last().map_or(0, PartRecord::end);
        let listed = self.retry(|s| s.list_tails())?;
        let mut tail = Tail { start: covered, bytes: Vec::new() };
        for (offset, skip, len) in select_tails(covered, &listed) {
            let key = tail_key(&self.key, offset);
            let bytes = self.retry(|s| s.get_range(&key, skip, len))?;
            if bytes.len() as u64 != len {
                // Changed or shorter than listed: stop at what is known to be contiguous.
                break;
            }
            tail.bytes.extend_from_slice(&bytes);
        }
        if parts.is_empty() && tail.bytes.is_empty() {
            self.retry_mut(|s| s.abort(upload_id))?;
            self.delete_tails();
            return Ok(AbandonedOutcome::Empty);
        }
        let mut completed = parts;
        if !tail.bytes.is_empty() {
            let n = completed.len() as u32 + 1;
            let etag = self.retry(|s| s.upload_part_bytes(upload_id, n, tail.bytes.clone()))?;
            completed.push(PartRecord { n, offset: covered, len: tail.bytes.len() as u64, etag });
        }
        self.retry_mut(|s| s.complete(upload_id, &completed))?;
        self.delete_tails();
        let bytes = completed.last().map_or(0, PartRecord::end);
        let duration_s = self.duration(bytes, &tail);
        Ok(AbandonedOutcome::Completed {
            bytes,
            parts: completed.len() as u32,
            tail_bytes: tail.bytes.len() as u64,
            duration_s,
        })
    }

    /// Best effort: a tail object left over costs a little storage, not the recording.
    fn delete_tails(&mut self) {
        for attempt in 0..ATTEMPTS {
            match self.s3.delete_tails(None) {
                Ok(()) => return,
                Err(e) if e.kind == ErrorKind::Transient && attempt + 1 < ATTEMPTS => {
                    std::thread::sleep(backoff(attempt, Duration::from_secs(2)));
                }
                Err(e) => {
                    crate::engine::log::warn(&format!("{}: tail objects left in place: {e}", self.s3.destination()));
                    return;
                }
            }
        }
    }

    /// The playable duration of the completed object (`bytes` long): the video track's
    /// timescale and first decode time from its start, its last fragment's end from the
    /// tail (or from the object's last bytes).
    fn duration(&self, bytes: u64, tail: &Tail) -> Option<f64> {
        let head =
            if tail.start == 0 && !tail.bytes.is_empty() { scan_init(&tail.bytes) } else { self.read_init(bytes)? };
        let InitScan::Found { track, first_start } = head else { return None };
        let end = last_fragment_end(&tail.bytes, &track).or_else(|| self.read_last_end(bytes, &track))?;
        let first = first_start.unwrap_or(0);
        (end >= first).then(|| (end - first) as f64 / f64::from(track.timescale))
    }

    fn read_init(&self, bytes: u64) -> Option<InitScan> {
        let head = self.retry(|s| s.get_range(&self.key, 0, HEAD_BYTES.min(bytes))).ok()?;
        match scan_init(&head) {
            InitScan::NeedBytes(n) if n <= MAX_HEAD_BYTES.min(bytes) => {
                let head = self.retry(|s| s.get_range(&self.key, 0, n)).ok()?;
                Some(scan_init(&head))
            }
            scan => Some(scan),
        }
    }

    fn read_last_end(&self, bytes: u64, track: &Track) -> Option<u64> {
        let from = bytes.saturating_sub(END_WINDOW);
        let window = self.retry(|s| s.get_range(&self.key, from, bytes - from)).ok()?;
        let start = if from == 0 { 0 } else { find_fragment_chain(&window)? };
        last_fragment_end(&window[start..], track)
    }

    fn retry<T>(&self, mut f: impl FnMut(&S3Storage) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let mut attempt = 0;
        loop {
            match f(&self.s3) {
                Err(e) if e.kind == ErrorKind::Transient && attempt + 1 < ATTEMPTS => {
                    std::thread::sleep(backoff(attempt, Duration::from_secs(2)));
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn retry_mut<T>(
        &mut self,
        mut f: impl FnMut(&mut S3Storage) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut attempt = 0;
        loop {
            match f(&mut self.s3) {
                Err(e) if e.kind == ErrorKind::Transient && attempt + 1 < ATTEMPTS => {
                    std::thread::sleep(backoff(attempt, Duration::from_secs(2)));
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

/// Parts 1..n as long as they follow each other (a part missing ends the object there), with
/// their offsets in the object.
fn contiguous_parts(remote: &[RemotePart]) -> Vec<PartRecord> {
    let mut parts: Vec<PartRecord> = Vec::new();
    for (i, r) in remote.iter().enumerate() {
        if r.n as usize != i + 1 || r.len == 0 {
            break;
        }
        let offset = parts.last().map_or(0, PartRecord::end);
        parts.push(PartRecord { n: r.n, offset, len: r.len, etag: r.etag.clone() });
    }
    parts
}

/// The tail objects (offset, length, by offset) that continue the object from `covered`,
/// each starting where the previous one ended (the first may start before `covered`: a part
/// cut inside it), as (offset, bytes to skip, bytes to take). Stops at the first gap.
fn select_tails(covered: u64, tails: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
    let mut end = covered;
    let mut out = Vec::new();
    for &(offset, len) in tails {
        if offset + len <= end {
            continue; // Already in a part (or in an earlier tail object).
        }
        if offset > end {
            break; // A gap: what follows cannot be placed.
        }
        out.push((offset, end - offset, offset + len - end));
        end = offset + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(n: u32, len: u64) -> RemotePart {
        RemotePart { n, len, etag: format!("e{n}") }
    }

    #[test]
    fn parts_count_while_they_follow_each_other() {
        let parts = contiguous_parts(&[remote(1, 10), remote(2, 20), remote(4, 5)]);
        assert_eq!(parts.iter().map(|p| (p.n, p.offset, p.len)).collect::<Vec<_>>(), vec![(1, 0, 10), (2, 10, 20)]);
        assert!(contiguous_parts(&[remote(2, 10)]).is_empty());
        assert!(contiguous_parts(&[]).is_empty());
    }

    #[test]
    fn tails_continue_the_parts_up_to_the_first_gap() {
        // Tail objects of 100 bytes from 0; a part covers 0..250 (cut inside the third).
        let tails: Vec<(u64, u64)> = (0..6).map(|i| (i * 100, 100)).collect();
        assert_eq!(select_tails(250, &tails), vec![(200, 50, 50), (300, 0, 100), (400, 0, 100), (500, 0, 100)]);
        // From a part's end that is a tail's start.
        assert_eq!(select_tails(300, &tails)[0], (300, 0, 100));
        // No parts: all of them.
        assert_eq!(select_tails(0, &tails).len(), 6);
        // A gap (a tail object that failed for good would not leave one: the next starts at
        // the same offset; but one deleted or lost does).
        let gap = [(0, 100), (100, 100), (300, 100)];
        assert_eq!(select_tails(0, &gap), vec![(0, 0, 100), (100, 0, 100)]);
        // A gap right after the parts: nothing.
        assert!(select_tails(50, &[(100, 100)]).is_empty());
        // All below the parts' end.
        assert!(select_tails(600, &tails).is_empty());
        // A longer tail object at the same start as a shorter one cannot exist (same name),
        // but one that overlaps the previous still continues it.
        assert_eq!(select_tails(0, &[(0, 100), (50, 100)]), vec![(0, 0, 100), (50, 50, 50)]);
    }
}
