//! The scene: who is in the room, which compositor pad shows what, and the current layout.
//!
//! Layout changes are applied from the compositor's `samples-selected` signal, i.e. in the
//! aggregator thread just before a frame is composed, so every pad property of one layout changes
//! between two output frames and never halfway through one.

use super::background::BackgroundColor;
use super::tile_crop::TileCrop;
use crate::layout::{Canvas, Layout, LayoutEngine, ParticipantView, Rect, Tile, TileSource, VideoSize};
use gst::prelude::*;
use std::collections::BTreeMap;

/// A compositor sink pad and what it shows.
struct SourcePad {
    pad: gst::Pad,
    /// Label overlay inside the source's chain (camera/screen), if any.
    label: Option<gst::Element>,
    /// Crops the source for `cover` tiles (camera/screen only).
    cropper: Option<TileCrop>,
}

pub(crate) struct Scene {
    layout: Layout,
    canvas: Canvas,
    participants: BTreeMap<String, ParticipantView>,
    next_join: u64,
    speakers: Vec<String>,
    pads: BTreeMap<(String, TileSource), SourcePad>,
    background: Option<BackgroundColor>,
    /// Bumped on every change; `applied` catches up in the aggregator thread.
    generation: u64,
    /// The generation last turned into a plan, and the last one on screen.
    planned: u64,
    applied: u64,
    tiles: Vec<Tile>,
}

impl Scene {
    pub fn new(layout: Layout, canvas: Canvas) -> Self {
        Scene {
            layout,
            canvas,
            participants: BTreeMap::new(),
            next_join: 0,
            speakers: Vec::new(),
            pads: BTreeMap::new(),
            background: None,
            generation: 1,
            planned: 0,
            applied: 0,
            tiles: Vec::new(),
        }
    }

    /// A scene for another rendition: the same participants, speakers and pins, with its own
    /// layout and canvas (its pads are registered as its sources are linked).
    pub fn fork(&self, layout: Layout, canvas: Canvas) -> Self {
        let mut scene = Scene::new(layout, canvas);
        scene.participants = self.participants.clone();
        scene.next_join = self.next_join;
        scene.speakers = self.speakers.clone();
        scene
    }

    pub fn set_background(&mut self, color: BackgroundColor) {
        self.background = Some(color);
        self.touch();
    }

    fn touch(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub fn applied_generation(&self) -> u64 {
        self.applied
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    pub fn set_layout(&mut self, layout: Layout) -> u64 {
        self.layout = layout;
        self.touch()
    }

    /// Adds the participant if new; returns whether it was new.
    pub fn ensure_participant(&mut self, id: &str, name: &str) -> bool {
        if let Some(p) = self.participants.get_mut(id) {
            if !name.is_empty() && p.name != name {
                p.name = name.to_string();
                self.touch();
            }
            return false;
        }
        let view = ParticipantView {
            id: id.to_string(),
            name: if name.is_empty() { id.to_string() } else { name.to_string() },
            join_order: self.next_join,
            speaker_rank: None,
            pinned: false,
            camera: None,
            screen: None,
        };
        self.next_join += 1;
        self.participants.insert(id.to_string(), view);
        self.rank_speakers();
        self.touch();
        true
    }

    pub fn remove_participant(&mut self, id: &str) -> bool {
        let removed = self.participants.remove(id).is_some();
        self.speakers.retain(|s| s != id);
        self.rank_speakers();
        self.touch();
        removed
    }

    pub fn participants(&self) -> impl Iterator<Item = &ParticipantView> {
        self.participants.values()
    }

    /// Marks that a participant publishes (Some) or stopped publishing (None) camera/screen video.
    pub fn set_video(&mut self, id: &str, source: TileSource, size: Option<VideoSize>) {
        if let Some(p) = self.participants.get_mut(id) {
            match source {
                TileSource::Camera => p.camera = size,
                TileSource::Screen => p.screen = size,
                TileSource::Placeholder => return,
            }
            self.touch();
        }
    }

    /// The decoded size became known (or changed): `contain`/`cover` geometry depends on it.
    pub fn update_video_size(&mut self, id: &str, source: TileSource, size: VideoSize) {
        if let Some(p) = self.participants.get_mut(id) {
            let slot = match source {
                TileSource::Camera => &mut p.camera,
                TileSource::Screen => &mut p.screen,
                TileSource::Placeholder => return,
            };
            if slot.is_some() && *slot != Some(size) {
                *slot = Some(size);
                self.touch();
            }
        }
    }

    /// Most recent speaker first.
    pub fn set_active_speakers(&mut self, ranking: &[String]) {
        if self.speakers.as_slice() != ranking {
            self.speakers = ranking.to_vec();
            self.rank_speakers();
            self.touch();
        }
    }

    pub fn set_pinned(&mut self, pinned: &[String]) {
        for p in self.participants.values_mut() {
            p.pinned = pinned.iter().any(|x| x == &p.id);
        }
        self.touch();
    }

    fn rank_speakers(&mut self) {
        for p in self.participants.values_mut() {
            p.speaker_rank = self.speakers.iter().position(|s| s == &p.id).map(|r| r as u32);
        }
    }

    pub fn register_pad(
        &mut self,
        participant: &str,
        source: TileSource,
        pad: gst::Pad,
        label: Option<gst::Element>,
        cropper: Option<TileCrop>,
    ) {
        // The caller hid the pad (alpha 0) before registering it: no GStreamer call is made
        // under the scene lock outside the compositor's own thread.
        self.pads.insert((participant.to_string(), source), SourcePad { pad, label, cropper });
        self.touch();
    }

    pub fn unregister_pad(&mut self, participant: &str, source: TileSource) -> Option<gst::Pad> {
        let p = self.pads.remove(&(participant.to_string(), source));
        self.touch();
        p.map(|p| p.pad)
    }

    /// Computes the tiles for the current state without applying them.
    pub fn compute_tiles(&self) -> Vec<Tile> {
        let views: Vec<ParticipantView> = self.participants.values().cloned().collect();
        LayoutEngine::compute(&self.layout, &views, self.canvas)
    }

    /// The pad settings for the current state if anything changed since the last plan. Taken
    /// in the compositor's thread before a frame is composed and applied there *after* the
    /// scene lock is released: no GStreamer call is ever made under this lock.
    pub fn take_plan(&mut self) -> Option<ScenePlan> {
        if self.planned == self.generation {
            return None;
        }
        let tiles = self.compute_tiles();
        let mut plan = ScenePlan { generation: self.generation, pads: Vec::new(), deferred: Vec::new() };
        if let Some(bg) = &self.background {
            plan.deferred
                .push(DeferredUpdate::Background { color: bg.clone(), argb: self.layout.background().argb_u32() });
        }
        for ((participant, source), sp) in self.pads.iter_mut() {
            let tile = tiles.iter().find(|t| &t.participant == participant && t.source == *source);
            let size = self.participants.get(participant).and_then(|v| match source {
                TileSource::Camera => v.camera,
                TileSource::Screen => v.screen,
                TileSource::Placeholder => None,
            });
            match tile {
                Some(t) => {
                    plan.pads.push(PadSettings {
                        pad: sp.pad.clone(),
                        place: Some((t.rect, t.zorder + 1)), // zorder 0 is the background
                        crop: sp.cropper.clone().map(|c| (c, t.crop)),
                    });
                    if let Some(overlay) = sp.label.clone() {
                        let pos = label_position(t, size);
                        plan.deferred.push(DeferredUpdate::Label { overlay, text: t.label.clone(), pos });
                    }
                }
                None => {
                    plan.pads.push(PadSettings { pad: sp.pad.clone(), place: None, crop: None });
                    if let Some(overlay) = sp.label.clone() {
                        plan.deferred.push(DeferredUpdate::Label { overlay, text: None, pos: (0.5, 0.92) });
                    }
                }
            }
        }
        self.tiles = tiles;
        self.planned = self.generation;
        Some(plan)
    }

    /// Records that a plan is on screen (wakes `set_layout` callers).
    pub fn mark_applied(&mut self, generation: u64) {
        self.applied = self.applied.max(generation);
    }
}

/// One compositor pad's settings for the next frame.
pub(crate) struct PadSettings {
    pad: gst::Pad,
    /// Where and at which z-order; None hides the pad.
    place: Option<(Rect, u32)>,
    /// The source's cropper and the part of the frame to show (None: all of it).
    crop: Option<(TileCrop, Option<Rect>)>,
}

/// Everything one scene change does to the pipeline.
pub(crate) struct ScenePlan {
    pub generation: u64,
    pads: Vec<PadSettings>,
    pub deferred: Vec<DeferredUpdate>,
}

impl ScenePlan {
    /// Sets the compositor pads. Called in the compositor's thread between two frames.
    pub fn apply_pads(&self) {
        for p in &self.pads {
            let pad = &p.pad;
            if let Some((cropper, crop)) = &p.crop {
                // Only flags a renegotiation when the crop changed: the frames still queued at
                // the pad (at most one) are scaled into the new tile until it takes effect.
                cropper.set_crop(*crop);
            }
            match p.place {
                Some((rect, zorder)) => {
                    pad.set_property("xpos", rect.x);
                    pad.set_property("ypos", rect.y);
                    pad.set_property("width", rect.width as i32);
                    pad.set_property("height", rect.height as i32);
                    pad.set_property("zorder", zorder);
                    pad.set_property("alpha", 1.0f64);
                }
                None => pad.set_property("alpha", 0.0f64),
            }
        }
    }
}

/// Centred near the bottom of the part of the frame that is shown.
fn label_position(t: &Tile, size: Option<VideoSize>) -> (f64, f64) {
    match (t.crop, size) {
        (Some(c), Some(s)) if s.width > 0 && s.height > 0 => (
            (c.x as f64 + c.width as f64 / 2.0) / s.width as f64,
            (c.y as f64 + c.height as f64 * 0.92) / s.height as f64,
        ),
        _ => (0.5, 0.92),
    }
}

/// A change to an element upstream of the compositor (a camera's label overlay, the background
/// source). Applied off the compositor's thread: their streaming threads may be waiting on it.
pub(crate) enum DeferredUpdate {
    Label { overlay: gst::Element, text: Option<String>, pos: (f64, f64) },
    Background { color: BackgroundColor, argb: u32 },
}

impl DeferredUpdate {
    pub fn apply(&self) {
        match self {
            DeferredUpdate::Label { overlay: o, text: Some(text), pos } => {
                o.set_property("xpos", pos.0);
                o.set_property("ypos", pos.1);
                o.set_property("text", text);
                o.set_property("silent", false);
            }
            DeferredUpdate::Label { overlay: o, text: None, .. } => o.set_property("silent", true),
            DeferredUpdate::Background { color, argb } => color.set(*argb),
        }
    }
}
