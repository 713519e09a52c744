//! The validated layout model. Built only by the parser (`parse.rs`), so every
//! `Layout` in the program satisfies the rules documented in `layouts/README.md`.
//! `Serialize` writes the canonical JSON form, which parses back to an equal value.

use serde::Serialize;

use super::color::Rgba;

/// Most regions a layout may have (keeps `Tile::zorder` arithmetic in range).
pub const MAX_REGIONS: usize = 64;
/// Largest `max_rows` / `max_cols` of a region.
pub const MAX_GRID_SIDE: u32 = 16;
/// Largest region `z`.
pub const MAX_Z: u32 = 1000;
/// Largest region `padding` (fraction of the canvas's shorter side).
pub const MAX_PADDING: f64 = 0.25;
/// Accepted range of `cell_aspect` (width / height).
pub const CELL_ASPECT_RANGE: (f64, f64) = (0.1, 10.0);

/// A validated layout: a named set of regions on a canvas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) background: Rgba,
    pub(crate) labels: bool,
    pub(crate) regions: Vec<Region>,
}

impl Layout {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Canvas background colour.
    pub fn background(&self) -> Rgba {
        self.background
    }

    /// Layout-wide default for name labels (regions may override).
    pub fn labels(&self) -> bool {
        self.labels
    }

    /// Regions in document order, which is also the order they are filled in.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Canonical JSON form; `Layout::from_value(&l.to_value()) == Ok(l)`.
    pub fn to_value(&self) -> serde_json::Value {
        // Serializing plain data (strings, finite numbers, bools) into a Value
        // cannot fail; fall back to Null rather than panic regardless.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// One rectangular area of the canvas, holding up to `max` tiles in a grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Region {
    /// Optional, unique within the layout; used in docs and error messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Geometry as fractions (0..=1) of the canvas.
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Stacking: higher is on top.
    pub z: u32,
    /// How camera pictures fill their cells.
    pub fit: Fit,
    /// How screen-share pictures fill their cells (cropping text is rarely wanted).
    pub screen_fit: Fit,
    /// Space around and between tiles, as a fraction of the canvas's shorter side.
    pub padding: f64,
    /// Overrides `Layout::labels` for this region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<bool>,
    /// Who fills the region; see `select_mode`.
    pub select: Vec<Selector>,
    pub select_mode: SelectMode,
    /// Most tiles in the region; `<= max_rows * max_cols`.
    pub max: u32,
    pub max_rows: u32,
    pub max_cols: u32,
    /// If set, cells keep this width/height ratio and the grid is centred in the
    /// region; if unset, cells stretch to fill the region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell_aspect: Option<f64>,
    /// Whether participants without a camera may be placed here (as placeholders).
    pub placeholders: bool,
    /// The region is used only when this holds.
    #[serde(skip_serializing_if = "RegionCondition::is_always")]
    pub when: RegionCondition,
}

impl Region {
    /// How many tiles the region can show.
    pub fn capacity(&self) -> usize {
        self.max as usize
    }

    /// Whether name labels are shown in this region.
    pub fn shows_labels(&self, layout_default: bool) -> bool {
        self.labels.unwrap_or(layout_default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the cell, cropping the source (centred) to the cell's aspect ratio.
    Cover,
    /// Show the whole source, letterboxed/pillarboxed inside the cell.
    Contain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectMode {
    /// The first selector that matches anyone supplies all of the region's tiles.
    First,
    /// Matches of every selector, in selector order, until the region is full.
    All,
}

/// Picks participants (or their screen shares) for a region. Only sources not
/// already placed by an earlier region are eligible.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    /// Participants whose `pinned` flag is set (join order).
    Pinned,
    /// Everyone who has spoken, most recent speaker first.
    Speakers,
    /// The participant with this speaker rank (0 = current active speaker).
    Speaker(u32),
    /// The participant with this identity.
    Identity(String),
    /// The N-th participant to join the room (0 = earliest), counted over everyone.
    Join(u64),
    /// Screen shares (the `Screen` source), in join order.
    Screen,
    /// Everyone not yet placed, in join order.
    Rest,
}

impl Selector {
    /// Selector keywords written as plain strings.
    pub const KEYWORDS: &'static [&'static str] = &["pinned", "speakers", "screen", "rest"];
    /// Selector keys written as `{"key": argument}`.
    pub const WITH_ARGUMENT: &'static [&'static str] = &["speaker", "identity", "join"];
}

/// Conditions on the room under which a region is used; all given ones must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RegionCondition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_participants: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<u32>,
    /// `true`: only while someone shares a screen; `false`: only while nobody does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen_share: Option<bool>,
}

impl RegionCondition {
    pub fn is_always(&self) -> bool {
        *self == RegionCondition::default()
    }

    pub fn holds(&self, participants: usize, screen_shared: bool) -> bool {
        let n = u64::try_from(participants).unwrap_or(u64::MAX);
        self.min_participants.is_none_or(|m| n >= u64::from(m))
            && self.max_participants.is_none_or(|m| n <= u64::from(m))
            && self.screen_share.is_none_or(|s| s == screen_shared)
    }
}
