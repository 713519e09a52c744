//! Tail objects (`tail-objects`): while a recording runs, the fragments not yet in a part are
//! also stored as small objects, so that another node can complete the upload if this one
//! dies (`crate::abandoned`). Paced, retried on transient errors, skipped (without a gap) on
//! permanent ones, and deleted once parts cover them or the upload ends.

use std::time::Instant;

use super::{MAX_BACKOFF, TAIL_OBJECTS, UPLOAD_RETRIES, Uploader, log};
use crate::planner::backoff;
use crate::storage::{ErrorKind, SpoolRange};

/// The tail objects stored so far, and when to try again after a failure.
#[derive(Debug, Default)]
pub(super) struct Tails {
    /// Tail objects cover the spool up to here (parts may cover more).
    pub end: u64,
    /// Transient failures in a row.
    pub failures: u32,
    /// No tail object before then (pacing, or a backoff after a failure).
    pub not_before: Option<Instant>,
    /// A tail object that failed for good ended here: the next one, from the same start,
    /// waits for more fragments.
    pub skipped_to: u64,
}

impl Uploader {
    /// One attempt at storing the spool from `from` to `to` as a tail object. A transient
    /// failure is tried again after a backoff (with whatever fragments came meanwhile), a
    /// permanent one is skipped: the next tail object starts at the same offset, no gap.
    pub(super) fn put_tail(&mut self, from: u64, to: u64, tails: &mut Tails) {
        let range = SpoolRange { path: self.spool_path.clone(), offset: from, len: to - from };
        let started = Instant::now();
        match self.storage.put_tail(from, &range) {
            Ok(()) => {
                if tails.failures > 0 {
                    log::info(&format!(
                        "{}: tail objects stored again after {} failures",
                        self.storage.destination(),
                        tails.failures
                    ));
                    self.feed.lock().last_error = None;
                }
                TAIL_OBJECTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *tails = Tails { end: to, not_before: Some(started + self.tail_interval), ..Tails::default() };
            }
            Err(e) if e.kind == ErrorKind::Transient => {
                if tails.failures == 0 {
                    log::warn(&format!("{}: tail object at {from}: {e}; retrying", self.storage.destination()));
                }
                self.feed.lock().last_error = Some(e.message.clone());
                UPLOAD_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tails.not_before = Some(Instant::now() + backoff(tails.failures, MAX_BACKOFF));
                tails.failures += 1;
            }
            Err(e) => {
                log::error(&format!("{}: tail object at {from} skipped: {e}", self.storage.destination()));
                tails.skipped_to = to;
                tails.failures = 0;
                tails.not_before = Some(started + self.tail_interval);
            }
        }
    }

    /// Deletes every tail object of the recording, once its upload is complete or aborted:
    /// best effort (a few tries), logged when they stay.
    pub(super) fn delete_all_tails(&mut self) {
        if !self.tail_objects {
            return;
        }
        for attempt in 0..4 {
            match self.storage.delete_tails(None) {
                Ok(()) => return,
                Err(e) if e.kind == ErrorKind::Transient && attempt < 3 => {
                    std::thread::sleep(backoff(attempt, MAX_BACKOFF));
                }
                Err(e) => {
                    log::warn(&format!("{}: tail objects left in place: {e}", self.storage.destination()));
                    return;
                }
            }
        }
    }
}
