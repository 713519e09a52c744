//! Layout engine: JSON layout documents (see `layouts/README.md` and
//! `layouts/schema.json`) and the pure function that turns a layout, the room's
//! participants and a canvas size into positioned tiles. No GStreamer here.

mod builtin;
mod color;
mod engine;
mod error;
mod fit;
mod geometry;
mod grid;
mod model;
mod parse;
mod participant;
mod reader;

#[cfg(test)]
mod tests;

pub use color::Rgba;
pub use engine::LayoutEngine;
pub use error::LayoutError;
pub use geometry::{Canvas, Rect, VideoSize};
pub use model::{Fit, Layout, Region, RegionCondition, SelectMode, Selector};
pub use participant::{ParticipantView, Tile, TileSource};

impl Layout {
    /// Parses a layout document; JSON syntax errors have path `""` and a reason
    /// with line and column. Returns the first problem; see [`validate_document`]
    /// for all of them.
    pub fn from_json_str(s: &str) -> Result<Layout, LayoutError> {
        parse::parse_str(s).map_err(first_error)
    }

    /// Validates an already-parsed JSON value (unknown fields are errors).
    pub fn from_value(v: &serde_json::Value) -> Result<Layout, LayoutError> {
        parse::parse_value(v).map_err(first_error)
    }

    /// A built-in layout by name (see [`Layout::builtin_names`]).
    pub fn builtin(name: &str) -> Option<Layout> {
        builtin::load(name)
    }

    pub fn builtin_names() -> &'static [&'static str] {
        builtin::names()
    }
}

/// Parses a layout document, reporting every problem found (for
/// `tessera layouts validate FILE...`).
pub fn validate_document(s: &str) -> Result<Layout, Vec<LayoutError>> {
    parse::parse_str(s)
}

/// Accepts the same JSON as [`Layout::from_value`], e.g. in API request bodies.
impl<'de> serde::Deserialize<'de> for Layout {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Layout::from_value(&value).map_err(serde::de::Error::custom)
    }
}

fn first_error(errors: Vec<LayoutError>) -> LayoutError {
    errors.into_iter().next().unwrap_or_else(|| LayoutError::new("", "invalid layout"))
}
