//! Validation errors that point into the layout document.

/// One problem in a layout document.
///
/// `path` is a JSON Pointer (RFC 6901) into the document, e.g. `/regions/1/x`;
/// it is `""` for the document root (and for JSON syntax errors, whose
/// `reason` carries the line and column instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct LayoutError {
    pub path: String,
    pub reason: String,
}

impl LayoutError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { path: path.into(), reason: reason.into() }
    }
}

/// Appends one reference token to a JSON Pointer, escaping `~` and `/`.
pub(crate) fn pointer_push(base: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{base}/{escaped}")
}
