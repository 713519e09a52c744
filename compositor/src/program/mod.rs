//! `Program`: a room's live program. Tracks come and go at runtime, RTP is pushed from any
//! thread without blocking, the layout can be swapped between two frames, and outputs attach and
//! detach while the program runs.

mod backbone;
mod background;
mod bus;
mod elements;
mod input;
mod live;
mod opus_decoder;
mod output;
mod preview;
mod rtp_entry;
mod scene;
mod tile_crop;

pub use elements::{REQUIRED_ELEMENTS, missing_elements};
pub use input::TrackStats;
pub use output::{OutputId, OutputSpec, OutputStats};
pub use preview::{PREVIEW_FPS, PREVIEW_MAX_SIDE, Preview, preview_size};

use crate::config::ProgramConfig;
use crate::destination::{DestinationId, DestinationInfo, DestinationSpec, DestinationStatus};
use crate::error::{CompositorError, Result};
use crate::layout::{Canvas, Layout, ParticipantView, Tile, TileSource, VideoSize};
use crate::rtp::SenderReport;
use crate::sync::LipSync;
use crate::track::{TrackId, TrackKind, TrackParams};
use gst::prelude::*;
use input::TrackInput;
use output::Output;
use scene::Scene;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// Called with a track that needs a keyframe (the SFU turns it into a PLI).
pub type KeyframeRequestHandler = Arc<dyn Fn(TrackId) + Send + Sync>;
/// Called when something fails inside the program; the program itself keeps running.
pub type EventHandler = Arc<dyn Fn(ProgramEvent) + Send + Sync>;

#[derive(Debug, Clone, PartialEq)]
pub enum ProgramEvent {
    OutputFailed {
        output: OutputId,
        error: String,
    },
    TrackFailed {
        track: TrackId,
        error: String,
    },
    ProgramFailed {
        error: String,
    },
    /// A live-streaming destination changed state; `error` (stream key masked) says why it
    /// dropped.
    DestinationChanged {
        destination: DestinationId,
        status: DestinationStatus,
        error: Option<String>,
    },
    /// A sink inside an output reported on its recording (Tessera's recording sinks post a
    /// `tessera-recording` structure: `state` = `complete`, `failed`, `empty` or `pending`).
    OutputMessage {
        output: OutputId,
        message: gst::Structure,
    },
}

/// Figures about the running program.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProgramStats {
    /// Frames the compositor has produced since the start.
    pub frames: u64,
    /// Running time of the last produced frame.
    pub position: Duration,
    pub tracks: usize,
    pub outputs: usize,
}

/// Which program of this process: unique for the process's life, never reused (output and
/// track ids count from 1 in every program, so a report is only known by both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgramId(pub u64);

impl std::fmt::Display for ProgramId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "program-{}", self.0)
    }
}

static NEXT_PROGRAM: AtomicU64 = AtomicU64::new(1);

/// A room's program pipeline.
pub struct Program {
    id: ProgramId,
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pipeline: gst::Pipeline,
    config: ProgramConfig,
    backbone: backbone::Backbone,
    scene: Mutex<Scene>,
    scene_applied: Condvar,
    /// Serialises changes of the pipeline's topology (tracks, placeholders, outputs).
    topology: Mutex<()>,
    tracks: RwLock<BTreeMap<TrackId, Arc<TrackInput>>>,
    /// Name-card sources by participant.
    placeholders: Mutex<BTreeMap<String, gst::Bin>>,
    outputs: Mutex<BTreeMap<OutputId, Output>>,
    destinations: Mutex<live::Destinations>,
    /// Detached outputs whose sink is still storing what it received.
    draining: Mutex<BTreeMap<OutputId, (std::sync::mpsc::SyncSender<()>, Instant)>>,
    /// The live preview branch, while someone looks at it.
    preview: Mutex<Option<preview::PreviewBranch>>,
    preview_idle: Mutex<Duration>,
    next_id: AtomicU64,
    sync: Mutex<LipSync>,
    keyframe_handler: RwLock<Option<KeyframeRequestHandler>>,
    event_handler: RwLock<Option<EventHandler>>,
    frames: AtomicU64,
    position: AtomicU64,
    started: Instant,
    running: AtomicBool,
    bus_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Initialises GStreamer once; safe to call from anywhere.
pub fn init() -> Result<()> {
    gst::init().map_err(|e| CompositorError::Gst(e.to_string()))
}

impl Program {
    /// Builds and starts a program with `layout`; it runs (a background and silence) until stopped.
    pub fn new(config: ProgramConfig, layout: Layout) -> Result<Program> {
        init()?;
        config.validate()?;
        let pipeline = gst::Pipeline::builder().name("room-program").build();
        let backbone = backbone::build(&pipeline, &config, layout.background())?;
        let canvas = Canvas { width: config.width, height: config.height };
        let mut scene = Scene::new(layout, canvas);
        scene.set_background(backbone.background.clone());
        let inner = Arc::new(Inner {
            pipeline,
            config,
            backbone,
            scene: Mutex::new(scene),
            scene_applied: Condvar::new(),
            topology: Mutex::new(()),
            tracks: RwLock::new(BTreeMap::new()),
            placeholders: Mutex::new(BTreeMap::new()),
            outputs: Mutex::new(BTreeMap::new()),
            destinations: Mutex::new(live::Destinations::default()),
            draining: Mutex::new(BTreeMap::new()),
            preview: Mutex::new(None),
            preview_idle: Mutex::new(preview::PREVIEW_IDLE),
            next_id: AtomicU64::new(1),
            sync: Mutex::new(LipSync::default()),
            keyframe_handler: RwLock::new(None),
            event_handler: RwLock::new(None),
            frames: AtomicU64::new(0),
            position: AtomicU64::new(0),
            started: Instant::now(),
            running: AtomicBool::new(true),
            bus_thread: Mutex::new(None),
        });
        Inner::connect_compositor(&inner);
        let bus = bus::spawn(&inner)?;
        *lock(&inner.bus_thread) = Some(bus);
        inner.pipeline.set_state(gst::State::Playing)?;
        if let Err(e) = inner.backbone.background.start().and_then(|_| inner.backbone.prime_audio(&inner.config)) {
            let _ = inner.stop();
            return Err(e);
        }
        Ok(Program { id: ProgramId(NEXT_PROGRAM.fetch_add(1, Ordering::Relaxed)), inner })
    }

    /// This program's process-unique id.
    pub fn id(&self) -> ProgramId {
        self.id
    }

    pub fn config(&self) -> &ProgramConfig {
        &self.inner.config
    }

    pub fn set_keyframe_request_handler(&self, handler: KeyframeRequestHandler) {
        *self.inner.keyframe_handler.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    pub fn set_event_handler(&self, handler: EventHandler) {
        *self.inner.event_handler.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Adds a participant (shown as a name card until they publish video). Adding a track adds
    /// its participant too.
    pub fn add_participant(&self, identity: &str, name: &str) -> Result<()> {
        if identity.is_empty() {
            return Err(CompositorError::InvalidTrack("participant identity is empty".into()));
        }
        let _t = lock(&self.inner.topology);
        lock(&self.inner.scene).ensure_participant(identity, name);
        self.inner.refresh_placeholders()
    }

    /// Removes a participant and all their tracks.
    pub fn remove_participant(&self, identity: &str) -> Result<()> {
        let ids: Vec<TrackId> =
            read(&self.inner.tracks).values().filter(|t| t.params.participant == identity).map(|t| t.id).collect();
        for id in ids {
            self.remove_track(id)?;
        }
        let _t = lock(&self.inner.topology);
        lock(&self.inner.scene).remove_participant(identity);
        self.inner.refresh_placeholders()
    }

    /// Adds an input track; RTP for it may be pushed as soon as this returns.
    pub fn add_track(&self, params: TrackParams) -> Result<TrackId> {
        params.validate()?;
        let inner = &self.inner;
        let _t = lock(&inner.topology);
        if params.kind != TrackKind::Audio {
            let source = tile_source(params.kind);
            let exists = read(&inner.tracks)
                .values()
                .any(|t| t.params.participant == params.participant && t.params.kind == params.kind);
            if exists {
                return Err(CompositorError::InvalidTrack(format!(
                    "{} already publishes a {:?} track",
                    params.participant, source
                )));
            }
        }
        let id = TrackId(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let track = Arc::new(TrackInput::build(id, params.clone(), &inner.config, &inner.pipeline)?);
        Inner::connect_track(inner, &track);
        inner.pipeline.add(&track.bin)?;
        let src = track.src_pad().ok_or(CompositorError::Gst("track bin has no src".into()))?;
        let mixer = if track.is_video() { &inner.backbone.compositor } else { &inner.backbone.audiomixer };
        let mixer_pad =
            mixer.request_pad_simple("sink_%u").ok_or(CompositorError::Gst("mixer refused a sink pad".into()))?;
        if let Err(e) = src.link(&mixer_pad) {
            mixer.release_request_pad(&mixer_pad);
            let _ = inner.pipeline.remove(&track.bin);
            return Err(e.into());
        }
        if track.is_video() {
            // Hidden until the next layout pass places it: a new input never flashes full-frame.
            mixer_pad.set_property("alpha", 0.0f64);
        }
        {
            let mut scene = lock(&inner.scene);
            scene.ensure_participant(&params.participant, &params.name);
            if track.is_video() {
                let source = tile_source(params.kind);
                scene.register_pad(&params.participant, source, mixer_pad, track.label.clone(), track.crop.clone());
                scene.set_video(&params.participant, source, Some(VideoSize { width: 0, height: 0 }));
            }
        }
        lock(&inner.sync).add_track(id, &params.participant);
        write(&inner.tracks).insert(id, track.clone());
        track.bin.sync_state_with_parent()?;
        inner.refresh_placeholders()?;
        if track.is_video() {
            // Joining mid-stream: nothing decodes until the next keyframe, so ask for one now.
            inner.request_keyframe(&track);
        }
        tracing::info!(track = %id, participant = %params.participant, kind = ?params.kind, codec = ?params.codec, "track added");
        Ok(id)
    }

    /// Removes a track; its tile disappears (or becomes a name card) on the next frame.
    pub fn remove_track(&self, id: TrackId) -> Result<()> {
        let _t = lock(&self.inner.topology);
        self.inner.remove_track_locked(id)
    }

    /// Pushes one RTP packet of a track. Never blocks; malformed packets are rejected.
    pub fn push_rtp(&self, id: TrackId, packet: &[u8]) -> Result<()> {
        let track = read(&self.inner.tracks).get(&id).cloned();
        track.ok_or(CompositorError::UnknownTrack(id.0))?.push_rtp(packet)
    }

    /// Pushes an RTCP sender report of a track (used for lip sync).
    pub fn push_sender_report(&self, id: TrackId, sr: &SenderReport) -> Result<()> {
        let track = read(&self.inner.tracks).get(&id).cloned();
        track.ok_or(CompositorError::UnknownTrack(id.0))?.push_sender_report(sr)
    }

    pub fn track_stats(&self, id: TrackId) -> Option<TrackStats> {
        read(&self.inner.tracks).get(&id).map(|t| t.stats())
    }

    /// Swaps the layout. Returns once the program composes with it, so the caller knows that
    /// the next frames use the new layout. The encoder and the outputs are not touched.
    pub fn set_layout(&self, layout: Layout) -> Result<()> {
        let generation = lock(&self.inner.scene).set_layout(layout);
        self.inner.wait_applied(generation, Duration::from_secs(5))
    }

    /// Parses, validates and applies a layout document. An invalid one is refused with the
    /// JSON path and the reason, and the running program is left exactly as it was.
    pub fn set_layout_json(&self, json: &str) -> Result<()> {
        let layout = Layout::from_json_str(json)?;
        self.set_layout(layout)
    }

    pub fn layout(&self) -> Layout {
        lock(&self.inner.scene).layout().clone()
    }

    /// Active speakers, most recent first (from the SFU's audio levels).
    pub fn set_active_speakers(&self, ranking: &[String]) {
        lock(&self.inner.scene).set_active_speakers(ranking);
    }

    /// Participants pinned by the application (layouts with `pinned` regions show them).
    pub fn set_pinned(&self, identities: &[String]) {
        lock(&self.inner.scene).set_pinned(identities);
    }

    pub fn participants(&self) -> Vec<ParticipantView> {
        lock(&self.inner.scene).participants().cloned().collect()
    }

    /// The tiles of the last composed frame.
    pub fn tiles(&self) -> Vec<Tile> {
        lock(&self.inner.scene).tiles().to_vec()
    }

    /// Waits until every pending scene change is on screen.
    pub fn sync_scene(&self, timeout: Duration) -> Result<()> {
        let generation = lock(&self.inner.scene).generation();
        self.inner.wait_applied(generation, timeout)
    }

    pub fn attach_output(&self, spec: OutputSpec) -> Result<OutputId> {
        self.inner.attach_output(spec)
    }

    /// Finishes an output with EOS (the muxer writes its index) and removes it.
    pub fn detach_output(&self, id: OutputId) -> Result<OutputStats> {
        self.inner.detach_output(id, Duration::from_secs(10))
    }

    pub fn output_stats(&self, id: OutputId) -> Option<OutputStats> {
        lock(&self.inner.outputs).get(&id).map(|o| o.stats())
    }

    /// Starts streaming the program to an RTMP(S) destination. Refused before anything
    /// connects when the destination's preset cannot take the program (the error names the
    /// program setting). The destination then connects, goes live and reconnects on its own.
    pub fn add_destination(&self, spec: DestinationSpec) -> Result<DestinationId> {
        Inner::add_destination(&self.inner, spec)
    }

    /// Stops streaming to a destination and returns its final figures.
    pub fn remove_destination(&self, id: DestinationId) -> Result<DestinationInfo> {
        self.inner.remove_destination(id)
    }

    pub fn destination(&self, id: DestinationId) -> Option<DestinationInfo> {
        self.inner.destination_info(id)
    }

    pub fn destinations(&self) -> Vec<DestinationInfo> {
        self.inner.destination_infos()
    }

    /// The latest still of the composited program (a JPEG at most 640 pixels on its longer
    /// side, renewed [`PREVIEW_FPS`] times a second). The first call attaches the preview
    /// branch and waits up to `timeout` for its first still; the branch is detached again
    /// when nobody asked for 30 s. The preview never keeps a program running (see
    /// [`Program::is_idle`]) and never slows its outputs.
    pub fn preview(&self, timeout: Duration) -> Result<Preview> {
        Inner::preview(&self.inner)?.wait(timeout)
    }

    /// How long the preview branch stays without requests (30 s by default; applies to the
    /// next attachment).
    pub fn set_preview_idle_timeout(&self, idle: Duration) {
        *lock(&self.inner.preview_idle) = idle;
    }

    /// Whether the preview branch is attached.
    pub fn preview_attached(&self) -> bool {
        lock(&self.inner.preview).is_some()
    }

    /// No output, destination or finishing recording depends on the program any more.
    pub fn is_idle(&self) -> bool {
        // One lock at a time: destinations are connected while their lock is held.
        let now = Instant::now();
        let no_outputs = lock(&self.inner.outputs).is_empty();
        let no_destinations = lock(&self.inner.destinations).is_empty();
        let nothing_draining = lock(&self.inner.draining).values().all(|(_, deadline)| *deadline <= now);
        no_outputs && no_destinations && nothing_draining
    }

    pub fn stats(&self) -> ProgramStats {
        ProgramStats {
            frames: self.inner.frames.load(Ordering::Relaxed),
            position: Duration::from_nanos(self.inner.position.load(Ordering::Relaxed)),
            tracks: read(&self.inner.tracks).len(),
            outputs: lock(&self.inner.outputs).len(),
        }
    }

    /// The pipeline, for inspection (e.g. dumping a graph).
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.inner.pipeline
    }

    /// Finishes every output and stops the program.
    pub fn stop(&self) -> Result<()> {
        self.inner.stop()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.inner.stop();
    }
}

fn remove_bin(pipeline: &gst::Pipeline, bin: &gst::Bin) {
    // Locked first: a state change of the pipeline running meanwhile (the program stopping
    // goes PLAYING -> PAUSED -> ...) would otherwise take the bin from NULL back up to PAUSED
    // and start its sink again (a recording sink would open a second upload).
    bin.set_locked_state(true);
    let _ = bin.set_state(gst::State::Null);
    let _ = pipeline.remove(bin);
}

fn tile_source(kind: TrackKind) -> TileSource {
    match kind {
        TrackKind::Screen => TileSource::Screen,
        _ => TileSource::Camera,
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn emit(&self, event: ProgramEvent) {
        let handler = read(&self.event_handler).clone();
        if let Some(h) = handler {
            h(event);
        }
    }

    fn wait_applied(&self, generation: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut scene = lock(&self.scene);
        while scene.applied_generation() < generation {
            if !self.running.load(Ordering::SeqCst) {
                return Err(CompositorError::NotRunning);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CompositorError::Timeout("the program to compose the new layout"));
            }
            scene = self
                .scene_applied
                .wait_timeout(scene, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// Layout changes land in the aggregator thread, between two frames.
    fn connect_compositor(inner: &Arc<Inner>) {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        inner.backbone.compositor.connect("samples-selected", false, move |_| {
            let inner = weak.upgrade()?;
            // Never block this thread on the scene: if the lock is busy, the change lands on
            // the next frame.
            let plan = inner.scene.try_lock().ok().and_then(|mut scene| scene.take_plan());
            if let Some(plan) = plan {
                plan.apply_pads();
                lock(&inner.scene).mark_applied(plan.generation);
                inner.scene_applied.notify_all();
                for update in plan.deferred {
                    inner.pipeline.call_async(move |_| update.apply());
                }
            }
            None
        });
        let weak: Weak<Inner> = Arc::downgrade(inner);
        if let Some(pad) = inner.backbone.compositor.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(inner), Some(gst::PadProbeData::Buffer(b))) = (weak.upgrade(), info.data.as_ref()) {
                    inner.frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(pts) = b.pts() {
                        inner.position.store(pts.nseconds(), Ordering::Relaxed);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
    }

    fn connect_track(inner: &Arc<Inner>, track: &Arc<TrackInput>) {
        let id = track.id;
        // Keyframe requests from depayloader and decoder travel upstream to the jitter buffer;
        // they end here and go to the SFU instead.
        if let Some(pad) = track.jitterbuffer.static_pad("src") {
            let weak = Arc::downgrade(inner);
            let weak_track = Arc::downgrade(track);
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                let Some(gst::PadProbeData::Event(ev)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                if !gst_video::ForceKeyUnitEvent::is(ev) {
                    return gst::PadProbeReturn::Ok;
                }
                if let (Some(inner), Some(track)) = (weak.upgrade(), weak_track.upgrade()) {
                    inner.request_keyframe(&track);
                }
                output::drop_data(info)
            });
        }
        // Sender reports: align this participant's tracks.
        let weak = Arc::downgrade(inner);
        track.jitterbuffer.connect("handle-sync", false, move |args| {
            let inner = weak.upgrade()?;
            let s = args.get(1)?.get::<gst::Structure>().ok()?;
            let obs = input::parse_handle_sync(&s)?;
            let changes = lock(&inner.sync).observe(id, obs);
            inner.apply_ts_offsets(&changes);
            None
        });
        // The decoded size drives `contain`/`cover` geometry: taken before the crop.
        if let Some(pad) = track.crop.as_ref().and_then(|c| c.static_pad("sink")) {
            let weak = Arc::downgrade(inner);
            let participant = track.params.participant.clone();
            let source = tile_source(track.params.kind);
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(ev)) = &info.data
                    && let gst::EventView::Caps(c) = ev.view()
                    && let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps())
                    && let Some(inner) = weak.upgrade()
                {
                    let size = VideoSize { width: vi.width(), height: vi.height() };
                    lock(&inner.scene).update_video_size(&participant, source, size);
                }
                gst::PadProbeReturn::Ok
            });
        }
    }

    fn apply_ts_offsets(&self, changes: &[(TrackId, i64)]) {
        if changes.is_empty() {
            return;
        }
        let tracks = read(&self.tracks);
        for (id, offset) in changes {
            if let Some(t) = tracks.get(id) {
                tracing::debug!(track = %id, offset_ms = *offset as f64 / 1e6, "lip sync offset");
                t.jitterbuffer.set_property("ts-offset", *offset);
            }
        }
    }

    fn request_keyframe(&self, track: &TrackInput) {
        let now = self.started.elapsed();
        if !lock(&track.limiter).should_request(now) {
            return;
        }
        let handler = read(&self.keyframe_handler).clone();
        if let Some(h) = handler {
            h(track.id);
        }
    }

    fn remove_track_locked(&self, id: TrackId) -> Result<()> {
        let track = write(&self.tracks).remove(&id).ok_or(CompositorError::UnknownTrack(id.0))?;
        let changes = lock(&self.sync).remove_track(id);
        self.apply_ts_offsets(&changes);
        let mixer_pad = {
            let mut scene = lock(&self.scene);
            if track.is_video() {
                let source = tile_source(track.params.kind);
                scene.set_video(&track.params.participant, source, None);
                scene.unregister_pad(&track.params.participant, source)
            } else {
                None
            }
        };
        track.close();
        self.detach_source(&track.bin, mixer_pad, track.is_video());
        tracing::info!(track = %id, participant = %track.params.participant, "track removed");
        self.refresh_placeholders()
    }

    /// Unlinks a source bin from its mixer and shuts it down without disturbing the mixer.
    fn detach_source(&self, bin: &gst::Bin, mixer_pad: Option<gst::Pad>, video: bool) {
        if let Some(src) = bin.static_pad("src") {
            // Nothing more reaches the mixer, and nothing upstream sees "not linked".
            src.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, |_, info| {
                output::drop_data(info)
            });
            let peer = mixer_pad.or_else(|| src.peer());
            if let Some(peer) = peer {
                let _ = src.unlink(&peer);
                let mixer = if video { &self.backbone.compositor } else { &self.backbone.audiomixer };
                mixer.release_request_pad(&peer);
            }
        }
        self.remove_bin(bin);
    }

    /// Keeps a name card for every participant without camera video.
    fn refresh_placeholders(&self) -> Result<()> {
        let wanted: BTreeMap<String, String> = lock(&self.scene)
            .participants()
            .filter(|p| p.camera.is_none())
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        let mut placeholders = lock(&self.placeholders);
        let stale: Vec<String> = placeholders.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        for id in stale {
            if let Some(bin) = placeholders.remove(&id) {
                let pad = lock(&self.scene).unregister_pad(&id, TileSource::Placeholder);
                self.detach_source(&bin, pad, true);
            }
        }
        for (id, name) in wanted {
            if placeholders.contains_key(&id) {
                continue;
            }
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let bin = input::placeholder_bin(n, &name, &self.config)?;
            self.pipeline.add(&bin)?;
            let pad = self
                .backbone
                .compositor
                .request_pad_simple("sink_%u")
                .ok_or(CompositorError::Gst("compositor refused a sink pad".into()))?;
            let src = bin.static_pad("src").ok_or(CompositorError::Gst("no src".into()))?;
            src.link(&pad)?;
            pad.set_property("alpha", 0.0f64);
            lock(&self.scene).register_pad(&id, TileSource::Placeholder, pad, None, None);
            bin.sync_state_with_parent()?;
            placeholders.insert(id, bin);
        }
        Ok(())
    }

    fn attach_output(&self, spec: OutputSpec) -> Result<OutputId> {
        if !self.running.load(Ordering::SeqCst) {
            return Err(CompositorError::NotRunning);
        }
        let _t = lock(&self.topology);
        let id = OutputId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let timeline = spec.timeline();
        let (bin, sink) = output::build_bin(id, spec)?;
        let counters = Arc::new(output::OutputCounters::default());
        output::install_start_probes(&bin, &counters, timeline);
        output::watch_overruns(&bin, &counters);
        let eos = output::eos_watch(&sink);
        self.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        let mut tee_pads = Vec::new();
        for (tee, kind) in [(&self.backbone.video_tee, "video"), (&self.backbone.audio_tee, "audio")] {
            let tee_pad = tee.request_pad_simple("src_%u").ok_or(CompositorError::Gst("tee refused a pad".into()))?;
            let sink_pad = bin.static_pad(kind).ok_or(CompositorError::Gst("no output pad".into()))?;
            tee_pad.link(&sink_pad)?;
            tee_pads.push(tee_pad);
        }
        let audio_tee_pad = tee_pads.pop().ok_or(CompositorError::Gst("no audio pad".into()))?;
        let video_tee_pad = tee_pads.pop().ok_or(CompositorError::Gst("no video pad".into()))?;
        // Start the new output promptly: ask the encoder for a keyframe with SPS/PPS.
        if let Some(pad) = self.backbone.encoder.static_pad("src") {
            let ev = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
            pad.send_event(ev);
        }
        lock(&self.outputs).insert(id, Output { bin, sink, video_tee_pad, audio_tee_pad, counters, eos });
        tracing::info!(output = %id, "output attached");
        Ok(id)
    }

    /// The preview branch's shared state, attaching the branch if needed.
    fn preview(inner: &Arc<Inner>) -> Result<Arc<preview::Shared>> {
        if !inner.running.load(Ordering::SeqCst) {
            return Err(CompositorError::NotRunning);
        }
        let _t = lock(&inner.topology);
        let mut slot = lock(&inner.preview);
        if let Some(branch) = slot.as_ref() {
            branch.shared.touch();
            return Ok(branch.shared.clone());
        }
        let weak = Arc::downgrade(inner);
        let (bin, shared) =
            preview::build_bin(inner.config.width, inner.config.height, *lock(&inner.preview_idle), move |shared| {
                if shared.idle()
                    && let Some(inner) = weak.upgrade()
                {
                    // Not from the streaming thread: detaching stops this very thread.
                    let weak = Arc::downgrade(&inner);
                    inner.pipeline.call_async(move |_| {
                        if let Some(inner) = weak.upgrade() {
                            inner.detach_idle_preview();
                        }
                    });
                }
            })?;
        shared.touch();
        inner.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        let linked = inner
            .backbone
            .raw_tee
            .request_pad_simple("src_%u")
            .ok_or(CompositorError::Gst("tee refused a pad".into()))
            .and_then(|tee_pad| {
                let sink = bin.static_pad("sink").ok_or(CompositorError::Gst("no preview pad".into()))?;
                match tee_pad.link(&sink) {
                    Ok(_) => Ok(tee_pad),
                    Err(e) => {
                        inner.backbone.raw_tee.release_request_pad(&tee_pad);
                        Err(e.into())
                    }
                }
            });
        let tee_pad = match linked {
            Ok(p) => p,
            Err(e) => {
                inner.remove_bin(&bin);
                return Err(e);
            }
        };
        tracing::info!("preview attached");
        *slot = Some(preview::PreviewBranch { bin, tee_pad, shared: shared.clone() });
        Ok(shared)
    }

    fn detach_idle_preview(&self) {
        let _t = lock(&self.topology);
        let mut slot = lock(&self.preview);
        if !slot.as_ref().is_some_and(|b| b.shared.idle()) {
            return;
        }
        let Some(branch) = slot.take() else { return };
        if let Some(sink) = branch.bin.static_pad("sink") {
            let _ = branch.tee_pad.unlink(&sink);
        }
        self.backbone.raw_tee.release_request_pad(&branch.tee_pad);
        self.remove_bin(&branch.bin);
        tracing::info!("preview detached (idle)");
    }

    fn detach_output(&self, id: OutputId, timeout: Duration) -> Result<OutputStats> {
        let (out, completion) = {
            let _t = lock(&self.topology);
            let out = lock(&self.outputs).remove(&id).ok_or(CompositorError::UnknownOutput(id.0))?;
            // A sink that reports when its storage has the whole recording is kept until it
            // says so (registered before EOS so the report cannot be missed).
            let completion = output::completion_timeout(&out.sink).map(|t| {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let now = Instant::now();
                let mut draining = lock(&self.draining);
                // Sinks that never reported are forgotten after their deadline.
                draining.retain(|_, (_, deadline)| *deadline > now);
                draining.insert(id, (tx, now + timeout + t));
                (rx, t)
            });
            self.unhook_output(&out, true);
            (out, completion)
        };
        // Waiting happens outside the topology lock: tracks and other outputs carry on.
        let stats = out.stats();
        let finished = out.eos.recv_timeout(timeout).is_ok();
        match completion {
            Some((done, wait)) if finished => {
                let (pipeline, bin) = (self.pipeline.clone(), out.bin.clone());
                std::thread::spawn(move || {
                    let reported = done.recv_timeout(wait).is_ok();
                    tracing::debug!(output = %id, reported, "output's sink finished storing");
                    remove_bin(&pipeline, &bin);
                });
            }
            _ => {
                lock(&self.draining).remove(&id);
                self.remove_bin(&out.bin);
            }
        }
        tracing::info!(output = %id, finished, frames = stats.video_frames, "output detached");
        if finished { Ok(stats) } else { Err(CompositorError::Timeout("the output to finish")) }
    }

    /// A sink inside output `id` reported that its storage is done with the recording.
    fn output_stored(&self, id: OutputId) {
        if let Some((tx, _)) = lock(&self.draining).remove(&id) {
            let _ = tx.try_send(());
        }
    }

    /// Tears an output down after it failed (no EOS: its sink is already broken).
    fn drop_failed_output(&self, id: OutputId) {
        let _t = lock(&self.topology);
        let Some(out) = lock(&self.outputs).remove(&id) else { return };
        self.unhook_output(&out, false);
        self.remove_bin(&out.bin);
    }

    /// Unlinks an output from the encoders' tees; with `finish`, sends it EOS so its muxer
    /// writes its last bytes.
    fn unhook_output(&self, out: &Output, finish: bool) {
        for (tee, tee_pad, kind) in [
            (&self.backbone.video_tee, &out.video_tee_pad, "video"),
            (&self.backbone.audio_tee, &out.audio_tee_pad, "audio"),
        ] {
            if let Some(sink_pad) = out.bin.static_pad(kind) {
                let _ = tee_pad.unlink(&sink_pad);
                if finish {
                    sink_pad.send_event(gst::event::Eos::new());
                }
            }
            tee.release_request_pad(tee_pad);
        }
    }

    fn remove_bin(&self, bin: &gst::Bin) {
        remove_bin(&self.pipeline, bin);
    }

    fn stop(&self) -> Result<()> {
        if !self.running.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        self.stop_destinations();
        let ids: Vec<OutputId> = lock(&self.outputs).keys().copied().collect();
        let mut first_err = None;
        for id in ids {
            if let Err(e) = self.detach_output(id, Duration::from_secs(10)) {
                first_err.get_or_insert(e);
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        self.backbone.background.close();
        self.scene_applied.notify_all();
        if let Some(t) = lock(&self.bus_thread).take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
