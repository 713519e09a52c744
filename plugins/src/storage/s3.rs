//! S3 backend (aws-sdk-s3) on the crate's own tokio runtime. Blocking calls: only used from
//! the uploader and recovery threads, never from a streaming thread or a tokio worker.

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
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{ErrorKind, RemotePart, SpoolRange, Storage, StorageError};
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

pub struct S3Storage {
    client: Client,
    config: S3Config,
    dest: Destination,
    bucket: String,
    key: String,
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
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
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
        .map_err(|e| StorageError::new(ErrorKind::Permanent, format!("reading spool {}: {e}", part.path.display())))?;
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
