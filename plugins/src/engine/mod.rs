//! The uploader: turns the spool into parts, one at a time, on its own thread. The same loop
//! serves a running recording (fed by the streaming thread) and recovery (fed once).
//!
//! With tail objects on (`tail-objects`), it also stores, while the recording runs, every
//! whole fragment not yet in a part as a small object of its own (`{key}.tail/{offset:020}`),
//! as soon as the fragment is durable in the spool, so that another machine can complete
//! the upload without the spool ([`complete_abandoned`](crate::abandoned::complete_abandoned)).
//! At most one every [`TAIL_INTERVAL`] (mp4mux writes a fragment per track: audio and video
//! make two per fragment duration), so one may hold several fragments. Parts come first; a
//! tail object gets one attempt at a time, so a failing one never holds the parts back
//! (`tails.rs`).

mod tails;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::journal::{Entry, JournalWriter, PartRecord};
use crate::planner::{backoff, next_part_end, next_tail, target_part_size};
use crate::storage::{ErrorKind, RemotePart, SpoolRange, Storage, StorageError};
use crate::{lock, wait, wait_timeout};
use tails::Tails;

const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Tail objects start at least this long after each other: about two requests a second per
/// recording, and the bucket lags the spool by at most this plus a fragment.
pub const TAIL_INTERVAL: Duration = Duration::from_millis(500);

/// Bytes uploaded as parts by every recording of this process (for metrics).
pub static UPLOADED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Storage calls retried after a transient failure, by every recording of this process.
pub static UPLOAD_RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Tail objects stored by every recording of this process.
pub static TAIL_OBJECTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How a recording's upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The object (or file) is in place; spool and journal are deleted.
    Complete { bytes: u64, parts: u32 },
    /// Nothing playable was recorded; nothing was stored.
    Empty,
    /// Gave up; the journal says why and the spool is kept.
    Failed { reason: String },
}

/// What the streaming thread tells the uploader, and the uploader's result.
#[derive(Debug, Default)]
pub(crate) struct FeedState {
    /// Ascending fragment starts not yet passed by the uploader, all journaled.
    pub boundaries: Vec<u64>,
    /// The spool is journaled (durable) up to here.
    pub durable_end: u64,
    /// Where the first fragment starts (the end of the header), once known.
    pub first_fragment: Option<u64>,
    /// Set when the recording ends: the object is the spool up to here.
    pub final_end: Option<u64>,
    pub outcome: Option<Outcome>,
    /// Latest transient error, for status reporting.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    cond: Condvar,
}

impl Feed {
    pub fn lock(&self) -> MutexGuard<'_, FeedState> {
        lock(&self.state)
    }

    pub fn publish(&self, boundaries: impl IntoIterator<Item = u64>, durable_end: u64) {
        let mut s = self.lock();
        s.boundaries.extend(boundaries);
        if s.first_fragment.is_none() {
            s.first_fragment = s.boundaries.first().copied();
        }
        s.durable_end = s.durable_end.max(durable_end);
        self.cond.notify_all();
    }

    pub fn finish(&self, final_end: u64) {
        let mut s = self.lock();
        if s.final_end.is_none() {
            s.final_end = Some(final_end);
        }
        self.cond.notify_all();
    }

    fn set_outcome(&self, outcome: Outcome) {
        self.lock().outcome = Some(outcome);
        self.cond.notify_all();
    }

    /// Waits for the uploader's outcome up to `timeout`.
    pub fn wait_outcome(&self, timeout: Duration) -> Option<Outcome> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(o) = &s.outcome {
                return Some(o.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = wait_timeout(&self.cond, s, deadline - now);
        }
    }
}

enum Step {
    Part(u64),
    /// A tail object: start and end.
    Tail(u64, u64),
    Done(u64),
}

/// Lock order: `journal` and the feed's lock are leaves, never held together.
pub(crate) struct Uploader {
    pub storage: Box<dyn Storage>,
    pub journal: Arc<Mutex<JournalWriter>>,
    pub spool_path: PathBuf,
    pub min_part_size: u64,
    /// From the journal when resuming; `None` starts a new upload.
    pub upload_id: Option<String>,
    pub parts: Vec<PartRecord>,
    pub feed: Arc<Feed>,
    /// Transient errors are retried until then (recovery); forever when `None`.
    pub deadline: Option<Instant>,
    /// Store tail objects while the recording runs, and delete them all at the end.
    pub tail_objects: bool,
    /// The least time between the starts of two tail objects ([`TAIL_INTERVAL`]).
    pub tail_interval: Duration,
}

impl Uploader {
    /// Uploads until the recording's final end, then completes. Publishes the outcome on
    /// the feed after `before_outcome` has run (so a bus message precedes EOS).
    pub fn run(mut self, before_outcome: impl FnOnce(&Outcome)) -> Outcome {
        let mut restarts = 0;
        // Kept across a restart of the upload: tail objects stay valid (same offsets).
        let mut tails = Tails::default();
        let outcome = loop {
            match self.upload_all(&mut tails) {
                Ok(o) => break o,
                Err(e) if e.kind == ErrorKind::NoSuchUpload && restarts < 3 => {
                    restarts += 1;
                    // Aborted or expired behind our back: start over from the spool.
                    self.upload_id = None;
                    self.parts.clear();
                }
                Err(e) => break self.give_up(e),
            }
        };
        before_outcome(&outcome);
        self.feed.set_outcome(outcome.clone());
        outcome
    }

    fn journal(&self, e: &Entry) -> Result<(), StorageError> {
        let mut j = lock(&self.journal);
        // Our own disk, not the store's: retrying will not help.
        j.append(e).map_err(|e| StorageError::with_source(ErrorKind::Permanent, e.to_string(), e))
    }

    fn upload_all(&mut self, tails: &mut Tails) -> Result<Outcome, StorageError> {
        let upload_id = match self.upload_id.clone() {
            None => {
                let id = self.retry(|s| s.create_upload())?;
                self.journal(&Entry::Upload { upload_id: id.clone() })?;
                self.upload_id = Some(id.clone());
                id
            }
            Some(id) => {
                let remote = self.retry(|s| s.list_parts(&id))?;
                self.reconcile(&remote)?;
                id
            }
        };
        let end = loop {
            let start = self.parts.last().map_or(0, PartRecord::end);
            let n = self.parts.len() as u32 + 1;
            let end = match self.wait_step(start, n, tails) {
                Step::Done(end) => break end,
                Step::Tail(from, to) => {
                    self.put_tail(from, to, tails);
                    continue;
                }
                Step::Part(end) => end,
            };
            let range = SpoolRange { path: self.spool_path.clone(), offset: start, len: end - start };
            let etag = self.retry(|s| s.upload_part(&upload_id, n, &range))?;
            UPLOADED_BYTES.fetch_add(range.len, std::sync::atomic::Ordering::Relaxed);
            let part = PartRecord { n, offset: start, len: end - start, etag };
            self.journal(&Entry::Part(part.clone()))?;
            self.parts.push(part);
            if self.tail_objects
                && let Err(e) = self.storage.delete_tails(Some(end))
            {
                // Best effort: they are deleted with the others at the end.
                log::warn(&format!("{}: deleting tail objects below {end}: {e}", self.storage.destination()));
            }
        };
        if end == 0 {
            self.retry(|s| s.abort(&upload_id))?;
            self.delete_all_tails();
            self.journal(&Entry::Failed { reason: "nothing playable was recorded".into(), aborted: true })?;
            self.remove_files();
            return Ok(Outcome::Empty);
        }
        let parts = self.parts.clone();
        self.retry(|s| s.complete(&upload_id, &parts))?;
        // Before the journal says complete: a crash in between finishes (again) in recovery,
        // which deletes them then.
        self.delete_all_tails();
        let n = parts.len() as u32;
        self.journal(&Entry::Complete { bytes: end, parts: n })?;
        self.remove_files();
        Ok(Outcome::Complete { bytes: end, parts: n })
    }

    /// Waits until the next part can be cut, or a tail object stored (parts first), or the
    /// recording is over and fully uploaded.
    fn wait_step(&self, start: u64, n: u32, tails: &Tails) -> Step {
        let target = target_part_size(self.min_part_size, n);
        let mut s = self.feed.lock();
        loop {
            s.boundaries.retain(|&b| b > start);
            let usable = s.boundaries.partition_point(|&b| b <= s.durable_end);
            if let Some(end) = next_part_end(start, target, &s.boundaries[..usable], s.final_end) {
                return Step::Part(end);
            }
            if let Some(f) = s.final_end.filter(|&f| f <= start) {
                return Step::Done(f.max(start));
            }
            let tail = self
                .tail_objects
                .then(|| {
                    next_tail(start.max(tails.end), s.durable_end, s.first_fragment, s.final_end, tails.skipped_to)
                })
                .flatten();
            let now = Instant::now();
            s = match (tail, tails.not_before) {
                (Some(_), Some(at)) if at > now => wait_timeout(&self.feed.cond, s, at - now),
                (Some((from, to)), _) => return Step::Tail(from, to),
                (None, _) => wait(&self.feed.cond, s),
            };
        }
    }

    /// Keeps journaled parts the server confirms, then adopts parts uploaded after the last
    /// journal line when they match the deterministic plan.
    fn reconcile(&mut self, remote: &[RemotePart]) -> Result<(), StorageError> {
        let confirmed = self.parts.iter().zip(remote).take_while(|(p, r)| p.n == r.n && p.len == r.len).count();
        self.parts.truncate(confirmed);
        for r in &remote[confirmed..] {
            let start = self.parts.last().map_or(0, PartRecord::end);
            let n = self.parts.len() as u32 + 1;
            let planned = {
                let s = self.feed.lock();
                next_part_end(start, target_part_size(self.min_part_size, n), &s.boundaries, s.final_end)
            };
            if r.n != n || planned != Some(start + r.len) {
                break;
            }
            let part = PartRecord { n, offset: start, len: r.len, etag: r.etag.clone() };
            self.journal(&Entry::Part(part.clone()))?;
            self.parts.push(part);
        }
        Ok(())
    }

    fn retry<T>(&mut self, mut f: impl FnMut(&mut dyn Storage) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let mut attempt = 0;
        loop {
            match f(self.storage.as_mut()) {
                Err(e) if e.kind == ErrorKind::Transient => {
                    let delay = backoff(attempt, MAX_BACKOFF);
                    if self.deadline.is_some_and(|d| Instant::now() + delay > d) {
                        return Err(e);
                    }
                    if attempt == 0 {
                        log::warn(&format!("{}: {e}; retrying", self.storage.destination()));
                    }
                    self.feed.lock().last_error = Some(e.message.clone());
                    UPLOAD_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(v) => {
                    if attempt > 0 {
                        log::info(&format!("{}: reachable again after {attempt} retries", self.storage.destination()));
                        self.feed.lock().last_error = None;
                    }
                    return Ok(v);
                }
            }
        }
    }

    /// Final error: abort the multipart upload when the server is there to hear it (a
    /// transient give-up in recovery keeps it for the next try), journal why, keep the spool.
    fn give_up(&mut self, e: StorageError) -> Outcome {
        let mut aborted = false;
        if e.kind == ErrorKind::Permanent
            && let Some(id) = self.upload_id.clone()
        {
            aborted = self.storage.abort(&id).is_ok();
        }
        if aborted {
            self.delete_all_tails();
        }
        let reason = e.message;
        log::error(&format!("{}: giving up: {reason}", self.storage.destination()));
        let _ = self.journal(&Entry::Failed { reason: reason.clone(), aborted });
        Outcome::Failed { reason }
    }

    fn remove_files(&self) {
        let j = lock(&self.journal);
        let _ = std::fs::remove_file(&self.spool_path);
        let _ = std::fs::remove_file(j.path());
    }
}

/// Logging through the crate's GStreamer debug category.
pub(crate) mod log {
    pub fn warn(msg: &str) {
        gst::warning!(crate::CAT, "{msg}");
    }
    pub fn info(msg: &str) {
        gst::info!(crate::CAT, "{msg}");
    }
    pub fn error(msg: &str) {
        gst::error!(crate::CAT, "{msg}");
    }
}
