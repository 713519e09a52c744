//! Extra trust for `rtmps://` destinations whose certificates come from a private CA (an
//! in-house ingest, or the tests' CA). rtmp2sink verifies through GIO's default TLS database,
//! which is process-wide, so the extra CA is added to the system list there.

use crate::error::{CompositorError, Result};
use gio::prelude::*;
use std::io::Write;
use std::path::Path;

/// Where Debian keeps the public CAs (package ca-certificates).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Trusts the PEM certificates in `ca_file` for every TLS connection made from now on, in
/// addition to the system's CAs.
pub fn trust_extra_ca_file(ca_file: &Path) -> Result<()> {
    let extra =
        std::fs::read(ca_file).map_err(|source| CompositorError::CaFile { path: ca_file.to_owned(), source })?;
    if !String::from_utf8_lossy(&extra).contains("-----BEGIN CERTIFICATE-----") {
        let reason = format!("{}: no PEM certificate in it", ca_file.display());
        return Err(CompositorError::InvalidConfig { field: "tls_ca_file", reason });
    }
    // GIO reads one file: write the system bundle and the extra CAs into a private copy.
    let path = std::env::temp_dir().join(format!("tessera-ca-bundle-{}.pem", std::process::id()));
    let write = |file: &mut std::fs::File| -> std::io::Result<()> {
        if let Ok(system) = std::fs::read(SYSTEM_BUNDLE) {
            file.write_all(&system)?;
            file.write_all(b"\n")?;
        }
        file.write_all(&extra)?;
        file.flush()
    };
    std::fs::File::create(&path)
        .and_then(|mut file| write(&mut file))
        .map_err(|source| CompositorError::Write { path: path.clone(), source })?;
    let db = gio::TlsFileDatabase::new(&path)
        .map_err(|source| CompositorError::CaBundle { path: ca_file.to_owned(), source })?;
    let backend = gio::TlsBackend::default();
    backend.set_default_database(Some(&db));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named_and_its_cause_kept() {
        let err = trust_extra_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid program configuration: tls_ca_file: /nonexistent/ca.pem: "),
            "{err}"
        );
        let cause = std::error::Error::source(&err).and_then(|c| c.downcast_ref::<std::io::Error>());
        assert_eq!(cause.map(std::io::Error::kind), Some(std::io::ErrorKind::NotFound));
    }
}
