//! What completing an upload from another machine reads from (and writes to) the bucket:
//! the uploads in progress for a key, its tail objects, byte ranges, and deletions
//! (`crate::abandoned`).

use super::*;

impl S3Storage {
    /// The multipart uploads in progress for exactly this key. The prefix is the key
    /// itself: MinIO lists uploads only for a prefix that names an object.
    pub(crate) fn list_uploads(&self) -> Result<Vec<UploadInfo>, StorageError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let req = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&self.key)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone());
            let out = block_on(req.send()).map_err(|e| self.err("ListMultipartUploads", e))?;
            for u in out.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id())
                    && k == self.key
                {
                    let initiated = u.initiated().map(|t| t.as_secs_f64());
                    uploads.push(UploadInfo { upload_id: id.to_owned(), initiated });
                }
            }
            let next = (out.next_key_marker().map(str::to_owned), out.next_upload_id_marker().map(str::to_owned));
            if !out.is_truncated().unwrap_or(false) || next.0.is_none() || (next.0 == key_marker && next.1 == id_marker)
            {
                break;
            }
            (key_marker, id_marker) = next;
        }
        Ok(uploads)
    }

    /// The recording's tail objects: (offset, length), by offset.
    pub(crate) fn list_tails(&self) -> Result<Vec<(u64, u64)>, StorageError> {
        let prefix = tail_prefix(&self.key);
        let mut tails = Vec::new();
        let mut token = None::<String>;
        loop {
            let req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.clone());
            let out = block_on(req.send()).map_err(|e| self.err("ListObjectsV2", e))?;
            for o in out.contents() {
                if let Some(offset) = o.key().and_then(|k| tail_offset(&self.key, k)) {
                    tails.push((offset, o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0)));
                }
            }
            token = out.next_continuation_token().map(str::to_owned);
            if !out.is_truncated().unwrap_or(false) || token.is_none() {
                break;
            }
        }
        tails.sort_unstable();
        Ok(tails)
    }

    /// `len` bytes of `key` (this recording's object or one of its tail objects) from
    /// `offset`; fewer when the object is shorter.
    pub(crate) fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={offset}-{}", offset + len - 1));
        let what = format!("GetObject {key}");
        let out = block_on(req.send()).map_err(|e| self.err(&what, e))?;
        let body = block_on(out.body.collect()).map_err(|e| {
            StorageError::new(ErrorKind::Transient, self.config.redact(format!("{what}: reading the body: {e}")))
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// The object's size, or `None` if there is no such object.
    pub(crate) fn head(&self) -> Result<Option<u64>, StorageError> {
        let req = self.client.head_object().bucket(&self.bucket).key(&self.key);
        match block_on(req.send()) {
            Ok(out) => Ok(Some(out.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0))),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) => Err(self.err("HeadObject", e)),
        }
    }

    /// Uploads part `n` from memory; returns its ETag.
    pub(crate) fn upload_part_bytes(&self, upload_id: &str, n: u32, bytes: Vec<u8>) -> Result<String, StorageError> {
        let len = bytes.len() as u64;
        self.send_part(upload_id, n, len, ByteStream::from(bytes))
    }

    /// Deletes `keys` (DeleteObjects, in batches); returns the keys that are gone.
    pub(super) fn delete_keys(&self, keys: &[String]) -> Result<Vec<String>, StorageError> {
        let mut gone = Vec::new();
        for batch in keys.chunks(DELETE_BATCH) {
            let objects =
                batch.iter().filter_map(|k| ObjectIdentifier::builder().key(k).build().ok()).collect::<Vec<_>>();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::new(ErrorKind::Permanent, format!("DeleteObjects: {e}")))?;
            let req = self.client.delete_objects().bucket(&self.bucket).delete(delete);
            let out = block_on(req.send()).map_err(|e| self.err("DeleteObjects", e))?;
            let failed: Vec<&str> = out.errors().iter().filter_map(|e| e.key()).collect();
            if let Some(e) = out.errors().first() {
                let msg = format!(
                    "DeleteObjects: {} of {} not deleted: {}: {}",
                    failed.len(),
                    batch.len(),
                    e.code().unwrap_or("unknown"),
                    e.message().unwrap_or("")
                );
                crate::engine::log::warn(&self.config.redact(msg));
            }
            gone.extend(batch.iter().filter(|k| !failed.contains(&k.as_str())).cloned());
        }
        Ok(gone)
    }
}
