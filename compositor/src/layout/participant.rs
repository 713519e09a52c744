//! Engine input (who is in the room) and output (what to draw where).

use super::geometry::{Rect, VideoSize};

/// What the layout engine needs to know about one participant.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantView {
    /// Identity, unique in the room (if repeated, only the earliest joiner counts).
    pub id: String,
    /// Display name (labels, placeholders).
    pub name: String,
    /// Increases with join time; the stable ordering key of grids.
    pub join_order: u64,
    /// `Some(0)` = current active speaker, `Some(1)` = previous, ...; `None` = has not spoken.
    pub speaker_rank: Option<u32>,
    /// Pinned by the application at runtime.
    pub pinned: bool,
    /// `Some` if publishing camera video; `0x0` until the first frame is decoded.
    pub camera: Option<VideoSize>,
    /// `Some` if publishing a screen share; `0x0` while unknown.
    pub screen: Option<VideoSize>,
}

/// `Ord` so `(participant, source)` can key ordered maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileSource {
    Camera,
    Screen,
    /// A participant without camera video: the pipeline draws their name.
    Placeholder,
}

/// One picture on the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// `ParticipantView::id`.
    pub participant: String,
    pub source: TileSource,
    /// Index into `Layout::regions()`.
    pub region: usize,
    /// Where the picture goes, after fit: the letterboxed rect for `contain`,
    /// the whole cell for `cover`, placeholders and sources of unknown size.
    pub rect: Rect,
    /// The cell the tile occupies (after padding).
    pub cell: Rect,
    /// For `cover`: the source-pixel rectangle to show (centred, cell aspect).
    /// `None` = the whole frame (no crop needed, `contain`, or size unknown).
    pub crop: Option<Rect>,
    /// Higher is on top; never 0 (left for the background).
    pub zorder: u32,
    /// `Some(name)` when the region shows name labels.
    pub label: Option<String>,
}
