//! Looking into directories a test's subject writes (spools, recordings).

use std::path::{Path, PathBuf};

/// The entries of `dir`, in no particular order; none when it does not exist.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}
