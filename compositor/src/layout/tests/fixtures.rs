//! Helpers shared by the layout tests.

use crate::layout::{Canvas, Layout, ParticipantView, Tile, TileSource, VideoSize};

pub const HD: Canvas = Canvas { width: 1280, height: 720 };

/// The canvases the property tests cover.
pub const CANVASES: [Canvas; 4] =
    [HD, Canvas { width: 720, height: 1280 }, Canvas { width: 1080, height: 1920 }, Canvas { width: 640, height: 360 }];

pub fn size(width: u32, height: u32) -> VideoSize {
    VideoSize { width, height }
}

/// A participant with a 1280x720 camera; `join_order` = `join`.
pub fn person(id: &str, join: u64) -> ParticipantView {
    ParticipantView {
        id: id.to_owned(),
        name: format!("Name of {id}"),
        join_order: join,
        speaker_rank: None,
        pinned: false,
        camera: Some(size(1280, 720)),
        screen: None,
    }
}

/// `n` participants `p0..` joined in index order.
pub fn people(n: usize) -> Vec<ParticipantView> {
    (0..n).map(|i| person(&format!("p{i}"), i as u64 * 10)).collect()
}

pub fn builtin(name: &str) -> Layout {
    match Layout::builtin(name) {
        Some(layout) => layout,
        None => panic!("built-in layout {name:?} is missing or invalid"),
    }
}

pub fn layout(json: &str) -> Layout {
    match Layout::from_json_str(json) {
        Ok(layout) => layout,
        Err(e) => panic!("test layout is invalid: {e}\n{json}"),
    }
}

/// `(participant, source)` of each tile, in output order.
pub fn placed(tiles: &[Tile]) -> Vec<(&str, TileSource)> {
    tiles.iter().map(|t| (t.participant.as_str(), t.source)).collect()
}

/// Tiles of one region, by the region's name.
pub fn in_region<'a>(layout: &Layout, tiles: &'a [Tile], name: &str) -> Vec<&'a Tile> {
    let index = layout.regions().iter().position(|r| r.name.as_deref() == Some(name));
    tiles.iter().filter(|t| Some(t.region) == index).collect()
}
