//! Recordings an earlier process left: listed as `stopping` at start-up, then settled once
//! the store's recovery has finished their files or objects.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tessera_plugins::journal::Destination;
use tessera_plugins::{Outcome, RecoveryOutcome};

use super::store::RecordingLocation;
use super::{Entry, Recording, RecordingStatus, Recordings};
use crate::json_store::{JsonStore, Stored};
use crate::time::rfc3339;

impl Recordings {
    /// Finishes what an earlier process left behind (blocking: S3 calls), then settles the
    /// interrupted recordings: `completed` up to the crash, `failed` if nothing could be kept,
    /// or still `stopping` when the store is unreachable (retried at the next start).
    pub fn recover(&self) {
        let reports = self.store.recover();
        let settled: Vec<Recording> = {
            let mut entries = self.lock();
            entries
                .values_mut()
                .filter(|e| e.interrupted)
                .map(|e| {
                    let report = reports.iter().find(|r| same_place(r.destination.as_ref(), &e.rec.location));
                    let rec = &mut e.rec;
                    match report.map(|r| &r.outcome) {
                        // No journal left: the file or object was already whole.
                        None => {
                            rec.status = RecordingStatus::Completed;
                            rec.error = Some(format!("{INTERRUPTED}; it was completed up to that moment"));
                        }
                        Some(RecoveryOutcome::Done(Outcome::Complete { bytes, .. })) => {
                            rec.status = RecordingStatus::Completed;
                            rec.bytes = *bytes;
                            rec.error = Some(format!("{INTERRUPTED}; it was completed up to that moment"));
                        }
                        Some(RecoveryOutcome::Done(Outcome::Empty)) => {
                            rec.status = RecordingStatus::Failed;
                            rec.error = Some(format!("{INTERRUPTED} before anything playable was recorded"));
                        }
                        Some(RecoveryOutcome::Done(Outcome::Failed { reason })) => {
                            rec.status = RecordingStatus::Failed;
                            rec.error = Some(format!("{INTERRUPTED}, and finishing it failed: {reason}"));
                        }
                        Some(RecoveryOutcome::Failed { reason }) => {
                            rec.error =
                                Some(format!("{INTERRUPTED}; finishing it is retried at the next start: {reason}"));
                            return rec.clone();
                        }
                        Some(RecoveryOutcome::InUse) => return rec.clone(),
                    }
                    e.interrupted = false;
                    rec.clone()
                })
                .collect()
        };
        for rec in &settled {
            self.save(rec);
        }
    }
}

/// Recordings an earlier process kept. One that was still running then ended with that
/// process: start-up recovery finishes its file or object up to that moment.
pub(super) fn load(state: &JsonStore) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    for Stored { value: mut rec, .. } in state.load_all::<Recording>() {
        let interrupted =
            matches!(rec.status, RecordingStatus::Starting | RecordingStatus::Recording | RecordingStatus::Stopping);
        if interrupted {
            rec.status = RecordingStatus::Stopping;
            rec.error = Some(format!("{INTERRUPTED}; finishing it up to that moment"));
            rec.ended_at.get_or_insert_with(|| rfc3339(SystemTime::now()));
        }
        entries.insert(rec.id.clone(), Entry { rec, live: None, interrupted });
    }
    entries
}

const INTERRUPTED: &str = "the server stopped during this recording";

fn same_place(destination: Option<&Destination>, location: &RecordingLocation) -> bool {
    match (destination, location) {
        (Some(Destination::S3 { bucket, key, .. }), RecordingLocation::S3 { bucket: b, key: k }) => {
            bucket == b && key == k
        }
        (Some(Destination::Local { location }), RecordingLocation::Local { path }) => location == path,
        _ => false,
    }
}
