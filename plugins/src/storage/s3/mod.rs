//! S3 backend (aws-sdk-s3) on the crate's own tokio runtime (`config.rs`). Blocking calls: only
//! used from the uploader and recovery threads, never from a streaming thread or a tokio
//! worker. `bucket.rs`: what completing another node's upload reads from the bucket.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

mod bucket;
mod config;

pub use config::S3Config;
pub(crate) use config::block_on;

use super::{ErrorKind, RemotePart, SpoolRange, Storage, StorageError, tail_key, tail_offset, tail_prefix};
use crate::journal::{Destination, PartRecord};

/// One attempt of a tail object's PUT: it is small, and a tail that hangs must not hold the
/// uploader (and so the parts) for long.
const TAIL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Keys per DeleteObjects request (S3's maximum).
const DELETE_BATCH: usize = 1000;

pub struct S3Storage {
    client: Client,
    config: S3Config,
    dest: Destination,
    bucket: String,
    key: String,
    /// Tail objects this backend stored and has not deleted yet: offset → length.
    tails: BTreeMap<u64, u64>,
}

/// A multipart upload in progress, as ListMultipartUploads shows it.
#[derive(Debug, Clone)]
pub(crate) struct UploadInfo {
    pub upload_id: String,
    /// Seconds since the epoch, when the server says.
    pub initiated: Option<f64>,
}

impl S3Storage {
    pub fn new(config: &S3Config, bucket: &str, key: &str) -> Self {
        Self {
            client: config.client(),
            config: config.clone(),
            dest: Destination::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                region: config.region.clone(),
                endpoint_url: config.endpoint_url.clone(),
            },
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            tails: BTreeMap::new(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// UploadPart of `len` bytes from `body`; returns the part's ETag.
    pub(super) fn send_part(
        &self,
        upload_id: &str,
        n: u32,
        len: u64,
        body: ByteStream,
    ) -> Result<String, StorageError> {
        let number = i32::try_from(n).map_err(|_| StorageError::new(ErrorKind::Permanent, "too many parts"))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .body(body);
        let out = block_on(req.send()).map_err(|e| self.err("UploadPart", e))?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::new(ErrorKind::Transient, "UploadPart: no ETag in the reply"))
    }

    fn err<E>(&self, what: &str, e: SdkError<E, HttpResponse>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let (kind, msg) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("unknown");
                let kind = classify(code, status.unwrap_or(0));
                (kind, format!("{what}: {code}: {} (HTTP {})", se.err().message().unwrap_or(""), status.unwrap_or(0)))
            }
            SdkError::ConstructionFailure(_) => (ErrorKind::Permanent, format!("{what}: {}", DisplayErrorContext(&e))),
            _ => (ErrorKind::Transient, format!("{what}: {}", DisplayErrorContext(&e))),
        };
        StorageError::new(kind, self.config.redact(msg))
    }
}

/// Server errors, throttling and timeouts are retried; other client errors are final.
pub(crate) fn classify(code: &str, status: u16) -> ErrorKind {
    match (code, status) {
        ("NoSuchUpload", _) => ErrorKind::NoSuchUpload,
        ("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "RequestTimeTooSkewed", _) => {
            ErrorKind::Transient
        }
        (_, 408 | 429) | (_, 500..) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

impl Storage for S3Storage {
    fn destination(&self) -> &Destination {
        &self.dest
    }

    fn create_upload(&mut self) -> Result<String, StorageError> {
        let req = self.client.create_multipart_upload().bucket(&self.bucket).key(&self.key).content_type("video/mp4");
        let out = block_on(req.send()).map_err(|e| self.err("CreateMultipartUpload", e))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::new(ErrorKind::Transient, "CreateMultipartUpload: no upload id in the reply"))
    }

    fn list_parts(&mut self, upload_id: &str) -> Result<Vec<RemotePart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let req = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone());
            let out = block_on(req.send()).map_err(|e| self.err("ListParts", e))?;
            for p in out.parts() {
                if let (Some(n), Some(len), Some(etag)) = (p.part_number(), p.size(), p.e_tag()) {
                    parts.push(RemotePart {
                        n: u32::try_from(n).unwrap_or(0),
                        len: u64::try_from(len).unwrap_or(0),
                        etag: etag.to_owned(),
                    });
                }
            }
            marker = out.next_part_number_marker().map(str::to_owned);
            if !out.is_truncated().unwrap_or(false) || marker.is_none() {
                break;
            }
        }
        parts.sort_by_key(|p| p.n);
        Ok(parts)
    }

    fn upload_part(&mut self, upload_id: &str, n: u32, part: &SpoolRange) -> Result<String, StorageError> {
        // Streamed from the spool file (re-read on a retry), never held in memory.
        let body = block_on(
            ByteStream::read_from().path(&part.path).offset(part.offset).length(Length::Exact(part.len)).build(),
        )
        .map_err(|e| {
            StorageError::with_source(ErrorKind::Permanent, format!("reading spool {}: {e}", part.path.display()), e)
        })?;
        self.send_part(upload_id, n, part.len, body)
    }

    fn complete(&mut self, upload_id: &str, parts: &[PartRecord]) -> Result<(), StorageError> {
        let completed = parts
            .iter()
            .map(|p| {
                CompletedPart::builder().part_number(i32::try_from(p.n).unwrap_or(i32::MAX)).e_tag(&p.etag).build()
            })
            .collect();
        let req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build());
        block_on(req.send()).map_err(|e| self.err("CompleteMultipartUpload", e))?;
        Ok(())
    }

    fn abort(&mut self, upload_id: &str) -> Result<(), StorageError> {
        let req = self.client.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(upload_id);
        block_on(req.send()).map_err(|e| self.err("AbortMultipartUpload", e))?;
        Ok(())
    }

    fn put_tail(&mut self, offset: u64, range: &SpoolRange) -> Result<(), StorageError> {
        let body = block_on(
            ByteStream::read_from().path(&range.path).offset(range.offset).length(Length::Exact(range.len)).build(),
        )
        .map_err(|e| {
            StorageError::with_source(ErrorKind::Permanent, format!("reading spool {}: {e}", range.path.display()), e)
        })?;
        let key = tail_key(&self.key, offset);
        let timeout = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(TAIL_ATTEMPT_TIMEOUT)
            .build();
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/octet-stream")
            .content_length(i64::try_from(range.len).unwrap_or(i64::MAX))
            .body(body)
            .customize()
            .config_override(aws_sdk_s3::config::Builder::default().timeout_config(timeout));
        block_on(req.send()).map_err(|e| self.err("PutObject (tail)", e))?;
        self.tails.insert(offset, range.len);
        Ok(())
    }

    fn delete_tails(&mut self, below: Option<u64>) -> Result<(), StorageError> {
        let offsets: Vec<u64> = match below {
            Some(b) => self.tails.iter().filter(|&(&o, &l)| o + l <= b).map(|(&o, _)| o).collect(),
            None => {
                let listed = self.list_tails()?;
                listed.into_iter().map(|(o, _)| o).chain(self.tails.keys().copied()).collect()
            }
        };
        let mut keys: Vec<String> = offsets.iter().map(|&o| tail_key(&self.key, o)).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        let gone = self.delete_keys(&keys)?;
        self.tails.retain(|&o, _| !gone.contains(&tail_key(&self.key, o)));
        if gone.len() < keys.len() {
            return Err(StorageError::new(
                ErrorKind::Transient,
                format!("DeleteObjects: {} tail objects not deleted", keys.len() - gone.len()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        assert_eq!(classify("NoSuchUpload", 404), ErrorKind::NoSuchUpload);
        assert_eq!(classify("NoSuchBucket", 404), ErrorKind::Permanent);
        assert_eq!(classify("AccessDenied", 403), ErrorKind::Permanent);
        assert_eq!(classify("SlowDown", 503), ErrorKind::Transient);
        assert_eq!(classify("unknown", 502), ErrorKind::Transient);
    }

    #[test]
    fn debug_and_messages_hide_credentials() {
        let c = S3Config {
            access_key_id: Some("AKIDSECRETID".into()),
            secret_access_key: Some("verysecret".into()),
            session_token: Some("tok".into()),
            ..Default::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("AKIDSECRETID") && !d.contains("verysecret") && !d.contains("tok\""), "{d}");
        assert_eq!(c.redact("key AKIDSECRETID / verysecret".into()), "key **** / ****");
    }
}
