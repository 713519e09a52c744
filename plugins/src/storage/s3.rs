//! S3 backend (aws-sdk-s3) on the crate's own tokio runtime. Blocking calls: only used from
//! the uploader and recovery threads, never from a streaming thread or a tokio worker.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

use super::{ErrorKind, RemotePart, SpoolRange, Storage, StorageError, tail_key, tail_offset, tail_prefix};
use crate::journal::{Destination, PartRecord};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tessera-s3")
        .enable_all()
        .build()
        .expect("cannot start the S3 runtime")
});

/// S3 connection settings. Anything unset comes from the standard AWS configuration
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ... or the default credential chain).
/// Debug output masks the credentials.
#[derive(Clone, Default)]
pub struct S3Config {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); defaults to true when an endpoint
    /// URL is set, as S3-compatible servers usually need it.
    pub force_path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |s: &Option<String>| s.as_ref().map(|_| "****");
        f.debug_struct("S3Config")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &mask(&self.access_key_id))
            .field("secret_access_key", &mask(&self.secret_access_key))
            .field("session_token", &mask(&self.session_token))
            .finish()
    }
}

impl S3Config {
    /// Builds a client; loads the standard AWS configuration for what is unset.
    pub fn client(&self) -> Client {
        // Runs on the runtime's own thread so callers inside another runtime don't panic.
        let cfg = self.clone();
        std::thread::scope(|s| s.spawn(|| RUNTIME.block_on(cfg.build_client())).join())
            .unwrap_or_else(|_| panic!("S3 client construction panicked"))
    }

    async fn build_client(self) -> Client {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint_url {
            loader = loader.endpoint_url(e.clone());
        }
        if let (Some(ak), Some(sk)) = (&self.access_key_id, &self.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(ak, sk, self.session_token.clone(), None, "tessera"));
        }
        let sdk = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            // Our uploader retries forever with its own backoff; one attempt per call here.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            )
            // Plain payloads: S3-compatible servers differ in their support of trailing checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk.region().is_none() {
            b = b.region(Region::new("us-east-1"));
        }
        if sdk.endpoint_url().is_some() {
            b = b.force_path_style(self.force_path_style.unwrap_or(true));
        } else if let Some(p) = self.force_path_style {
            b = b.force_path_style(p);
        }
        Client::from_conf(b.build())
    }

    /// Removes credentials from a message (servers may echo an access key id).
    fn redact(&self, mut msg: String) -> String {
        for secret in [&self.access_key_id, &self.secret_access_key, &self.session_token].into_iter().flatten() {
            if !secret.is_empty() {
                msg = msg.replace(secret.as_str(), "****");
            }
        }
        msg
    }
}

/// Blocks on a future on the crate runtime.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.block_on(f)
}

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
        let number = i32::try_from(n).map_err(|_| StorageError::new(ErrorKind::Permanent, "too many parts"))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .body(ByteStream::from(bytes));
        let out = block_on(req.send()).map_err(|e| self.err("UploadPart", e))?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::new(ErrorKind::Transient, "UploadPart: no ETag in the reply"))
    }

    /// Deletes `keys` (DeleteObjects, in batches); returns the keys that are gone.
    fn delete_keys(&self, keys: &[String]) -> Result<Vec<String>, StorageError> {
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
        let number = i32::try_from(n).map_err(|_| StorageError::new(ErrorKind::Permanent, "too many parts"))?;
        // Streamed from the spool file (re-read on a retry), never held in memory.
        let body = block_on(
            ByteStream::read_from().path(&part.path).offset(part.offset).length(Length::Exact(part.len)).build(),
        )
        .map_err(|e| {
            StorageError::with_source(ErrorKind::Permanent, format!("reading spool {}: {e}", part.path.display()), e)
        })?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(i64::try_from(part.len).unwrap_or(i64::MAX))
            .body(body);
        let out = block_on(req.send()).map_err(|e| self.err("UploadPart", e))?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::new(ErrorKind::Transient, "UploadPart: no ETag in the reply"))
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
