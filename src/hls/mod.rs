//! LL-HLS outputs of rooms: the room's program (started on demand) cut into CMAF parts and
//! segments, served by Tessera at `/hls/{room}/{id}/index.m3u8` with blocking playlist reload,
//! and with `"s3": true` copied to the bucket for a CDN.
//!
//! Outputs' metadata is kept in `DATA_DIR/state/hls/` (saved at each change); an output that
//! was active when the process died is listed as stopped, saying so. The media itself lives in
//! memory for the playlist's window, and for [`KEPT_AFTER_STOP`] after the output stops so
//! players see the playlist's end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tessera_compositor::hls_output::HlsOutputSpec;
use tessera_compositor::layout::Layout;
use tessera_compositor::{OutputId, OutputSpec, Program, ProgramConfig, ProgramEvent};

pub mod files;
pub mod upload;

pub use files::{FileName, HlsFiles, Lookup};
use upload::{BucketTarget, ClientCell, Uploader};

use crate::error::{Error, Result};
use crate::json_store::{JsonStore, Stored};
use crate::locks::lock;
use crate::media::{ProgramHub, ProgramOrigin};
use crate::time::rfc3339;

/// How long a stopped output's files stay served (its playlist then says it has ended).
pub const KEPT_AFTER_STOP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HlsStatus {
    Active,
    Stopped,
}

/// Where the bucket copy is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HlsBucket {
    pub bucket: String,
    pub playlist_key: String,
}

/// An HLS output as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hls {
    pub id: String,
    pub room: String,
    pub status: HlsStatus,
    /// The playlist's path on this server (the route makes it a URL).
    pub playlist_path: String,
    pub layout: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `avc1.…,mp4a.40.2` once the first frames are out.
    pub codecs: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Complete segments so far, and the media time they cover.
    pub segments: u64,
    pub duration_s: f64,
    pub bytes: u64,
    pub s3: Option<HlsBucket>,
    /// Why it ended other than by a stop request.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

struct Entry {
    hls: Hls,
    /// Served while running and for a while after.
    files: Option<Arc<HlsFiles>>,
    /// What this process runs; `None` once stopped.
    live: Option<Live>,
}

struct Live {
    program: Arc<Program>,
    output: OutputId,
}

/// All HLS outputs of this process.
///
/// Lock order: `entries`, then a program's own locks. The hub's `rooms` is never taken under
/// `entries`.
#[derive(Clone)]
pub struct HlsOutputs {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    state: JsonStore,
    hub: ProgramHub,
    /// Set: `"s3": true` is possible.
    bucket: Option<(String, String)>,
    s3: ClientCell,
}

impl HlsOutputs {
    /// Outputs kept in `DATA_DIR/state/hls`; `bucket` and `prefix`: the server's S3 storage.
    pub fn new(hub: ProgramHub, data_dir: &std::path::Path, bucket: Option<(String, String)>) -> Self {
        let state = JsonStore::open(data_dir.join("state").join("hls"), "hls");
        let entries = Arc::new(Mutex::new(load(&state)));
        let outputs = HlsOutputs { entries, state, hub: hub.clone(), bucket, s3: ClientCell::default() };
        let this = outputs.clone();
        hub.listen(Arc::new(move |origin, event| {
            if let ProgramEvent::ProgramFailed { error } = event {
                this.end_with_program(origin, error);
            }
        }));
        outputs
    }

    /// From now on every saved output also goes to `mirror` (cluster mode: the records all
    /// nodes find an output's node by); the ones already known are given to it at once.
    pub fn share_with(&self, mirror: Arc<dyn crate::json_store::RecordMirror>) {
        self.state.set_mirror(mirror);
        for hls in self.list(None) {
            self.state.save(&hls.id, &hls);
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        lock(&self.entries)
    }

    /// Starts an HLS output of `room` (blocking: may build the room's program). `s3` asks for
    /// the bucket copy; `runtime` runs its uploads.
    pub fn start(
        &self,
        room: &str,
        layout: Layout,
        layout_name: String,
        config: ProgramConfig,
        s3: bool,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Hls> {
        let id = crate::ids::resource_id("hls");
        let bucket = match (s3, &self.bucket) {
            (false, _) => None,
            (true, Some((bucket, prefix))) => {
                Some(BucketTarget { bucket: bucket.clone(), prefix: format!("{prefix}hls/{room}/{id}/") })
            }
            (true, None) => {
                return Err(crate::error::invalid("/s3", "this server has no S3 bucket configured (--s3-bucket)"));
            }
        };
        let uploader = bucket.clone().map(|t| Uploader::start(runtime, t, self.s3.clone()));
        let files = Arc::new(HlsFiles::new(uploader));
        let spec = OutputSpec::Hls(HlsOutputSpec::new(files.clone()));
        let (program, output) =
            self.hub.attach_output(room, config, layout, spec, |program, output| Ok((program.clone(), output)))?;
        let hls = Hls {
            id: id.clone(),
            room: room.into(),
            status: HlsStatus::Active,
            playlist_path: format!("/hls/{room}/{id}/index.m3u8"),
            layout: layout_name,
            started_at: rfc3339(SystemTime::now()),
            ended_at: None,
            codecs: None,
            width: None,
            height: None,
            segments: 0,
            duration_s: 0.0,
            bytes: 0,
            s3: bucket.map(|t| HlsBucket { bucket: t.bucket, playlist_key: format!("{}index.m3u8", t.prefix) }),
            error: None,
            node: None,
        };
        tracing::info!(hls = %id, room, "HLS output started");
        let entry = Entry { hls, files: Some(files), live: Some(Live { program, output }) };
        let shown = refresh(&entry);
        self.hub.webhooks().send("hls.started", room, serde_json::to_value(&shown).unwrap_or_default());
        let mut entries = self.lock();
        self.state.save(&id, &shown);
        entries.insert(id, entry);
        Ok(shown)
    }

    pub fn get(&self, id: &str) -> Option<Hls> {
        self.lock().get(id).map(refresh)
    }

    pub fn list(&self, room: Option<&str>) -> Vec<Hls> {
        self.lock().values().filter(|e| room.is_none_or(|r| e.hls.room == r)).map(refresh).collect()
    }

    /// The files of output `id` of `room`, while they are served.
    pub fn files(&self, room: &str, id: &str) -> Option<Arc<HlsFiles>> {
        self.lock().get(id).filter(|e| e.hls.room == room).and_then(|e| e.files.clone())
    }

    /// Finishes the output (its last part and segment are written, the playlist ends) and
    /// stops the room's program if nothing else uses it.
    pub fn stop(&self, id: &str) -> Result<Hls> {
        let (live, room) = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| Error::NotFound(format!("no HLS output {id}")))?;
            let Some(live) = e.live.take() else {
                return Err(Error::Conflict(format!("HLS output {id} has already stopped")));
            };
            e.hls.status = HlsStatus::Stopped;
            e.hls.ended_at = Some(rfc3339(SystemTime::now()));
            (live, e.hls.room.clone())
        };
        if let Err(err) = live.program.detach_output(live.output) {
            tracing::warn!(hls = %id, %err, "HLS output did not finish cleanly");
        }
        self.hub.stop_if_idle(&room);
        let shown = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| Error::NotFound(format!("no HLS output {id}")))?;
            let shown = refresh(e);
            e.hls = shown.clone();
            self.state.save(id, &shown);
            shown
        };
        self.forget_files_later(id);
        tracing::info!(hls = %id, room, segments = shown.segments, "HLS output stopped");
        self.hub.webhooks().send("hls.stopped", &room, serde_json::to_value(&shown).unwrap_or_default());
        Ok(shown)
    }

    /// Stops every active output (a graceful stop); returns how many there were.
    pub fn stop_all(&self) -> usize {
        let active: Vec<String> = self.lock().values().filter(|e| e.live.is_some()).map(|e| e.hls.id.clone()).collect();
        for id in &active {
            if let Err(err) = self.stop(id) {
                tracing::warn!(hls = %id, %err, "HLS output could not be stopped");
            }
        }
        active.len()
    }

    /// The room's program failed as a whole: its outputs stop, saying why.
    fn end_with_program(&self, origin: &ProgramOrigin, error: &str) {
        let mut ended = Vec::new();
        {
            let mut entries = self.lock();
            for e in entries.values_mut() {
                let Some(live) = &e.live else { continue };
                if e.hls.room != origin.room || live.program.id() != origin.program {
                    continue;
                }
                e.hls = refresh(e);
                e.hls.status = HlsStatus::Stopped;
                e.hls.ended_at = Some(rfc3339(SystemTime::now()));
                e.hls.error = Some(format!("the room's program failed: {error}"));
                e.live = None;
                self.state.save(&e.hls.id, &e.hls);
                ended.push(e.hls.clone());
            }
        }
        for hls in ended {
            tracing::warn!(hls = %hls.id, room = %hls.room, "HLS output stopped with its program");
            self.forget_files_later(&hls.id);
            self.hub.webhooks().send("hls.stopped", &hls.room, serde_json::to_value(&hls).unwrap_or_default());
        }
    }

    fn forget_files_later(&self, id: &str) {
        let weak = Arc::downgrade(&self.entries);
        let id = id.to_owned();
        let spawned = std::thread::Builder::new().name("tessera-hls-expiry".into()).spawn(move || {
            std::thread::sleep(KEPT_AFTER_STOP);
            if let Some(entries) = weak.upgrade()
                && let Some(e) = lock(&entries).get_mut(&id)
                && e.live.is_none()
            {
                e.files = None;
            }
        });
        if let Err(err) = spawned {
            tracing::warn!(%err, "cannot schedule the HLS files' expiry: they are kept");
        }
    }
}

/// The record with the files' current figures.
fn refresh(e: &Entry) -> Hls {
    let mut h = e.hls.clone();
    if let Some(files) = &e.files {
        let f = files.summary();
        h.codecs = f.codecs.or(h.codecs);
        h.width = f.width.or(h.width);
        h.height = f.height.or(h.height);
        h.segments = f.segments;
        h.duration_s = (f.duration.as_secs_f64() * 1000.0).round() / 1000.0;
        h.bytes = f.bytes;
    }
    h
}

/// Outputs an earlier process kept; one still active then ended with that process.
fn load(state: &JsonStore) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    for Stored { value: mut hls, saved_at } in state.load_all::<Hls>() {
        if hls.status == HlsStatus::Active {
            hls.status = HlsStatus::Stopped;
            hls.ended_at = Some(rfc3339(saved_at));
            hls.error = Some("the server stopped during this HLS output".into());
            state.save(&hls.id, &hls);
        }
        entries.insert(hls.id.clone(), Entry { hls, files: None, live: None });
    }
    entries
}
