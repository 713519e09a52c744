//! `LayoutEngine::compute`: who goes where. Pure and deterministic.
//!
//! Steps, per region in document order (regions whose `when` fails are skipped):
//! 1. selection: pick up to `max` sources not placed by earlier regions
//!    (each camera and each screen share is placed at most once);
//! 2. ordering: sort the picks by join order, so speaking never reshuffles a region;
//! 3. geometry: grid cells inside the padded region, then `fit` each picture.
//!
//! Selection does not depend on the canvas, only geometry does.

use std::collections::HashSet;

use super::fit::{contain_rect, cover_crop};
use super::geometry::{Box64, Canvas, Rect, round_even};
use super::grid::GridSpec;
use super::model::{Fit, Layout, Region, SelectMode, Selector};
use super::participant::{ParticipantView, Tile, TileSource};

/// `Tile::zorder` = 1 + z * Z_STRIDE + region index * REGION_STRIDE + tile index.
/// Limits in `model.rs` (z <= 1000, <= 64 regions, <= 256 tiles) keep this in
/// range and unique; 0 stays free for the background.
const Z_STRIDE: u32 = 1 << 16;
const REGION_STRIDE: u32 = 1 << 8;

pub struct LayoutEngine;

impl LayoutEngine {
    /// Tiles in region order, row-major within a region (not sorted by `zorder`).
    /// The order of `participants` does not matter.
    pub fn compute(layout: &Layout, participants: &[ParticipantView], canvas: Canvas) -> Vec<Tile> {
        let room = Room::new(participants);
        let mut placed = Placed::new(room.members.len());
        let mut tiles = Vec::new();
        for (region_index, region) in layout.regions.iter().enumerate() {
            if !region.when.holds(room.members.len(), room.screen_shared) {
                continue;
            }
            let mut picks = select(region, &room, &placed);
            for pick in &picks {
                placed.mark(*pick);
            }
            // Room members are sorted by join order, so this is join order.
            picks.sort();
            let spec = grid_spec(region, canvas);
            let cells = spec.cells(picks.len());
            for (tile_index, (pick, cell)) in picks.iter().zip(cells).enumerate() {
                if cell.is_empty() {
                    continue; // region too small on this canvas
                }
                let member = room.members[pick.member];
                tiles.push(make_tile(layout, region, region_index, tile_index, member, pick.feed, cell));
            }
        }
        tiles
    }
}

/// Which of a participant's videos a selector picks. A camera pick becomes a
/// placeholder tile when the participant has no camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Feed {
    Camera,
    Screen,
}

/// Ordered by member (join order), camera before screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pick {
    member: usize,
    feed: Feed,
}

/// Participants sorted by `(join_order, id)`, duplicate ids dropped.
struct Room<'a> {
    members: Vec<&'a ParticipantView>,
    screen_shared: bool,
}

impl<'a> Room<'a> {
    fn new(participants: &'a [ParticipantView]) -> Self {
        let mut sorted: Vec<&ParticipantView> = participants.iter().collect();
        sorted.sort_by(|a, b| (a.join_order, &a.id).cmp(&(b.join_order, &b.id)));
        let mut seen = HashSet::new();
        sorted.retain(|p| seen.insert(p.id.as_str()));
        let screen_shared = sorted.iter().any(|p| p.screen.is_some());
        Room { members: sorted, screen_shared }
    }

    /// Everything a selector could pick, best first, before eligibility checks.
    fn matches(&self, selector: &Selector) -> Vec<Pick> {
        let camera = |member| Pick { member, feed: Feed::Camera };
        let members = self.members.iter().enumerate();
        match selector {
            Selector::Pinned => members.filter(|(_, p)| p.pinned).map(|(i, _)| camera(i)).collect(),
            Selector::Speakers => {
                let mut speakers: Vec<(u32, usize)> =
                    members.filter_map(|(i, p)| p.speaker_rank.map(|rank| (rank, i))).collect();
                speakers.sort(); // by rank, then join order
                speakers.into_iter().map(|(_, i)| camera(i)).collect()
            }
            Selector::Speaker(rank) => {
                members.filter(|(_, p)| p.speaker_rank == Some(*rank)).map(|(i, _)| camera(i)).collect()
            }
            Selector::Identity(id) => members.filter(|(_, p)| p.id == *id).map(|(i, _)| camera(i)).collect(),
            Selector::Join(n) => {
                usize::try_from(*n).ok().filter(|&i| i < self.members.len()).map(camera).into_iter().collect()
            }
            Selector::Screen => members
                .filter(|(_, p)| p.screen.is_some())
                .map(|(member, _)| Pick { member, feed: Feed::Screen })
                .collect(),
            Selector::Rest => members.map(|(i, _)| camera(i)).collect(),
        }
    }
}

/// Sources already placed by earlier regions.
struct Placed {
    camera: Vec<bool>,
    screen: Vec<bool>,
}

impl Placed {
    fn new(members: usize) -> Self {
        Placed { camera: vec![false; members], screen: vec![false; members] }
    }

    fn slot(&mut self, pick: Pick) -> Option<&mut bool> {
        match pick.feed {
            Feed::Camera => self.camera.get_mut(pick.member),
            Feed::Screen => self.screen.get_mut(pick.member),
        }
    }

    fn contains(&self, pick: Pick) -> bool {
        let slots = match pick.feed {
            Feed::Camera => &self.camera,
            Feed::Screen => &self.screen,
        };
        slots.get(pick.member).copied().unwrap_or(true)
    }

    fn mark(&mut self, pick: Pick) {
        if let Some(slot) = self.slot(pick) {
            *slot = true;
        }
    }
}

/// Up to `region.max` picks, in selector priority order.
fn select(region: &Region, room: &Room<'_>, placed: &Placed) -> Vec<Pick> {
    let capacity = region.capacity();
    let eligible = |pick: &Pick| {
        !placed.contains(*pick)
            && (region.placeholders || pick.feed == Feed::Screen || room.members[pick.member].camera.is_some())
    };
    let mut chosen: Vec<Pick> = Vec::new();
    for selector in &region.select {
        let candidates = room.matches(selector).into_iter().filter(|p| eligible(p));
        match region.select_mode {
            SelectMode::First => {
                chosen = candidates.take(capacity).collect();
                if !chosen.is_empty() {
                    break;
                }
            }
            SelectMode::All => {
                for pick in candidates {
                    if chosen.len() >= capacity {
                        break;
                    }
                    if !chosen.contains(&pick) {
                        chosen.push(pick);
                    }
                }
            }
        }
        if chosen.len() >= capacity {
            break;
        }
    }
    chosen
}

/// The region's grid on this canvas: edges rounded to even pixels and clamped
/// to the canvas, then inset by the padding.
fn grid_spec(region: &Region, canvas: Canvas) -> GridSpec {
    let (w, h) = (i64::from(canvas.width), i64::from(canvas.height));
    let edge = |fraction: f64, total: i64| round_even(fraction * total as f64).clamp(0, total);
    let outer = Box64 {
        x0: edge(region.x, w),
        y0: edge(region.y, h),
        x1: edge(region.x + region.width, w),
        y1: edge(region.y + region.height, h),
    };
    let gap = round_even(region.padding * w.min(h) as f64);
    GridSpec {
        area: outer.inset(gap),
        gap,
        max_rows: region.max_rows,
        max_cols: region.max_cols,
        cell_aspect: region.cell_aspect,
    }
}

fn make_tile(
    layout: &Layout,
    region: &Region,
    region_index: usize,
    tile_index: usize,
    member: &ParticipantView,
    feed: Feed,
    cell: Rect,
) -> Tile {
    let (source, size, fit) = match (feed, member.camera) {
        (Feed::Screen, _) => (TileSource::Screen, member.screen, region.screen_fit),
        (Feed::Camera, Some(size)) => (TileSource::Camera, Some(size), region.fit),
        (Feed::Camera, None) => (TileSource::Placeholder, None, region.fit),
    };
    let (rect, crop) = match (size.and_then(|s| s.known()), fit) {
        (None, _) => (cell, None),
        (Some(size), Fit::Cover) => (cell, cover_crop(size, cell)),
        (Some(size), Fit::Contain) => (contain_rect(size, cell), None),
    };
    let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    let zorder = 1 + region.z * Z_STRIDE + index(region_index) * REGION_STRIDE + index(tile_index);
    Tile {
        participant: member.id.clone(),
        source,
        region: region_index,
        rect,
        cell,
        crop,
        zorder,
        label: region.shows_labels(layout.labels).then(|| member.name.clone()),
    }
}
