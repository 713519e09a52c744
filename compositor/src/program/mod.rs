//! `Program`: a room's live program. Tracks come and go at runtime, RTP is pushed from any
//! thread without blocking, the layout can be swapped between two frames, and outputs attach and
//! detach while the program runs.

mod backbone;
mod background;
mod bus;
mod elements;
mod hls_bin;
mod input;
mod live;
mod opus_decoder;
mod output_bin;
mod outputs;
mod preview;
mod rendition;
mod rtp_bin;
mod rtp_entry;
mod scene;
mod tile_crop;
mod tracks;

pub use elements::{REQUIRED_ELEMENTS, missing_elements};
pub use input::TrackStats;
pub use output_bin::{OutputId, OutputSpec, OutputStats};
pub use preview::{PREVIEW_FPS, PREVIEW_MAX_SIDE, Preview, preview_size};
pub use rendition::{DecoderCount, RenditionId, RenditionInfo, RenditionRequest, VideoFormat};

use crate::config::ProgramConfig;
use crate::destination::{DestinationId, DestinationStatus};
use crate::error::{CompositorError, Result};
use crate::layout::{Canvas, Layout, ParticipantView, Tile, TileSource, VideoSize};
use crate::locks::{lock, read, try_lock, wait_timeout, write};
use crate::rtp::SenderReport;
use crate::sync::LipSync;
use crate::track::{TrackId, TrackKind, TrackParams};
use gst::prelude::*;
use input::TrackInput;
use output_bin::Output;
use rendition::Rendition;
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

/// The program's state.
///
/// Lock order: `destinations` first (a destination's output is attached, and its totals read,
/// under it: `topology`, `outputs`). Then `topology`, held across a whole change of the
/// pipeline's shape (a track, a name card, an output, a rendition, the preview), with the
/// others taken under it. Then `renditions` (read, never held across another lock), then a
/// rendition's own locks (`placeholders`, then `scene`; `tiles`); `preview`, then
/// `preview_idle` and the branch's own lock. Every other lock is a leaf, taken one at a time
/// and never while another is held, except a rendition's `scene`, which `wait_applied` holds
/// while it waits on `scene_applied`. Events reach the handler with no lock held; the keyframe
/// handler may be called under `topology` (a new video track asks for its first keyframe).
pub(crate) struct Inner {
    pipeline: gst::Pipeline,
    config: ProgramConfig,
    /// The audio mix and its encodes, shared by every rendition.
    backbone: backbone::Backbone,
    /// The program's own rendition (also in `renditions`).
    primary: Arc<Rendition>,
    /// Every rendition by id, the primary first.
    renditions: RwLock<BTreeMap<rendition::RenditionId, Arc<Rendition>>>,
    /// Serialises changes of the pipeline's topology (tracks, placeholders, outputs).
    topology: Mutex<()>,
    tracks: RwLock<BTreeMap<TrackId, Arc<TrackInput>>>,
    outputs: Mutex<BTreeMap<OutputId, Output>>,
    destinations: Mutex<live::Destinations>,
    /// Detached outputs whose sink is still storing what it received.
    draining: Mutex<BTreeMap<OutputId, (std::sync::mpsc::SyncSender<()>, Instant)>>,
    /// The live preview branch (of the primary rendition), while someone looks at it.
    preview: Mutex<Option<preview::PreviewBranch>>,
    preview_idle: Mutex<Duration>,
    next_id: AtomicU64,
    sync: Mutex<LipSync>,
    keyframe_handler: RwLock<Option<KeyframeRequestHandler>>,
    /// Coalesces viewers' keyframe requests (`request_keyframe`).
    viewer_keyframes: Mutex<crate::keyframe::KeyframeRequestThrottle>,
    event_handler: RwLock<Option<EventHandler>>,
    started: Instant,
    running: AtomicBool,
    bus_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Initialises GStreamer once; safe to call from anywhere.
pub fn init() -> Result<()> {
    gst::init().map_err(|source| CompositorError::GlibError { context: "initialising", source })
}

impl Program {
    /// Builds and starts a program with `layout`; it runs (a background and silence) until stopped.
    pub fn new(config: ProgramConfig, layout: Layout) -> Result<Program> {
        init()?;
        config.validate()?;
        let pipeline = gst::Pipeline::builder().name("room-program").build();
        let backbone = backbone::build_audio(&pipeline, &config)?;
        let primary = rendition::build(&pipeline, rendition::RenditionId::PRIMARY, config.clone(), layout, None)?;
        let inner = Arc::new(Inner {
            pipeline,
            config,
            backbone,
            renditions: RwLock::new(BTreeMap::from([(primary.id, primary.clone())])),
            primary,
            topology: Mutex::new(()),
            tracks: RwLock::new(BTreeMap::new()),
            outputs: Mutex::new(BTreeMap::new()),
            destinations: Mutex::new(live::Destinations::default()),
            draining: Mutex::new(BTreeMap::new()),
            preview: Mutex::new(None),
            preview_idle: Mutex::new(preview::PREVIEW_IDLE),
            next_id: AtomicU64::new(1),
            sync: Mutex::new(LipSync::default()),
            keyframe_handler: RwLock::new(None),
            viewer_keyframes: outputs::viewer_keyframes(),
            event_handler: RwLock::new(None),
            started: Instant::now(),
            running: AtomicBool::new(true),
            bus_thread: Mutex::new(None),
        });
        let bus = bus::spawn(&inner)?;
        *lock(&inner.bus_thread) = Some(bus);
        inner.pipeline.set_state(gst::State::Playing)?;
        if let Err(e) = inner.primary.video.background.start().and_then(|_| inner.backbone.prime_audio(&inner.config)) {
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
        *write(&self.inner.keyframe_handler) = Some(handler);
    }

    pub fn set_event_handler(&self, handler: EventHandler) {
        *write(&self.inner.event_handler) = Some(handler);
    }

    /// Swaps the layout. Returns once the program composes with it, so the caller knows that
    /// the next frames use the new layout. The encoder and the outputs are not touched.
    pub fn set_layout(&self, layout: Layout) -> Result<()> {
        self.inner.primary.set_layout(layout, &self.inner.running)
    }

    /// Parses, validates and applies a layout document. An invalid one is refused with the
    /// JSON path and the reason, and the running program is left exactly as it was.
    pub fn set_layout_json(&self, json: &str) -> Result<()> {
        let layout = Layout::from_json_str(json)?;
        self.set_layout(layout)
    }

    pub fn layout(&self) -> Layout {
        lock(&self.inner.primary.scene).layout().clone()
    }

    /// Active speakers, most recent first (from the SFU's audio levels), in every rendition.
    pub fn set_active_speakers(&self, ranking: &[String]) {
        for r in self.inner.all_renditions() {
            lock(&r.scene).set_active_speakers(ranking);
        }
    }

    /// Participants pinned by the application (layouts with `pinned` regions show them), in
    /// every rendition.
    pub fn set_pinned(&self, identities: &[String]) {
        for r in self.inner.all_renditions() {
            lock(&r.scene).set_pinned(identities);
        }
    }

    pub fn participants(&self) -> Vec<ParticipantView> {
        lock(&self.inner.primary.scene).participants().cloned().collect()
    }

    /// The tiles of the last frame composed at the program's own size.
    pub fn tiles(&self) -> Vec<Tile> {
        lock(&self.inner.primary.scene).tiles().to_vec()
    }

    /// The tiles of the last frame a rendition composed.
    pub fn rendition_tiles(&self, id: rendition::RenditionId) -> Option<Vec<Tile>> {
        self.inner.rendition(id).map(|r| lock(&r.scene).tiles().to_vec())
    }

    /// Waits until every pending scene change is on screen, in every rendition.
    pub fn sync_scene(&self, timeout: Duration) -> Result<()> {
        for r in self.inner.all_renditions() {
            let generation = lock(&r.scene).generation();
            r.wait_applied(generation, timeout, &self.inner.running)?;
        }
        Ok(())
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
            frames: self.inner.primary.frames.load(Ordering::Relaxed),
            position: Duration::from_nanos(self.inner.primary.position.load(Ordering::Relaxed)),
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

impl Inner {
    pub(super) fn emit(&self, event: ProgramEvent) {
        let handler = read(&self.event_handler).clone();
        if let Some(h) = handler {
            h(event);
        }
    }

    pub(super) fn remove_bin(&self, bin: &gst::Bin) {
        remove_bin(&self.pipeline, bin);
    }

    pub(super) fn stop(&self) -> Result<()> {
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
        for r in self.all_renditions() {
            r.video.background.close();
            r.scene_applied.notify_all();
        }
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
