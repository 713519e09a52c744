//! One recording: the spool writer driven by the streaming thread, and its uploader thread.
//! Shared by both sink elements.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::{Feed, Outcome, Uploader};
use crate::error::{Error, Result};
use crate::isobmff::{BoxEvent, BoxScanner, FragmentTracker};
use crate::journal::{Destination, Entry, JOURNAL_EXT, JournalWriter, SPOOL_EXT};
use crate::lock;
use crate::storage::Storage;
use crate::storage::local::LocalStorage;
use crate::storage::s3::{S3Config, S3Storage};

/// Where a recording goes, with what is needed to reach it.
#[derive(Debug, Clone)]
pub enum Target {
    /// `tail_objects`: also store the fragments not yet in a part as tail objects.
    S3 {
        bucket: String,
        key: String,
        config: S3Config,
        tail_objects: bool,
    },
    Local {
        location: PathBuf,
    },
}

impl Target {
    pub(crate) fn destination(&self) -> Destination {
        match self {
            Target::S3 { bucket, key, config, .. } => Destination::S3 {
                bucket: bucket.clone(),
                key: key.clone(),
                region: config.region.clone(),
                endpoint_url: config.endpoint_url.clone(),
            },
            Target::Local { location } => Destination::Local { location: location.clone() },
        }
    }

    /// Blocking (the S3 client loads its configuration): call on the uploader thread.
    pub(crate) fn storage(&self) -> Box<dyn Storage> {
        match self {
            Target::S3 { bucket, key, config, .. } => Box::new(S3Storage::new(config, bucket, key)),
            Target::Local { location } => Box::new(LocalStorage::new(location)),
        }
    }
}

/// What the uploader reports to the element (turned into bus messages there).
pub type OutcomeHook = Box<dyn FnOnce(&Outcome, &Destination) + Send>;

/// Lock order: `journal` and the feed's lock are leaves, never held together (both are taken
/// under the sink's `state`, see `recordingsink/imp.rs`).
pub(crate) struct Recorder {
    spool: File,
    spool_path: PathBuf,
    journal: Arc<Mutex<JournalWriter>>,
    scanner: BoxScanner,
    tracker: FragmentTracker,
    events: Vec<BoxEvent>,
    written: u64,
    journaled_end: u64,
    pending: Vec<u64>,
    feed: Arc<Feed>,
    dest: Destination,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A new spool/journal name in `dir`: time, process and a counter keep it unique.
fn new_stem(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("rec-{}-{}-{n}", unix_ms(), std::process::id()))
}

impl Recorder {
    /// Creates spool and journal, and starts the uploader thread.
    pub fn start(target: Target, spool_dir: &Path, min_part_size: u64, hook: OutcomeHook) -> Result<Self> {
        std::fs::create_dir_all(spool_dir).map_err(Error::io("creating spool directory", spool_dir))?;
        let stem = new_stem(spool_dir);
        let spool_path = stem.with_extension(SPOOL_EXT);
        let journal_path = stem.with_extension(JOURNAL_EXT);
        let spool = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&spool_path)
            .map_err(Error::io("creating spool", &spool_path))?;
        let mut journal = JournalWriter::create(&journal_path)?;
        let dest = target.destination();
        let tail_objects = matches!(target, Target::S3 { tail_objects: true, .. });
        journal.append(&Entry::Begin {
            v: 1,
            dest: dest.clone(),
            min_part_size,
            started_unix_ms: unix_ms(),
            tail_objects,
        })?;
        let journal = Arc::new(Mutex::new(journal));
        let feed = Arc::new(Feed::default());

        let (j, f, sp) = (journal.clone(), feed.clone(), spool_path.clone());
        std::thread::Builder::new()
            .name("tessera-upload".into())
            .spawn(move || {
                let storage = target.storage();
                let dest = storage.destination().clone();
                let up = Uploader {
                    storage,
                    journal: j,
                    spool_path: sp,
                    min_part_size,
                    upload_id: None,
                    parts: Vec::new(),
                    feed: f,
                    deadline: None,
                    tail_objects,
                    tail_interval: crate::engine::TAIL_INTERVAL,
                };
                up.run(|o| hook(o, &dest));
            })
            .map_err(Error::io("starting uploader thread", &spool_path))?;

        Ok(Self {
            spool,
            spool_path,
            journal,
            scanner: BoxScanner::new(),
            tracker: FragmentTracker::default(),
            events: Vec::new(),
            written: 0,
            journaled_end: 0,
            pending: Vec::new(),
            feed,
            dest,
        })
    }

    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    pub fn spool_path(&self) -> &Path {
        &self.spool_path
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The upload's final failure, if it gave up.
    pub fn failure(&self) -> Option<String> {
        match &self.feed.lock().outcome {
            Some(Outcome::Failed { reason }) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Appends to the spool; at each new whole fragment, syncs it, journals it and hands it
    /// to the uploader. Never touches the network.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.spool.write_all(data).map_err(Error::io("writing spool", &self.spool_path))?;
        self.written += data.len() as u64;
        self.events.clear();
        self.scanner.push(data, &mut self.events)?;
        for e in &self.events {
            self.pending.extend(self.tracker.on_event(e));
        }
        let end = self.tracker.playable_end;
        if end > self.journaled_end {
            self.spool.sync_data().map_err(Error::io("syncing spool", &self.spool_path))?;
            lock(&self.journal).append(&Entry::Fragment { end })?;
            self.journaled_end = end;
            let ready = self.pending.partition_point(|&b| b <= end);
            self.feed.publish(self.pending.drain(..ready), end);
        }
        Ok(())
    }

    /// Normal end of stream: the object is everything written. Returns the outcome if the
    /// upload finishes within `timeout`; otherwise it goes on in the background.
    pub fn finish(&mut self, timeout: Duration) -> Result<Option<Outcome>> {
        if self.feed.lock().final_end.is_none() {
            self.spool.sync_data().map_err(Error::io("syncing spool", &self.spool_path))?;
            lock(&self.journal).append(&Entry::Eos { end: self.written })?;
            self.feed.finish(self.written);
        }
        Ok(self.feed.wait_outcome(timeout))
    }

    /// Stopped without end of stream: store what is journaled (whole fragments), in the
    /// background.
    pub fn abandon(&mut self) {
        self.feed.finish(self.journaled_end);
    }
}

impl Recorder {
    pub(crate) fn feed(&self) -> Arc<Feed> {
        self.feed.clone()
    }
}
