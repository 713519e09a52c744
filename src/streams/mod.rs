//! Live streams of rooms: a set of RTMP(S) destinations on the room's program (started on
//! demand). Each destination connects, goes live and reconnects on its own; the stream shows
//! their state with the stream keys masked.
//!
//! Streams' metadata is kept in `DATA_DIR/state/streams/` (saved at each change and every
//! [`SNAPSHOT_EVERY`] while active) with the keys masked: streams are not resumed after a
//! restart, so the keys are never needed again. A stream that was active when the process
//! died is listed as stopped at its last snapshot, with an error saying so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tessera_compositor::destination::{DestinationId, DestinationInfo, DestinationSpec, IngestPreset, RtmpUrl};
use tessera_compositor::layout::Layout;
use tessera_compositor::{Program, ProgramConfig, ProgramEvent, RenditionRequest, VideoFormat};

mod request;

use request::{destination_error, invalid};
pub use request::{parse_preset, parse_urls};

use crate::error::{Error, Result};
use crate::json_store::{JsonStore, Stored};
use crate::locks::lock;
use crate::media::{ProgramHub, ProgramOrigin};
use crate::time::rfc3339;

/// How often an active stream's figures are saved, so a killed process leaves them this
/// fresh.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    Active,
    Stopped,
}

/// A stream as the API shows it (and as it is kept on disk: stream keys masked).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    pub id: String,
    pub room: String,
    pub status: StreamStatus,
    pub preset: String,
    pub layout: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub destinations: Vec<DestinationInfo>,
    /// Why the stream ended other than by a stop request (the server stopped).
    #[serde(default)]
    pub error: Option<String>,
    /// In a cluster, the node that streams it (set in answers and shared records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

struct Entry {
    stream: Stream,
    /// What this process streams; `None` for streams an earlier process ran, and once a
    /// stream has stopped (so a stopped stream keeps no program alive).
    live: Option<Live>,
}

#[derive(Clone)]
struct Live {
    preset: IngestPreset,
    program: Arc<Program>,
    destinations: Vec<DestinationId>,
    /// The picture and layout of the stream's own rendition, when it asked for a size other
    /// than the room's program.
    rendition: Option<RenditionRequest>,
}

impl Live {
    fn destination(&self, url: RtmpUrl) -> DestinationSpec {
        let spec = DestinationSpec::new(url).with_preset(self.preset.clone());
        match &self.rendition {
            Some(r) => spec.with_rendition(r.clone()),
            None => spec,
        }
    }
}

/// All streams of this process.
///
/// Lock order: `entries`, then a program's own locks (`refresh` reads its destinations) and
/// the cluster's records (`state` saves under `entries`). The hub's `rooms` is never taken
/// under `entries`.
#[derive(Clone)]
pub struct Streams {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    /// The streams' metadata, kept across restarts; written under the entries' lock so an
    /// older snapshot never overwrites a newer state.
    state: JsonStore,
    hub: ProgramHub,
}

impl Streams {
    /// Streams kept in `DATA_DIR/state/streams`, with those an earlier process left.
    pub fn new(hub: ProgramHub, data_dir: &std::path::Path) -> Self {
        let state = JsonStore::open(data_dir.join("state").join("streams"), "stream");
        let entries = Arc::new(Mutex::new(load(&state)));
        let weak = Arc::downgrade(&entries);
        let snapshots = state.clone();
        let spawned = std::thread::Builder::new().name("tessera-streams-state".into()).spawn(move || {
            loop {
                std::thread::sleep(SNAPSHOT_EVERY);
                let Some(entries) = weak.upgrade() else { return };
                let entries = lock(&entries);
                for e in entries.values().filter(|e| e.stream.status == StreamStatus::Active) {
                    snapshots.save(&e.stream.id, &refresh(e));
                }
            }
        });
        if let Err(err) = spawned {
            tracing::warn!(%err, "cannot start saving streams' figures; they are saved at each change only");
        }
        let streams = Streams { entries, state, hub: hub.clone() };
        let this = streams.clone();
        hub.listen(Arc::new(move |origin, event| {
            if let ProgramEvent::ProgramFailed { error } = event {
                this.end_with_program(origin, error);
            }
        }));
        streams
    }

    /// The room's program failed as a whole: its active streams stop, saying why.
    fn end_with_program(&self, origin: &ProgramOrigin, error: &str) {
        let mut entries = self.lock();
        for e in entries.values_mut() {
            let Some(live) = &e.live else { continue };
            if e.stream.room != origin.room || live.program.id() != origin.program {
                continue;
            }
            e.stream.destinations = refresh(e).destinations;
            e.stream.status = StreamStatus::Stopped;
            e.stream.ended_at = Some(rfc3339(SystemTime::now()));
            e.stream.error = Some(format!("the room's program failed: {error}"));
            e.live = None;
            tracing::warn!(stream = %e.stream.id, room = %e.stream.room, "stream stopped with its program");
            self.state.save(&e.stream.id, &e.stream);
            self.hub.webhooks().send(
                "stream.stopped",
                &e.stream.room,
                serde_json::to_value(&e.stream).unwrap_or_default(),
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        lock(&self.entries)
    }

    /// Starts streaming `room` to `urls` (blocking: may build the room's program). A new
    /// program takes what the preset requires; a running one must already meet it.
    pub fn start(
        &self,
        room: &str,
        urls: Vec<RtmpUrl>,
        preset: IngestPreset,
        (layout, layout_name): (Layout, String),
        mut config: ProgramConfig,
        sized: bool,
    ) -> Result<Stream> {
        if urls.is_empty() {
            return Err(invalid("/destinations", "at least one rtmp:// or rtmps:// URL"));
        }
        // A new program takes what the preset requires.
        preset.apply(&mut config);
        // A stream that names its picture, of another size than the running program, gets a
        // rendition of its own; otherwise it streams the program, showing its layout.
        let format = VideoFormat::of(&config);
        let rendition = self
            .hub
            .program(room)
            .filter(|p| sized && VideoFormat::of(p.config()) != format)
            .map(|_| RenditionRequest { format, layout: layout.clone() });
        if rendition.is_none() {
            self.hub.show_layout(room, &layout)?;
        }
        let (live, ids) = self.hub.with_program(room, config, layout, |program, _| {
            let live = Live { preset: preset.clone(), program: program.clone(), destinations: Vec::new(), rendition };
            let mut ids = Vec::new();
            for url in urls {
                match program.add_destination(live.destination(url)) {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        for id in ids {
                            let _ = program.remove_destination(id);
                        }
                        return Err(destination_error(e));
                    }
                }
            }
            Ok((live, ids))
        })?;
        let id = new_id();
        let stream = Stream {
            id: id.clone(),
            room: room.into(),
            status: StreamStatus::Active,
            preset: preset_name(&preset),
            layout: layout_name,
            started_at: rfc3339(SystemTime::now()),
            ended_at: None,
            destinations: Vec::new(),
            error: None,
            node: None,
        };
        tracing::info!(stream = %id, room, destinations = ids.len(), "stream started");
        let entry = Entry { stream, live: Some(Live { destinations: ids, ..live }) };
        let shown = refresh(&entry);
        self.hub.webhooks().send("stream.started", room, serde_json::to_value(&shown).unwrap_or_default());
        let mut entries = self.lock();
        self.state.save(&id, &shown);
        entries.insert(id, entry);
        Ok(shown)
    }

    /// From now on every saved stream also goes to `mirror` (cluster mode: the records all
    /// nodes list); the ones already known are given to it at once.
    pub fn share_with(&self, mirror: Arc<dyn crate::json_store::RecordMirror>) {
        self.state.set_mirror(mirror);
        for stream in self.list(None) {
            self.state.save(&stream.id, &stream);
        }
    }

    pub fn get(&self, id: &str) -> Option<Stream> {
        self.lock().get(id).map(refresh)
    }

    pub fn list(&self, room: Option<&str>) -> Vec<Stream> {
        self.lock().values().filter(|e| room.is_none_or(|r| e.stream.room == r)).map(refresh).collect()
    }

    /// Changes a running stream: the layout (answers once shown) and its destinations.
    pub fn update(
        &self,
        id: &str,
        layout: Option<(Layout, String)>,
        add: Vec<RtmpUrl>,
        remove: Vec<u64>,
    ) -> Result<Stream> {
        let (mut live, current) = {
            let entries = self.lock();
            let e = entries.get(id).ok_or_else(|| Error::NotFound(format!("no stream {id}")))?;
            match (&e.live, e.stream.status) {
                (Some(live), StreamStatus::Active) => (live.clone(), live.destinations.clone()),
                _ => return Err(Error::Conflict(format!("stream {id} has stopped"))),
            }
        };
        let program = live.program.clone();
        for (i, d) in remove.iter().enumerate() {
            if !current.iter().any(|c| c.0 == *d) {
                return Err(invalid(
                    format!("/remove_destinations/{i}"),
                    format!("destination {d} is not part of this stream"),
                ));
            }
        }
        if let Some((layout, _)) = &layout {
            match &mut live.rendition {
                Some(r) => {
                    program.set_rendition_layout(r.format, layout.clone())?;
                    r.layout = layout.clone();
                }
                None => program.set_layout(layout.clone())?,
            }
        }
        let mut added = Vec::new();
        for url in add {
            added.push(program.add_destination(live.destination(url)).map_err(destination_error)?);
        }
        for d in &remove {
            let _ = program.remove_destination(DestinationId(*d));
        }
        let mut entries = self.lock();
        let e = entries.get_mut(id).ok_or_else(|| Error::NotFound(format!("no stream {id}")))?;
        if let Some(running) = &mut e.live {
            running.destinations.retain(|d| !remove.contains(&d.0));
            running.destinations.extend(added);
            running.rendition = live.rendition;
        }
        if let Some((_, name)) = layout {
            e.stream.layout = name;
        }
        let shown = refresh(e);
        if shown.status == StreamStatus::Active {
            self.state.save(id, &shown);
        }
        Ok(shown)
    }

    /// Stops every active stream (a graceful stop); returns how many there were.
    pub fn stop_all(&self) -> usize {
        let active: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.live.is_some() && e.stream.status == StreamStatus::Active)
            .map(|e| e.stream.id.clone())
            .collect();
        std::thread::scope(|scope| {
            for id in &active {
                scope.spawn(move || {
                    if let Err(err) = self.stop(id) {
                        tracing::warn!(stream = %id, %err, "stream could not be stopped");
                    }
                });
            }
        });
        active.len()
    }

    /// Stops every destination of the stream (blocking, a few seconds at most per stuck one).
    pub fn stop(&self, id: &str) -> Result<Stream> {
        let (program, ids, room) = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| Error::NotFound(format!("no stream {id}")))?;
            if e.stream.status != StreamStatus::Active || e.live.is_none() {
                return Err(Error::Conflict(format!("stream {id} has already stopped")));
            }
            e.stream.destinations = refresh(e).destinations;
            e.stream.status = StreamStatus::Stopped;
            e.stream.ended_at = Some(rfc3339(SystemTime::now()));
            let Some(live) = e.live.as_mut() else { return Err(Error::NotFound(format!("no stream {id}"))) };
            (live.program.clone(), std::mem::take(&mut live.destinations), e.stream.room.clone())
        };
        let mut finals = Vec::new();
        for d in ids {
            if let Ok(info) = program.remove_destination(d) {
                finals.push(info);
            }
        }
        self.hub.stop_if_idle(&room);
        let mut entries = self.lock();
        let e = entries.get_mut(id).ok_or_else(|| Error::NotFound(format!("no stream {id}")))?;
        e.stream.destinations = finals;
        e.live = None;
        self.state.save(id, &e.stream);
        self.hub.webhooks().send("stream.stopped", &room, serde_json::to_value(&e.stream).unwrap_or_default());
        Ok(e.stream.clone())
    }
}

fn refresh(e: &Entry) -> Stream {
    let mut s = e.stream.clone();
    if let (StreamStatus::Active, Some(live)) = (s.status, &e.live) {
        s.destinations = live.destinations.iter().filter_map(|d| live.program.destination(*d)).collect();
    }
    s
}

/// Streams an earlier process kept. One still active then ended with that process, at its
/// last snapshot.
fn load(state: &JsonStore) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    for Stored { value: mut stream, saved_at } in state.load_all::<Stream>() {
        if stream.status == StreamStatus::Active {
            stream.status = StreamStatus::Stopped;
            stream.ended_at = Some(rfc3339(saved_at));
            stream.error = Some("the server stopped during this stream".into());
            for d in &mut stream.destinations {
                d.live_for = None;
            }
            state.save(&stream.id, &stream);
        }
        entries.insert(stream.id.clone(), Entry { stream, live: None });
    }
    entries
}

fn preset_name(p: &IngestPreset) -> String {
    p.name()
}

fn new_id() -> String {
    crate::ids::resource_id("str")
}
