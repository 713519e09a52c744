//! Renditions: one room program composed at several sizes at once (16:9 for a stream, 9:16 for
//! a phone's recording) from the same decoded inputs.
//!
//! Every input is depayloaded and decoded once, into a `tee` at the end of its track bin. Each
//! rendition has its own background, compositor, scene (layout and tiles), name cards, encoder
//! and output tees, and a *tile branch* per video track: label overlay and crop (both depend on
//! the tile's geometry) into its compositor. The audio mix and its encodes are the program's,
//! shared by every rendition.
//!
//! The program's own rendition (`RenditionId::PRIMARY`) lives as long as the program. Another
//! one is built when an output first asks for its size and taken down when its last output
//! goes; the tracks and the other renditions carry on meanwhile.

use super::backbone::{self, VideoChain};
use super::elements::{add_chain, make};
use super::scene::Scene;
use super::tile_crop::TileCrop;
use super::*;

/// Which rendition of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RenditionId(pub u64);

impl RenditionId {
    /// The program's own size, from its `ProgramConfig`.
    pub const PRIMARY: RenditionId = RenditionId(0);
}

impl std::fmt::Display for RenditionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rendition-{}", self.0)
    }
}

/// What sets renditions apart: the picture and its encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
}

impl VideoFormat {
    pub fn of(config: &ProgramConfig) -> VideoFormat {
        VideoFormat {
            width: config.width,
            height: config.height,
            fps: config.fps,
            bitrate_kbps: config.video_bitrate_kbps,
        }
    }

    /// `config` with this picture (encoder settings and audio unchanged).
    pub fn applied_to(&self, config: &ProgramConfig) -> ProgramConfig {
        ProgramConfig {
            width: self.width,
            height: self.height,
            fps: self.fps,
            video_bitrate_kbps: self.bitrate_kbps,
            ..config.clone()
        }
    }
}

impl std::fmt::Display for VideoFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{} {} kbit/s", self.width, self.height, self.fps, self.bitrate_kbps)
    }
}

/// An output's wish: this picture, with this layout when the rendition is new.
#[derive(Debug, Clone)]
pub struct RenditionRequest {
    pub format: VideoFormat,
    pub layout: Layout,
}

/// A rendition as the program's owner sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RenditionInfo {
    pub id: RenditionId,
    #[serde(flatten)]
    pub format: VideoFormat,
    /// Frames composed so far.
    pub frames: u64,
    /// Outputs attached to it (recordings, HLS, a stream's destinations, WHEP's RTP output).
    pub outputs: usize,
    pub tiles: usize,
}

/// One rendition's composition. Lock order inside: `placeholders`, then `scene`; `tiles` is a
/// leaf. All of them are taken under the program's `topology` when the pipeline changes.
pub(crate) struct Rendition {
    pub id: RenditionId,
    /// The program's config with this rendition's picture.
    pub config: ProgramConfig,
    pub video: VideoChain,
    pub scene: Mutex<Scene>,
    pub scene_applied: Condvar,
    /// Name-card sources by participant.
    pub placeholders: Mutex<BTreeMap<String, gst::Bin>>,
    /// Each video track's branch into this rendition's compositor.
    pub tiles: Mutex<BTreeMap<TrackId, TileBranch>>,
    pub frames: AtomicU64,
    pub position: AtomicU64,
}

/// A decoded video track into one rendition: [queue] -> label overlay -> crop -> compositor.
pub(crate) struct TileBranch {
    pub bin: gst::Bin,
    /// The track bin's pad (a request pad of its decoded video's tee) feeding this branch.
    pub feed: gst::Pad,
    pub mixer_pad: gst::Pad,
}

impl Rendition {
    pub fn format(&self) -> VideoFormat {
        VideoFormat::of(&self.config)
    }

    pub fn wait_applied(&self, generation: u64, timeout: Duration, running: &AtomicBool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut scene = lock(&self.scene);
        while scene.applied_generation() < generation {
            if !running.load(Ordering::SeqCst) {
                return Err(CompositorError::NotRunning);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CompositorError::Timeout("the program to compose the new layout"));
            }
            scene = wait_timeout(&self.scene_applied, scene, left.min(Duration::from_millis(100)));
        }
        Ok(())
    }

    pub fn set_layout(&self, layout: Layout, running: &AtomicBool) -> Result<()> {
        let generation = lock(&self.scene).set_layout(layout);
        self.wait_applied(generation, Duration::from_secs(5), running)
    }

    /// Layout changes land in the aggregator thread, between two frames.
    fn connect_compositor(this: &Arc<Rendition>) {
        let weak: Weak<Rendition> = Arc::downgrade(this);
        this.video.compositor.connect("samples-selected", false, move |args| {
            let r = weak.upgrade()?;
            // Never block this thread on the scene: if the lock is busy, the change lands on
            // the next frame.
            let plan = try_lock(&r.scene).and_then(|mut scene| scene.take_plan());
            if let Some(plan) = plan {
                plan.apply_pads();
                lock(&r.scene).mark_applied(plan.generation);
                r.scene_applied.notify_all();
                if let Some(Ok(compositor)) = args.first().map(|v| v.get::<gst::Element>()) {
                    for update in plan.deferred {
                        compositor.call_async(move |_| update.apply());
                    }
                }
            }
            None
        });
        let weak: Weak<Rendition> = Arc::downgrade(this);
        if let Some(pad) = this.video.compositor.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(r), Some(gst::PadProbeData::Buffer(b))) = (weak.upgrade(), info.data.as_ref()) {
                    r.frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(pts) = b.pts() {
                        r.position.store(pts.nseconds(), Ordering::Relaxed);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
    }

    pub fn info(&self, outputs: usize) -> RenditionInfo {
        RenditionInfo {
            id: self.id,
            format: self.format(),
            frames: self.frames.load(Ordering::Relaxed),
            outputs,
            tiles: lock(&self.tiles).len(),
        }
    }
}

/// Builds a rendition's chain in `pipeline` (not yet playing). Its scene starts from
/// `participants_from` (who is in the room, speakers, pins) with `layout`.
pub(crate) fn build(
    pipeline: &gst::Pipeline,
    id: RenditionId,
    config: ProgramConfig,
    layout: Layout,
    participants_from: Option<&Scene>,
) -> Result<Arc<Rendition>> {
    config.validate()?;
    let suffix = if id == RenditionId::PRIMARY { String::new() } else { format!("-r{}", id.0) };
    let video = backbone::build_video(pipeline, &config, layout.background(), &suffix)?;
    let canvas = Canvas { width: config.width, height: config.height };
    let mut scene = match participants_from {
        Some(from) => from.fork(layout, canvas),
        None => Scene::new(layout, canvas),
    };
    scene.set_background(video.background.clone());
    let rendition = Arc::new(Rendition {
        id,
        config,
        video,
        scene: Mutex::new(scene),
        scene_applied: Condvar::new(),
        placeholders: Mutex::new(BTreeMap::new()),
        tiles: Mutex::new(BTreeMap::new()),
        frames: AtomicU64::new(0),
        position: AtomicU64::new(0),
    });
    Rendition::connect_compositor(&rendition);
    Ok(rendition)
}

/// A tile branch's elements, named `name`. Only a rendition after the first has a queue: the
/// first one runs in the decoder's thread as a single rendition always did, and a second
/// compositor waiting for its frame must not hold up the first.
fn tile_branch(name: &str, queued: bool) -> Result<(gst::Bin, gst::Element, TileCrop)> {
    let bin = gst::Bin::builder().name(name).build();
    let mut chain = Vec::new();
    if queued {
        let q = make("queue", None)?;
        // A frame or two: a late compositor gets the newest frame, never a backlog.
        q.set_property("max-size-buffers", 2u32);
        q.set_property("max-size-bytes", 0u32);
        q.set_property("max-size-time", 0u64);
        q.set_property_from_str("leaky", "downstream");
        chain.push(q);
    }
    let overlay = make("textoverlay", Some("label"))?;
    overlay.set_property("silent", true);
    overlay.set_property("shaded-background", true);
    overlay.set_property("font-desc", "Sans Bold 16");
    overlay.set_property_from_str("halignment", "position");
    overlay.set_property_from_str("valignment", "position");
    overlay.set_property("xpos", 0.5f64);
    overlay.set_property("ypos", 0.92f64);
    // The label draws into the frame: with several renditions the decoded frame is shared,
    // and each branch draws on its own copy (only while a label shows).
    chain.push(overlay.clone());
    let crop = TileCrop::new("crop");
    chain.push(crop.upcast_element());
    add_chain(&bin, &chain)?;
    // textoverlay's video input is `video_sink`.
    let first = chain.first().and_then(|e| e.static_pad("sink").or_else(|| e.static_pad("video_sink")));
    let last = chain.last().and_then(|e| e.static_pad("src"));
    let (Some(first), Some(last)) = (first, last) else {
        return Err(CompositorError::Gst("tile branch without pads".into()));
    };
    bin.add_pad(&gst::GhostPad::builder_with_target(&first)?.name("sink").build())?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&last)?.name("src").build())?;
    Ok((bin, overlay, crop))
}

impl Program {
    /// Attaches an output to the rendition of `rendition.format`: the program's own when the
    /// format is the program's (its layout is left as it is), a running one of that format
    /// (which switches to `rendition.layout`), or a new one composed with `rendition.layout`.
    pub fn attach_output_in(&self, rendition: &RenditionRequest, spec: OutputSpec) -> Result<OutputId> {
        self.inner.attach_output_in(rendition, spec)
    }

    /// Swaps the layout of the rendition `output` belongs to; returns once it is on screen.
    pub fn set_output_layout(&self, output: OutputId, layout: Layout) -> Result<()> {
        let rendition = self.inner.output_rendition(output).ok_or(CompositorError::UnknownOutput(output.0))?;
        rendition.set_layout(layout, &self.inner.running)
    }

    /// Swaps the layout of the rendition of `format` (the program's own when it is the
    /// program's format); returns once it is on screen. No rendition of that format running
    /// (its outputs all gone meanwhile) is no error: there is nothing to show it on.
    pub fn set_rendition_layout(&self, format: VideoFormat, layout: Layout) -> Result<()> {
        match self.inner.rendition_of(format) {
            Some(r) => r.set_layout(layout, &self.inner.running),
            None => Ok(()),
        }
    }

    /// The rendition an output is attached to.
    pub fn output_rendition(&self, output: OutputId) -> Option<RenditionId> {
        self.inner.output_rendition(output).map(|r| r.id)
    }

    /// Every rendition, the program's own first.
    pub fn renditions(&self) -> Vec<RenditionInfo> {
        let renditions: Vec<Arc<Rendition>> = self.inner.all_renditions();
        let outputs: Vec<RenditionId> = lock(&self.inner.outputs).values().map(|o| o.rendition).collect();
        renditions.iter().map(|r| r.info(outputs.iter().filter(|o| **o == r.id).count())).collect()
    }

    /// Decoders running in the program, video and audio: one per input track however many
    /// renditions compose it.
    pub fn decoders(&self) -> DecoderCount {
        let mut count = DecoderCount::default();
        let mut it = self.inner.pipeline.iterate_recurse();
        while let Ok(Some(element)) = it.next() {
            // From the class, not the factory: our own Opus decoder is made without one.
            let klass = element.element_class().metadata("klass").unwrap_or_default();
            if klass.contains("Decoder") && klass.contains("Video") {
                count.video += 1;
            } else if klass.contains("Decoder") && klass.contains("Audio") {
                count.audio += 1;
            }
        }
        count
    }
}

/// How many decoders a program runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecoderCount {
    pub video: usize,
    pub audio: usize,
}

impl Inner {
    pub(super) fn all_renditions(&self) -> Vec<Arc<Rendition>> {
        read(&self.renditions).values().cloned().collect()
    }

    pub(super) fn rendition(&self, id: RenditionId) -> Option<Arc<Rendition>> {
        read(&self.renditions).get(&id).cloned()
    }

    /// The running rendition of `format` (the read guard is gone when this returns).
    pub(super) fn rendition_of(&self, format: VideoFormat) -> Option<Arc<Rendition>> {
        read(&self.renditions).values().find(|r| r.format() == format).cloned()
    }

    pub(super) fn output_rendition(&self, output: OutputId) -> Option<Arc<Rendition>> {
        let id = lock(&self.outputs).get(&output).map(|o| o.rendition)?;
        self.rendition(id)
    }

    pub(super) fn attach_output_in(&self, request: &RenditionRequest, spec: OutputSpec) -> Result<OutputId> {
        if request.format == self.primary.format() {
            return self.attach_output(spec);
        }
        if matches!(spec, OutputSpec::Rtp(_)) {
            return Err(CompositorError::InvalidOutput {
                field: "video",
                reason: "an RTP output takes the program's own rendition".into(),
            });
        }
        // A running rendition of that format shows the output's layout from its first frame.
        if let Some(r) = self.rendition_of(request.format) {
            r.set_layout(request.layout.clone(), &self.running)?;
        }
        let _t = lock(&self.topology);
        let rendition = match self.rendition_of(request.format) {
            Some(r) => r,
            None => self.add_rendition_locked(request)?,
        };
        let attached = self.attach_output_locked(&rendition, spec, None);
        if attached.is_err() {
            self.remove_rendition_if_unused_locked(rendition.id);
        }
        attached
    }

    /// Builds and starts a rendition; the program's tracks and participants join it at once.
    /// Called under `topology`.
    fn add_rendition_locked(&self, request: &RenditionRequest) -> Result<Arc<Rendition>> {
        let id = RenditionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let config = request.format.applied_to(&self.config);
        let rendition = {
            let primary_scene = lock(&self.primary.scene);
            build(&self.pipeline, id, config, request.layout.clone(), Some(&primary_scene))?
        };
        let started = (|| {
            for element in &rendition.video.elements {
                element.sync_state_with_parent()?;
            }
            rendition.video.background.start()?;
            let tracks: Vec<Arc<TrackInput>> = read(&self.tracks).values().filter(|t| t.is_video()).cloned().collect();
            for track in tracks {
                self.link_tile(&rendition, &track)?;
            }
            self.refresh_placeholders_in(&rendition)
        })();
        if let Err(e) = started {
            self.take_down(&rendition);
            return Err(e);
        }
        write(&self.renditions).insert(id, rendition.clone());
        tracing::info!(rendition = %id, format = %rendition.format(), "rendition added");
        Ok(rendition)
    }

    /// Takes a rendition other than the program's own down once no output uses it. Called
    /// under `topology`.
    pub(super) fn remove_rendition_if_unused_locked(&self, id: RenditionId) {
        if id == RenditionId::PRIMARY || lock(&self.outputs).values().any(|o| o.rendition == id) {
            return;
        }
        let Some(rendition) = write(&self.renditions).remove(&id) else { return };
        self.take_down(&rendition);
        tracing::info!(rendition = %id, frames = rendition.frames.load(Ordering::Relaxed), "rendition removed");
    }

    /// Unlinks a rendition from the tracks and takes its elements out of the pipeline.
    fn take_down(&self, rendition: &Rendition) {
        let tiles = std::mem::take(&mut *lock(&rendition.tiles));
        let tracks = read(&self.tracks).clone();
        for (track, branch) in tiles {
            self.unlink_tile(rendition, branch, tracks.get(&track).map(|t| t.as_ref()));
        }
        let placeholders = std::mem::take(&mut *lock(&rendition.placeholders));
        for (_, bin) in placeholders {
            self.detach_source(&bin, None, &rendition.video.compositor);
        }
        rendition.video.background.close();
        rendition.scene_applied.notify_all();
        for element in &rendition.video.elements {
            element.set_locked_state(true);
            let _ = element.set_state(gst::State::Null);
        }
        for element in &rendition.video.elements {
            let _ = self.pipeline.remove(element);
        }
    }

    /// Feeds a video track's decoded frames into a rendition's compositor (hidden until the
    /// next layout pass places it). Called under `topology`.
    pub(super) fn link_tile(&self, rendition: &Rendition, track: &TrackInput) -> Result<()> {
        let queued = rendition.id != RenditionId::PRIMARY;
        let (bin, label, crop) = tile_branch(&format!("tile-{}-{}", track.id.0, rendition.id.0), queued)?;
        self.pipeline.add(&bin)?;
        let linked = (|| {
            let mixer_pad = rendition
                .video
                .compositor
                .request_pad_simple("sink_%u")
                .ok_or(CompositorError::Gst("compositor refused a sink pad".into()))?;
            mixer_pad.set_property("alpha", 0.0f64);
            let src = bin.static_pad("src").ok_or(CompositorError::Gst("tile branch without src".into()))?;
            if let Err(e) = src.link(&mixer_pad) {
                rendition.video.compositor.release_request_pad(&mixer_pad);
                return Err(e.into());
            }
            bin.sync_state_with_parent()?;
            let feed = track.feed_pad()?;
            let sink = bin.static_pad("sink").ok_or(CompositorError::Gst("tile branch without sink".into()))?;
            if let Err(e) = feed.link(&sink) {
                track.release_feed_pad(&feed);
                let _ = src.unlink(&mixer_pad);
                rendition.video.compositor.release_request_pad(&mixer_pad);
                return Err(e.into());
            }
            Ok((feed, mixer_pad))
        })();
        let (feed, mixer_pad) = match linked {
            Ok(pads) => pads,
            Err(e) => {
                self.remove_bin(&bin);
                return Err(e);
            }
        };
        if rendition.id == RenditionId::PRIMARY {
            watch_first_composed(&rendition.video.compositor, &mixer_pad, track);
        }
        let source = tracks::tile_source(track.params.kind);
        lock(&rendition.scene).register_pad(
            &track.params.participant,
            source,
            mixer_pad.clone(),
            Some(label),
            Some(crop),
        );
        lock(&rendition.tiles).insert(track.id, TileBranch { bin, feed, mixer_pad });
        Ok(())
    }

    /// Takes a track's branch out of a rendition; `track` (still running) gets its tee's pad
    /// back. Called under `topology`.
    pub(super) fn unlink_tile(&self, rendition: &Rendition, branch: TileBranch, track: Option<&TrackInput>) {
        if let Some(sink) = branch.bin.static_pad("sink") {
            let _ = branch.feed.unlink(&sink);
        }
        if let Some(track) = track {
            track.release_feed_pad(&branch.feed);
        }
        self.detach_source(&branch.bin, Some(branch.mixer_pad), &rendition.video.compositor);
    }
}

/// How long a join takes to show (`examples/bench_join.rs`): logs, once, the time from the
/// track joining the program to the first frame the compositor outputs that holds the track's
/// first frame (the compositor waits for its latency before it composes a frame).
fn watch_first_composed(compositor: &gst::Element, mixer_pad: &gst::Pad, track: &TrackInput) {
    /// Running time of a buffer on `pad`, from its segment.
    fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u64> {
        let segment = pad.sticky_event::<gst::event::Segment>(0)?;
        let segment = segment.segment().downcast_ref::<gst::ClockTime>()?;
        segment.to_running_time(buffer.pts()?).map(|t| t.nseconds())
    }
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let seen = first.clone();
    mixer_pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| match &info.data {
        Some(gst::PadProbeData::Buffer(b)) => match running_time(pad, b) {
            Some(t) => {
                seen.store(t, Ordering::Relaxed);
                gst::PadProbeReturn::Remove
            }
            None => gst::PadProbeReturn::Ok,
        },
        _ => gst::PadProbeReturn::Ok,
    });
    let Some(src) = compositor.static_pad("src") else { return };
    let (added, id, participant) = (track.added, track.id, track.params.participant.clone());
    let input = mixer_pad.downgrade();
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        // A track gone before its first frame: nothing to wait for.
        if input.upgrade().is_none_or(|p| p.parent().is_none()) {
            return gst::PadProbeReturn::Remove;
        }
        let wanted = first.load(Ordering::Relaxed);
        let Some(gst::PadProbeData::Buffer(b)) = &info.data else { return gst::PadProbeReturn::Ok };
        let end = running_time(pad, b).map(|t| t + b.duration().map_or(0, |d| d.nseconds()));
        if wanted == u64::MAX || end.is_none_or(|end| end <= wanted) {
            return gst::PadProbeReturn::Ok;
        }
        let after_ms = added.elapsed().as_millis() as u64;
        tracing::info!(track = %id, participant = %participant, after_ms, "first frame composed");
        gst::PadProbeReturn::Remove
    });
}
