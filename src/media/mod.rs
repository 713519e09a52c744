//! The bridge between the SFU and the compositor, in process: rooms' running programs (started
//! on demand, stopped once nothing uses them) and the tracks their participants publish. Every
//! published track is handed to the room's program (if it has one) as RTP, with its sender
//! reports for lip sync (`handoff.rs`); the program's keyframe requests go back to the
//! publisher as PLIs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tessera_compositor::layout::Layout;
use tessera_compositor::{
    OutputId, OutputSpec, Program, ProgramConfig, ProgramEvent, ProgramId, RenditionRequest, TrackId, VideoFormat,
};
use tessera_sfu::{KeyframeRequester, TrackInfo};

mod handoff;
mod inputs;
pub mod placeholders;
pub mod publication;
pub mod whep;

use handoff::add_input;
pub use handoff::track_params;

use crate::error::{Error, Result};
use crate::locks::lock;
use crate::room_events::RoomLifecycle;
use crate::webhooks::Webhooks;

/// A published track and, when the room has a program, its input there.
struct Track {
    info: TrackInfo,
    keyframes: KeyframeRequester,
    input: Option<TrackId>,
    /// Publication order in the room: a program started later adds tracks in this order, so
    /// grids keep the room's join order.
    seq: u64,
    /// Who the participant is in the program (layouts' `identity` selectors, pins): the
    /// token's identity, or the SFU's participant id when there is none or it is taken.
    program_id: String,
}

type KeyframeRoutes = Arc<Mutex<HashMap<TrackId, KeyframeRequester>>>;

#[derive(Default)]
struct RoomMedia {
    /// By SFU track id.
    tracks: HashMap<String, Track>,
    next_seq: u64,
    /// The SFU's current active speaker (its participant id), for a program started later.
    active_speaker: Option<String>,
    /// Identities pinned by the application (layouts' `pinned` selector).
    pinned: Vec<String>,
    /// Lost participants the running program keeps tiles for.
    placeholders: placeholders::Placeholders,
    /// The program published into the room as a participant, while it is.
    publication: Option<publication::Publication>,
    program: Option<Arc<Program>>,
    /// The program's inputs → their publishers. A lock of its own: the program may ask for a
    /// keyframe from inside `add_track`, while the rooms lock is held.
    keyframe_routes: KeyframeRoutes,
}

/// Where a program event comes from. Output and track ids count from 1 in every program, so a
/// report is only known by the program that sent it, not by its room or output alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramOrigin {
    pub room: String,
    pub program: ProgramId,
}

/// Told about every event of every room's program.
pub type ProgramListener = Arc<dyn Fn(&ProgramOrigin, &ProgramEvent) + Send + Sync>;

/// Rooms' published tracks and running programs.
///
/// Lock order: `rooms`, then `inputs`; `rooms`, then a program's own locks (inside its
/// methods), then a room's `keyframe_routes` (a program asks for a keyframe from inside
/// `add_track`); `rooms`, then the recordings' `entries` (a recording's output is noted inside
/// [`Self::with_program`]). `listeners` is a leaf. Program events reach the listeners with the
/// program's locks released, so a listener may call into the hub.
#[derive(Default, Clone)]
pub struct ProgramHub {
    rooms: Arc<Mutex<HashMap<String, RoomMedia>>>,
    listeners: Arc<Mutex<Vec<ProgramListener>>>,
    webhooks: Webhooks,
    /// Room webhooks: told when programs start and stop.
    lifecycle: Arc<RoomLifecycle>,
    /// SFU track id → (program, input) for the per-packet path.
    inputs: Arc<inputs::InputTable>,
    /// Programs this node runs at most (0: no limit).
    program_budget: Arc<std::sync::atomic::AtomicU32>,
}

impl ProgramHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub that reports rooms, participants and destinations to `webhooks`.
    pub fn with_webhooks(webhooks: Webhooks) -> Self {
        let lifecycle = Arc::new(RoomLifecycle::new(webhooks.clone()));
        let hub = ProgramHub { webhooks: webhooks.clone(), lifecycle, ..Self::default() };
        hub.listen(Arc::new(move |origin, event| {
            if let ProgramEvent::DestinationChanged { destination, status, error } = event {
                let name = match status {
                    tessera_compositor::DestinationStatus::Live => "destination.live",
                    tessera_compositor::DestinationStatus::Reconnecting => "destination.reconnecting",
                    tessera_compositor::DestinationStatus::Failed => "destination.failed",
                    tessera_compositor::DestinationStatus::Connecting => return,
                };
                webhooks.send(name, &origin.room, serde_json::json!({ "destination": destination.0, "error": error }));
            }
        }));
        hub
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// At most `budget` programs at once: one more is refused with [`Error::NoCapacity`]
    /// rather than overload the machine (every program on it would drop frames).
    pub fn set_program_budget(&self, budget: u32) {
        self.program_budget.store(budget, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn program_budget(&self) -> u32 {
        self.program_budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// In a cluster: room and participant events go to `sink`, which sends `room.started`
    /// and `room.ended` once for the whole room.
    pub fn set_room_event_sink(&self, sink: Arc<dyn crate::room_events::RoomEventSink>) {
        self.lifecycle.set_sink(sink);
    }

    /// What the SFU tells of joins and leaves, for the room and participant webhooks.
    pub fn room_observer(&self) -> Arc<dyn tessera_sfu::RoomObserver> {
        self.lifecycle.clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, RoomMedia>> {
        lock(&self.rooms)
    }

    fn inputs(&self) -> &inputs::InputTable {
        &self.inputs
    }

    /// Starts a room's program; the tracks already published join it at once.
    pub fn start_program(&self, room: &str, config: ProgramConfig, layout: Layout) -> Result<Arc<Program>> {
        self.start_program_locked(&mut self.lock(), room, config, layout)
    }

    fn start_program_locked(
        &self,
        rooms: &mut HashMap<String, RoomMedia>,
        room: &str,
        config: ProgramConfig,
        layout: Layout,
    ) -> Result<Arc<Program>> {
        let budget = self.program_budget();
        let running = rooms.values().filter(|m| m.program.is_some()).count();
        if budget > 0 && running >= budget as usize && rooms.get(room).is_none_or(|m| m.program.is_none()) {
            return Err(Error::NoCapacity(format!(
                "this node runs {running} room programs, its budget (--program-budget {budget}); try again later"
            )));
        }
        let media = rooms.entry(room.to_string()).or_default();
        if media.program.is_some() {
            return Err(Error::Conflict(format!("room {room} already has a program")));
        }
        let program = Arc::new(Program::new(config, layout)?);
        let listeners = self.listeners.clone();
        let origin = ProgramOrigin { room: room.to_string(), program: program.id() };
        program.set_event_handler(Arc::new(move |event| {
            let all: Vec<ProgramListener> = lock(&listeners).clone();
            for listener in all {
                listener(&origin, &event);
            }
        }));
        let routes = media.keyframe_routes.clone();
        program.set_keyframe_request_handler(Arc::new(move |input| {
            let requester = lock(&routes).get(&input).cloned();
            if let Some(r) = requester {
                r.request();
            }
        }));
        // Participants in the order they first published, each one's tracks in order.
        let first_seq = |participant: &str| {
            media.tracks.values().filter(|t| t.info.participant_id == participant).map(|t| t.seq).min().unwrap_or(0)
        };
        program.set_pinned(&media.pinned);
        let mut order: Vec<(u64, u64, String)> =
            media.tracks.iter().map(|(id, t)| (first_seq(&t.info.participant_id), t.seq, id.clone())).collect();
        order.sort();
        for (_, _, sfu_id) in order {
            let Some(track) = media.tracks.get_mut(&sfu_id) else { continue };
            track.keyframes.media().open();
            match add_input(&program, &track.info, &track.program_id, &track.keyframes, &media.keyframe_routes) {
                Ok(input) => {
                    track.input = Some(input);
                    self.inputs().insert(sfu_id.clone(), program.clone(), input);
                }
                Err(e) => {
                    // Nothing to hand its packets to.
                    track.keyframes.media().close();
                    tracing::warn!(room, track = %sfu_id, error = %e, "track cannot join the program")
                }
            }
        }
        program.set_active_speakers(&media.speaker_ranking());
        media.placeholders.clear();
        media.program = Some(program.clone());
        self.lifecycle.program(room, true);
        Ok(program)
    }

    /// Pins participants of a room by identity (layouts' `pinned` selector), now and in any
    /// program the room starts later; returns the running program, if any, to wait on.
    pub fn set_pinned(&self, room: &str, identities: Vec<String>) -> Option<Arc<Program>> {
        let mut rooms = self.lock();
        let media = rooms.entry(room.to_string()).or_default();
        media.pinned = identities;
        if let Some(program) = &media.program {
            program.set_pinned(&media.pinned);
        }
        media.program.clone()
    }

    /// The room's pinned identities.
    pub fn pinned(&self, room: &str) -> Vec<String> {
        self.lock().get(room).map(|m| m.pinned.clone()).unwrap_or_default()
    }

    /// Registers a listener for every program's events (recordings, streams).
    pub fn listen(&self, listener: ProgramListener) {
        lock(&self.listeners).push(listener);
    }

    /// Calls `attach` with the room's running program, or with one started from `config` and
    /// `layout` when the room has none (`true` then), under the hub's lock. A program chosen
    /// here cannot be found idle and stopped before `attach` has given it what keeps it
    /// running (an output, a destination); a program started for a call that then fails is
    /// stopped again.
    pub fn with_program<T>(
        &self,
        room: &str,
        config: ProgramConfig,
        layout: Layout,
        attach: impl FnOnce(&Arc<Program>, bool) -> Result<T>,
    ) -> Result<T> {
        let mut rooms = self.lock();
        let running = rooms.get(room).and_then(|m| m.program.clone());
        let (program, started) = match running {
            Some(p) => (p, false),
            None => (self.start_program_locked(&mut rooms, room, config, layout)?, true),
        };
        let result = attach(&program, started);
        if result.is_err() && started && program.is_idle() {
            drop(rooms);
            self.stop_program_if(room, |p| Arc::ptr_eq(p, &program) && p.is_idle());
        }
        result
    }

    /// Attaches an output wanting `config`'s picture with `layout` to the room's program,
    /// starting one if the room has none. An output of the program's size shows `layout` on it
    /// (before its first frame, as the program has one layout); one of another size gets a
    /// rendition of that size with `layout`, composed from the same decoded inputs (the audio
    /// is the program's). `register` runs with the output attached, before the program can
    /// report on it.
    pub fn attach_output<T>(
        &self,
        room: &str,
        config: ProgramConfig,
        layout: Layout,
        spec: OutputSpec,
        register: impl FnOnce(&Arc<Program>, OutputId) -> Result<T>,
    ) -> Result<T> {
        let format = VideoFormat::of(&config);
        if self.program(room).is_none_or(|p| VideoFormat::of(p.config()) == format) {
            self.show_layout(room, &layout)?;
        }
        let request = RenditionRequest { format, layout: layout.clone() };
        self.with_program(room, config, layout, |program, _| {
            let output = program.attach_output_in(&request, spec)?;
            register(program, output)
        })
    }

    /// Shows `layout` on the room's running program, if any, before an output is attached to
    /// it (returns once it is on screen). A program that stops meanwhile (its last output
    /// ended a moment ago) is no error: [`Self::with_program`] then starts a new one, with
    /// `layout` from the start.
    pub fn show_layout(&self, room: &str, layout: &Layout) -> Result<()> {
        let Some(program) = self.program(room) else { return Ok(()) };
        match program.set_layout(layout.clone()) {
            Err(tessera_compositor::CompositorError::NotRunning) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Stops the room's program if nothing depends on it any more (off the caller's thread:
    /// this may be called from the program's own bus thread).
    pub fn stop_if_idle(&self, room: &str) {
        if self.program(room).is_some_and(|p| p.is_idle()) {
            let hub = self.clone();
            let room = room.to_string();
            std::thread::spawn(move || {
                // Checked again, under the lock `with_program` attaches under.
                let stopped = hub.stop_program_if(&room, |p| p.is_idle());
                if stopped.is_some() {
                    drop(stopped);
                    release_freed_memory();
                }
            });
        }
    }

    /// Rooms with a running program.
    pub fn rooms(&self) -> Vec<String> {
        self.lock().iter().filter(|(_, m)| m.program.is_some()).map(|(r, _)| r.clone()).collect()
    }

    /// The room's running program, if any.
    pub fn program(&self, room: &str) -> Option<Arc<Program>> {
        self.lock().get(room).and_then(|m| m.program.clone())
    }

    /// Stops a room's program (its outputs are finished first).
    pub fn stop_program(&self, room: &str) -> Option<Arc<Program>> {
        self.stop_program_if(room, |_| true)
    }

    /// Stops the room's program if `should` says so, deciding under the hub's lock.
    fn stop_program_if(&self, room: &str, should: impl FnOnce(&Arc<Program>) -> bool) -> Option<Arc<Program>> {
        // The program's participant leaves with it (dropped after the lock).
        let publication;
        let program = {
            let mut rooms = self.lock();
            let media = rooms.get_mut(room)?;
            if !media.program.as_ref().is_some_and(should) {
                return None;
            }
            for t in media.tracks.values_mut() {
                t.input = None;
                t.keyframes.media().close();
            }
            lock(&media.keyframe_routes).clear();
            media.placeholders.clear();
            publication = media.publication.take();
            let program = media.program.take()?;
            // Nothing of the room is left to remember once its program and tracks are gone.
            if media.tracks.is_empty() && media.pinned.is_empty() {
                rooms.remove(room);
            }
            program
        };
        drop(publication);
        self.inputs().remove_program(&program);
        self.lifecycle.program(room, false);
        if let Err(e) = program.stop() {
            tracing::warn!(room, error = %e, "program did not stop cleanly");
        }
        Some(program)
    }
}

impl RoomMedia {
    /// The program id for a newly published track: the participant's, if it has tracks
    /// already; else its token identity unless another participant holds it (two tabs with
    /// one token); else the SFU's participant id.
    fn program_id_for(&self, info: &TrackInfo) -> String {
        if let Some(t) = self.tracks.values().find(|t| t.info.participant_id == info.participant_id) {
            return t.program_id.clone();
        }
        match &info.participant_identity {
            Some(identity) if !self.tracks.values().any(|t| &t.program_id == identity) => identity.clone(),
            _ => info.participant_id.clone(),
        }
    }

    /// The active speaker as the program knows them.
    fn speaker_ranking(&self) -> Vec<String> {
        let Some(speaker) = &self.active_speaker else { return Vec::new() };
        self.tracks
            .values()
            .find(|t| &t.info.participant_id == speaker)
            .map(|t| vec![t.program_id.clone()])
            .unwrap_or_default()
    }
}

/// Hands memory freed by a stopped program back to the OS. glibc keeps freed memory in its
/// per-thread arenas (a program's many streaming threads make many of them), so without this
/// the process's RSS stays at its busiest however many programs have ended.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
