//! Small records kept across restarts: one JSON file per id in a directory
//! (`DATA_DIR/state/recordings/ID.json`, `DATA_DIR/state/streams/ID.json`). Each write goes
//! to a temporary file renamed over the old one, so a crash (SIGKILL included) leaves the
//! previous or the new version of a record, never part of one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A directory of JSON records of one kind.
#[derive(Debug, Clone)]
pub struct JsonStore {
    dir: PathBuf,
    /// What the records are, for logs (`recording`, `stream`).
    kind: &'static str,
    /// Where every saved record also goes (cluster mode: shared with the other nodes); set
    /// once, seen by every clone.
    mirror: Arc<OnceLock<Arc<dyn RecordMirror>>>,
}

/// A second home for saved records (must not block: called under the owner's locks).
pub trait RecordMirror: Send + Sync + std::fmt::Debug {
    /// `kind` is the store's (`recording`, `stream`); `value` the record as saved.
    fn mirror(&self, kind: &'static str, id: &str, value: serde_json::Value);
}

/// A record read back, with the time it was last written.
#[derive(Debug)]
pub struct Stored<T> {
    pub value: T,
    pub saved_at: SystemTime,
}

impl JsonStore {
    /// Records of `kind` in `dir`, created if missing (a failure is logged: records are then
    /// kept in memory only).
    pub fn open(dir: PathBuf, kind: &'static str) -> Self {
        if let Err(err) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), %err, "cannot create the {kind} state directory");
        }
        JsonStore { dir, kind, mirror: Arc::default() }
    }

    /// From now on every saved record is also given to `mirror` (the first mirror set stays).
    pub fn set_mirror(&self, mirror: Arc<dyn RecordMirror>) {
        let _ = self.mirror.set(mirror);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the record `id` (best effort: a full disk is logged, not fatal).
    pub fn save<T: Serialize>(&self, id: &str, value: &T) {
        let path = self.dir.join(format!("{id}.json"));
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        let result = serde_json::to_vec_pretty(value)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(err) = result {
            tracing::warn!(id, %err, "cannot keep the {}'s metadata", self.kind);
        }
        if let Some(mirror) = self.mirror.get()
            && let Ok(json) = serde_json::to_value(value)
        {
            mirror.mirror(self.kind, id, json);
        }
    }

    /// Every readable record; unreadable ones (and leftover temporary files) are skipped
    /// with a warning.
    pub fn load_all<T: DeserializeOwned>(&self) -> Vec<Stored<T>> {
        let Ok(files) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut records = Vec::new();
        for path in files.filter_map(|f| f.ok().map(|f| f.path())) {
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let read = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<T>(&bytes).ok());
            let Some(value) = read else {
                tracing::warn!(file = %path.display(), "unreadable {} metadata; ignored", self.kind);
                continue;
            };
            let saved_at = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
            records.push(Stored { value, saved_at });
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing {
        id: String,
        n: u32,
    }

    #[test]
    fn records_round_trip_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = JsonStore::open(dir.path().join("state/things"), "thing");
        store.save("a", &Thing { id: "a".into(), n: 1 });
        store.save("b", &Thing { id: "b".into(), n: 2 });
        store.save("a", &Thing { id: "a".into(), n: 3 });
        // Junk beside the records is skipped.
        std::fs::write(store.dir().join("c.json"), b"{not json").unwrap();
        std::fs::write(store.dir().join("d.json.tmp"), b"{}").unwrap();
        let mut got: Vec<Thing> = store.load_all().into_iter().map(|s| s.value).collect();
        got.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(got, vec![Thing { id: "a".into(), n: 3 }, Thing { id: "b".into(), n: 2 }]);
        assert!(!store.dir().join("a.json.tmp").exists());
    }

    #[test]
    fn a_missing_directory_has_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = JsonStore::open(dir.path().join("nope"), "thing");
        std::fs::remove_dir(store.dir()).unwrap();
        assert!(store.load_all::<Thing>().is_empty());
    }
}
