//! Recordings of rooms: each is an output of the room's program (started on demand) into the
//! [`RecordingStore`]. Status follows the program: `starting` until the first frame is
//! written, `recording`, `stopping` once asked to stop, then `completed` or `failed` when
//! the sink reports on its storage.

mod finish;
mod model;
mod recovery;
pub mod store;

pub use finish::FinishedRecordings;
pub use model::{Recording, RecordingStatus};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tessera_compositor::layout::Layout;
use tessera_compositor::{OutputId, Program, ProgramConfig, ProgramEvent};

use crate::error::{Error, Result};
use crate::json_store::JsonStore;
use crate::locks::lock;
use crate::media::{ProgramHub, ProgramOrigin};
use crate::time::rfc3339;
use store::RecordingStore;

struct Entry {
    rec: Recording,
    /// The program and output while this process records it; released once the recording
    /// has ended, so a finished recording keeps no program alive.
    live: Option<Live>,
    /// An earlier process died while recording it: `stopping` until start-up recovery has
    /// finished its file or object.
    interrupted: bool,
}

/// Where a running recording is: an output of one program.
#[derive(Clone)]
struct Live {
    program: Arc<Program>,
    output: OutputId,
}

impl Live {
    /// Whether a program's report is about this recording.
    fn is(&self, origin: &ProgramOrigin, output: OutputId) -> bool {
        self.program.id() == origin.program && self.output == output
    }
}

/// All recordings of this process.
///
/// Lock order: the hub's `rooms` (a recording starts inside `with_program`), then `entries`,
/// then a program's own locks (`refresh` reads its output's figures).
#[derive(Clone)]
pub struct Recordings {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    store: RecordingStore,
    /// The recordings' metadata, kept across restarts.
    state: JsonStore,
    hub: ProgramHub,
}

impl Recordings {
    pub fn new(store: RecordingStore, hub: ProgramHub) -> Self {
        let state = JsonStore::open(store.state_dir().to_path_buf(), "recording");
        let entries = recovery::load(&state);
        let recordings = Recordings { entries: Arc::new(Mutex::new(entries)), store, state, hub: hub.clone() };
        let this = recordings.clone();
        hub.listen(Arc::new(move |origin, event| this.on_event(origin, event)));
        recordings
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        lock(&self.entries)
    }

    /// Starts recording `room` (blocking: may build the room's program).
    pub fn start(&self, room: &str, layout: Layout, layout_name: String, config: ProgramConfig) -> Result<Recording> {
        let id = new_id();
        let location = self.store.location(room, &id)?;
        let spec = self.store.output(&location)?;
        let rec = Recording {
            id: id.clone(),
            room: room.into(),
            status: RecordingStatus::Starting,
            layout: layout_name,
            started_at: Some(rfc3339(SystemTime::now())),
            ended_at: None,
            duration_s: 0.0,
            bytes: 0,
            location,
            error: None,
            download_url: None,
            node: None,
        };
        // A running program of this size shows the new layout before the recording's first
        // frame; another size gets a rendition of its own.
        self.hub.attach_output(room, config, layout, spec, |program, output| {
            // Known before the program can report on the output.
            let live = Live { program: program.clone(), output };
            self.lock().insert(id.clone(), Entry { rec: rec.clone(), live: Some(live), interrupted: false });
            Ok::<(), Error>(())
        })?;
        tracing::info!(recording = %id, room, "recording started");
        self.save(&rec);
        self.hub.webhooks().send("recording.started", room, serde_json::to_value(&rec).unwrap_or_default());
        Ok(rec)
    }

    /// Program events: the sink's report ends a recording; so does its program failing.
    fn on_event(&self, origin: &ProgramOrigin, event: &ProgramEvent) {
        let (output, state, bytes, reason) = match event {
            ProgramEvent::OutputMessage { output, message } => (
                *output,
                message.get::<String>("state").unwrap_or_default(),
                message.get::<u64>("bytes").ok(),
                message.get::<String>("reason").ok(),
            ),
            ProgramEvent::OutputFailed { output, error } => (*output, "failed".into(), None, Some(error.clone())),
            ProgramEvent::ProgramFailed { error } => {
                self.fail_program(origin, error);
                return;
            }
            _ => return,
        };
        let mut entries = self.lock();
        let Some(entry) = entries
            .values_mut()
            .find(|e| e.rec.room == origin.room && e.live.as_ref().is_some_and(|l| l.is(origin, output)))
        else {
            return;
        };
        let final_figures = refresh(entry);
        let rec = &mut entry.rec;
        match state.as_str() {
            "complete" | "empty" => {
                rec.status = RecordingStatus::Completed;
                rec.bytes = bytes.unwrap_or(rec.bytes);
            }
            "failed" => {
                rec.status = RecordingStatus::Failed;
                rec.error = reason;
            }
            // `pending`: the upload goes on in the background; recovery finishes it.
            _ => return,
        }
        if matches!(final_figures.status, RecordingStatus::Starting | RecordingStatus::Recording) {
            // Ended without a stop request (a failed sink): keep the figures it reached.
            rec.duration_s = final_figures.duration_s;
        }
        entry.live = None;
        rec.ended_at.get_or_insert_with(|| rfc3339(SystemTime::now()));
        tracing::info!(recording = %rec.id, status = ?rec.status, bytes = rec.bytes, "recording ended");
        let room = rec.room.clone();
        let done = rec.clone();
        drop(entries);
        self.save(&done);
        let name = if done.status == RecordingStatus::Completed { "recording.completed" } else { "recording.failed" };
        self.hub.webhooks().send(name, &done.room, serde_json::to_value(&done).unwrap_or_default());
        self.hub.stop_if_idle(&room);
    }

    /// From now on every saved recording also goes to `mirror` (cluster mode: the records all
    /// nodes list); the ones already known are given to it at once.
    pub fn share_with(&self, mirror: Arc<dyn crate::json_store::RecordMirror>) {
        self.state.set_mirror(mirror);
        for rec in self.list(None) {
            self.save(&rec);
        }
    }

    pub fn get(&self, id: &str) -> Option<Recording> {
        let entries = self.lock();
        entries.get(id).map(refresh)
    }

    pub fn list(&self, room: Option<&str>) -> Vec<Recording> {
        self.lock().values().filter(|e| room.is_none_or(|r| e.rec.room == r)).map(refresh).collect()
    }

    /// The recording as an answer shows it: a completed S3 recording gets a fresh presigned
    /// `download_url`.
    pub async fn with_download_url(&self, mut rec: Recording) -> Recording {
        if rec.status == RecordingStatus::Completed {
            rec.download_url = self.store.download_url(&rec.location).await;
        }
        rec
    }

    /// Swaps the room's layout; returns once the program shows it (blocking).
    pub fn set_layout(&self, id: &str, layout: Layout, name: String) -> Result<Recording> {
        let live = {
            let entries = self.lock();
            let e = entries.get(id).ok_or_else(|| not_found(id))?;
            match (&e.live, e.rec.status) {
                (Some(live), RecordingStatus::Starting | RecordingStatus::Recording) => live.clone(),
                _ => return Err(ended(id)),
            }
        };
        // The layout of the recording's rendition (the program's own, or its size's).
        live.program.set_output_layout(live.output, layout)?;
        let mut entries = self.lock();
        let e = entries.get_mut(id).ok_or_else(|| not_found(id))?;
        e.rec.layout = name;
        Ok(refresh(e))
    }

    /// The room's program failed as a whole: its running recordings end `failed` (what their
    /// sinks stored so far is finished by the program's teardown or the next start's recovery).
    fn fail_program(&self, origin: &ProgramOrigin, error: &str) {
        let failed: Vec<Recording> = {
            let mut entries = self.lock();
            entries
                .values_mut()
                .filter(|e| {
                    e.rec.room == origin.room && e.live.as_ref().is_some_and(|l| l.program.id() == origin.program)
                })
                .map(|e| {
                    e.rec = refresh(e);
                    e.live = None;
                    e.rec.status = RecordingStatus::Failed;
                    e.rec.error = Some(format!("the room's program failed: {error}"));
                    e.rec.ended_at.get_or_insert_with(|| rfc3339(SystemTime::now()));
                    e.rec.clone()
                })
                .collect()
        };
        for rec in failed {
            tracing::warn!(recording = %rec.id, room = %rec.room, "recording failed with its program");
            self.save(&rec);
            self.hub.webhooks().send("recording.failed", &rec.room, serde_json::to_value(&rec).unwrap_or_default());
        }
    }

    /// Keeps the recording's metadata across restarts (best effort: a full disk is logged).
    fn save(&self, rec: &Recording) {
        self.state.save(&rec.id, rec);
    }

    /// Stops a recording (blocking until its output has finished; the upload may go on, and
    /// the status turns `completed` when the sink reports).
    pub fn stop(&self, id: &str) -> Result<Recording> {
        let (live, stopping) = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| not_found(id))?;
            let live = match (&e.live, e.rec.status) {
                (Some(live), RecordingStatus::Starting | RecordingStatus::Recording) => live.clone(),
                _ => return Err(ended(id)),
            };
            e.rec = refresh(e);
            e.rec.status = RecordingStatus::Stopping;
            (live, e.rec.clone())
        };
        self.save(&stopping);
        if let Err(err) = live.program.detach_output(live.output) {
            let failed = {
                let mut entries = self.lock();
                entries.get_mut(id).map(|e| {
                    e.live = None;
                    e.rec.status = RecordingStatus::Failed;
                    e.rec.error = Some(err.to_string());
                    e.rec.ended_at.get_or_insert_with(|| rfc3339(SystemTime::now()));
                    e.rec.clone()
                })
            };
            if let Some(rec) = failed {
                self.save(&rec);
            }
        }
        self.get(id).ok_or_else(|| not_found(id))
    }
}

/// The resource with live figures while the output runs.
fn refresh(e: &Entry) -> Recording {
    let mut rec = e.rec.clone();
    if let Some(stats) = e.live.as_ref().and_then(|l| l.program.output_stats(l.output)) {
        rec.duration_s = (stats.duration.as_secs_f64() * 1000.0).round() / 1000.0;
        if rec.status == RecordingStatus::Starting && stats.started_at.is_some() {
            rec.status = RecordingStatus::Recording;
        }
    }
    rec
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("no recording {id}"))
}

fn ended(id: &str) -> Error {
    Error::Conflict(format!("recording {id} has already ended"))
}

fn new_id() -> String {
    crate::ids::resource_id("rec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct() {
        assert_ne!(new_id(), new_id());
        assert!(new_id().starts_with("rec_"));
    }
}
