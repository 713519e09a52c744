//! S3 connection settings, the client built from them, and the runtime S3 calls run on.

use std::sync::LazyLock;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

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
    pub(super) fn redact(&self, mut msg: String) -> String {
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
