//! The outbound HTTP(S) client shared by webhooks and `tessera bot`: hyper over rustls with
//! the system's root certificates.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// rustls is built with two crypto providers in this binary (the AWS SDK brings the other):
/// every TLS client names the one it uses.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Why no TLS client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no TLS root certificates: {0}")]
    NativeRoots(#[source] std::io::Error),
    #[error("no TLS root certificates found on this system")]
    NoRoots,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// For callers that report a plain message (the webhooks' start).
impl From<TlsError> for String {
    fn from(e: TlsError) -> Self {
        e.to_string()
    }
}

/// A client for `http://` and `https://` URLs (must be used inside a tokio runtime).
pub fn https_client() -> Result<HttpsClient, TlsError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(crypto_provider())
        .map_err(TlsError::NativeRoots)?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// A rustls client configuration with the system's root certificates (for `wss://`).
pub fn tls_client_config() -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::NoRoots);
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}
