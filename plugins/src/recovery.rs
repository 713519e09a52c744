//! Start-up recovery: finishes the uploads of recordings whose process died.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{Feed, Outcome, Uploader};
use crate::error::{Error, Result};
use crate::isobmff::{BoxScanner, FragmentTracker};
use crate::journal::{Destination, JOURNAL_EXT, JournalWriter, read_journal, spool_path_for};
use crate::storage::Storage;
use crate::storage::local::LocalStorage;
use crate::storage::s3::{S3Config, S3Storage};

#[derive(Debug, Clone)]
pub struct RecoveryOptions {
    /// Connection settings; region and endpoint fall back to what the journal recorded.
    /// Bucket and key always come from the journal.
    pub s3: S3Config,
    /// How long to retry an unreachable storage before leaving a recording for next time.
    pub retry_for: Duration,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        Self { s3: S3Config::default(), retry_for: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// Stored (the object or file is complete), or nothing playable to store; spool and
    /// journal are removed.
    Done(Outcome),
    /// Could not be stored now; the journal says why, the spool is kept for the next try.
    Failed { reason: String },
    /// A running recording holds the journal.
    InUse,
}

#[derive(Debug, Clone)]
pub struct RecoveryReport {
    pub journal: PathBuf,
    pub destination: Option<Destination>,
    pub outcome: RecoveryOutcome,
}

/// Recovers every unfinished recording in `spool_dir` (journals `*.journal`), one after the
/// other. Blocking; safe to call from any thread, including inside a tokio runtime (use
/// `spawn_blocking` there so the runtime's workers are not held).
pub fn recover_spool_dir(spool_dir: &Path, options: &RecoveryOptions) -> Vec<RecoveryReport> {
    let mut journals: Vec<PathBuf> = match std::fs::read_dir(spool_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == JOURNAL_EXT))
            .collect(),
        Err(_) => return Vec::new(),
    };
    journals.sort();
    journals.iter().map(|j| recover_journal(j, options)).collect()
}

/// Recovers one recording from its journal.
pub fn recover_journal(journal: &Path, options: &RecoveryOptions) -> RecoveryReport {
    // On a thread of our own: the S3 calls block on the crate runtime.
    let result = std::thread::scope(|s| s.spawn(|| recover(journal, options)).join());
    let (destination, outcome) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (None, RecoveryOutcome::Failed { reason: e.to_string() }),
        Err(_) => (None, RecoveryOutcome::Failed { reason: "recovery panicked".into() }),
    };
    RecoveryReport { journal: journal.to_owned(), destination, outcome }
}

fn recover(journal_path: &Path, options: &RecoveryOptions) -> Result<(Option<Destination>, RecoveryOutcome)> {
    let Some(mut writer) = JournalWriter::open_existing(journal_path)? else {
        return Ok((None, RecoveryOutcome::InUse));
    };
    let state = read_journal(journal_path)?;
    let spool_path = spool_path_for(journal_path);
    let Some(dest) = state.dest.clone() else {
        return Err(Error::Journal { path: journal_path.to_owned(), reason: "no begin line".into() });
    };
    if state.complete {
        let _ = std::fs::remove_file(&spool_path);
        let _ = std::fs::remove_file(journal_path);
        let parts = state.parts.len() as u32;
        return Ok((Some(dest), RecoveryOutcome::Done(Outcome::Complete { bytes: state.final_end(), parts })));
    }
    if state.torn {
        writer.repair_torn_tail()?;
    }
    let spool_len = std::fs::metadata(&spool_path).map(|m| m.len()).unwrap_or(0);
    let final_end = state.final_end().min(spool_len);
    let boundaries = scan_boundaries(&spool_path, final_end)?;

    let storage: Box<dyn Storage> = match &dest {
        Destination::S3 { bucket, key, region, endpoint_url } => {
            let mut cfg = options.s3.clone();
            cfg.region = cfg.region.or_else(|| region.clone());
            cfg.endpoint_url = cfg.endpoint_url.or_else(|| endpoint_url.clone());
            Box::new(S3Storage::new(&cfg, bucket, key))
        }
        Destination::Local { location } => Box::new(LocalStorage::new(location)),
    };
    let feed = Arc::new(Feed::default());
    feed.publish(boundaries, final_end);
    feed.finish(final_end);
    let uploader = Uploader {
        storage,
        journal: Arc::new(Mutex::new(writer)),
        spool_path,
        min_part_size: state.min_part_size,
        upload_id: state.upload_id.clone(),
        parts: state.parts.clone(),
        feed,
        deadline: Some(Instant::now() + options.retry_for),
        // None are stored now (the end is known), but those of the process that died are
        // deleted once the upload is complete.
        tail_objects: state.tail_objects && matches!(dest, Destination::S3 { .. }),
        tail_interval: crate::engine::TAIL_INTERVAL,
    };
    let outcome = match uploader.run(|_| {}) {
        Outcome::Failed { reason } => RecoveryOutcome::Failed { reason },
        o => RecoveryOutcome::Done(o),
    };
    Ok((Some(dest), outcome))
}

/// Fragment starts in the spool before `limit`, where recovery may cut parts.
fn scan_boundaries(spool: &Path, limit: u64) -> Result<Vec<u64>> {
    let mut file = File::open(spool).map_err(Error::io("opening spool", spool))?.take(limit);
    let mut scanner = BoxScanner::new();
    let mut tracker = FragmentTracker::default();
    let (mut buf, mut events, mut out) = (vec![0; 1 << 20], Vec::new(), Vec::new());
    loop {
        let n = file.read(&mut buf).map_err(Error::io("reading spool", spool))?;
        if n == 0 {
            break;
        }
        events.clear();
        scanner.push(&buf[..n], &mut events)?;
        out.extend(events.iter().filter_map(|e| tracker.on_event(e)));
    }
    out.retain(|&b| b < limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isobmff::tests::sample_stream;
    use crate::journal::{Entry, PartRecord};

    /// A local recording that died after journaling two fragments (the journal's last line
    /// torn, the spool holding a partial third fragment) comes back as exactly those two.
    #[test]
    fn local_recording_recovers_to_the_last_journaled_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("out/rec.mp4");
        let data = sample_stream(3);
        let header = 24 + 308;
        let two = header + 2 * 108 + 1000 + 1007;
        let journal = dir.path().join("rec-1.journal");
        std::fs::write(spool_path_for(&journal), &data[..data.len() - 10]).unwrap();
        let mut w = JournalWriter::create(&journal).unwrap();
        for e in [
            Entry::Begin {
                v: 1,
                dest: Destination::Local { location: location.clone() },
                min_part_size: 1000,
                started_unix_ms: 0,
                tail_objects: false,
            },
            Entry::Upload { upload_id: "local".into() },
            Entry::Fragment { end: header as u64 + 1108 },
            Entry::Part(PartRecord { n: 1, offset: 0, len: header as u64, etag: "x".into() }),
            Entry::Fragment { end: two as u64 },
        ] {
            w.append(&e).unwrap();
        }
        drop(w);
        let mut f = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
        std::io::Write::write_all(&mut f, br#"{"t":"fragm"#).unwrap();

        let reports = recover_spool_dir(dir.path(), &RecoveryOptions::default());
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].outcome, RecoveryOutcome::Done(Outcome::Complete { bytes: two as u64, parts: 2 }));
        assert_eq!(std::fs::read(&location).unwrap(), &data[..two]);
        assert!(!journal.exists() && !spool_path_for(&journal).exists());
    }
}
