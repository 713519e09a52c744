//! Layouts shipped in `layouts/*.json`, embedded at compile time.

use super::model::Layout;
use super::parse::parse_str;

/// `(name, JSON text)`; each file's `name` field equals its file stem (tested).
const BUILTINS: &[(&str, &str)] = &[
    ("grid", include_str!("../../../layouts/grid.json")),
    ("active-speaker", include_str!("../../../layouts/active-speaker.json")),
    ("sidebar", include_str!("../../../layouts/sidebar.json")),
    ("pip", include_str!("../../../layouts/pip.json")),
    ("single", include_str!("../../../layouts/single.json")),
    ("portrait-grid", include_str!("../../../layouts/portrait-grid.json")),
];

const NAMES: &[&str] = &["grid", "active-speaker", "sidebar", "pip", "single", "portrait-grid"];

pub(crate) fn names() -> &'static [&'static str] {
    NAMES
}

/// The built-in layout called `name`. The files are validated by tests, so
/// `None` here means an unknown name.
pub(crate) fn load(name: &str) -> Option<Layout> {
    let (_, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
    parse_str(text).ok()
}

#[cfg(test)]
pub(crate) fn sources() -> &'static [(&'static str, &'static str)] {
    BUILTINS
}
