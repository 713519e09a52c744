//! Local-directory backend: parts are written at their offsets into `LOCATION.partial`,
//! completing syncs it and renames it into place.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{ErrorKind, RemotePart, SpoolRange, Storage, StorageError};
use crate::journal::{Destination, PartRecord};

pub struct LocalStorage {
    dest: Destination,
    location: PathBuf,
    partial: PathBuf,
}

impl LocalStorage {
    pub fn new(location: &Path) -> Self {
        let mut partial = location.as_os_str().to_owned();
        partial.push(".partial");
        Self {
            dest: Destination::Local { location: location.to_owned() },
            location: location.to_owned(),
            partial: partial.into(),
        }
    }

    fn open_partial(&self) -> Result<File, StorageError> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.partial)
            .map_err(|e| io_err("opening", &self.partial, e))
    }
}

/// A full disk or a vanished directory may come back; a permission problem will not.
fn io_err(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    };
    StorageError::with_source(kind, format!("{what} {}: {e}", path.display()), e)
}

impl Storage for LocalStorage {
    fn destination(&self) -> &Destination {
        &self.dest
    }

    fn create_upload(&mut self) -> Result<String, StorageError> {
        if let Some(dir) = self.location.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
        }
        let f = self.open_partial()?;
        f.set_len(0).map_err(|e| io_err("truncating", &self.partial, e))?;
        Ok("local".to_owned())
    }

    /// Parts written before a crash are simply written again from the spool.
    fn list_parts(&mut self, _upload_id: &str) -> Result<Vec<RemotePart>, StorageError> {
        if !self.partial.exists() {
            return Err(StorageError::new(ErrorKind::NoSuchUpload, "no partial file"));
        }
        Ok(Vec::new())
    }

    fn upload_part(&mut self, _upload_id: &str, _n: u32, part: &SpoolRange) -> Result<String, StorageError> {
        let out = self.open_partial()?;
        let src = File::open(&part.path).map_err(|e| io_err("opening", &part.path, e))?;
        let mut buf = vec![0; 1 << 20];
        let mut done = 0;
        while done < part.len {
            let n = usize::try_from(part.len - done).unwrap_or(usize::MAX).min(buf.len());
            let pos = part.offset + done;
            src.read_exact_at(&mut buf[..n], pos).map_err(|e| io_err("reading", &part.path, e))?;
            out.write_all_at(&buf[..n], pos).map_err(|e| io_err("writing", &self.partial, e))?;
            done += n as u64;
        }
        Ok(format!("{}", part.len))
    }

    fn complete(&mut self, _upload_id: &str, parts: &[PartRecord]) -> Result<(), StorageError> {
        let len = parts.last().map_or(0, PartRecord::end);
        let f = self.open_partial()?;
        f.set_len(len).map_err(|e| io_err("truncating", &self.partial, e))?;
        f.sync_all().map_err(|e| io_err("syncing", &self.partial, e))?;
        std::fs::rename(&self.partial, &self.location).map_err(|e| io_err("renaming", &self.partial, e))?;
        if let Some(dir) = self.location.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn abort(&mut self, _upload_id: &str) -> Result<(), StorageError> {
        match std::fs::remove_file(&self.partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", &self.partial, e)),
            _ => Ok(()),
        }
    }

    /// The spool is on the same machine as the file: nothing to keep elsewhere.
    fn put_tail(&mut self, _offset: u64, _range: &SpoolRange) -> Result<(), StorageError> {
        Ok(())
    }

    fn delete_tails(&mut self, _below: Option<u64>) -> Result<(), StorageError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_failure_says_where_and_keeps_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        // A directory cannot be made under a file: not a permission problem, so retried.
        let err = LocalStorage::new(&file.join("sub/out.mp4")).create_upload().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(err.message.starts_with(&format!("creating {}: ", file.join("sub").display())), "{err}");
        let cause = std::error::Error::source(&err).and_then(|c| c.downcast_ref::<std::io::Error>());
        assert!(cause.is_some(), "{err:?}");
    }
}
