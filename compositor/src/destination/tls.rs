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
    let err = |reason: String| CompositorError::InvalidConfig { field: "tls_ca_file", reason };
    let extra = std::fs::read(ca_file).map_err(|e| err(format!("{}: {e}", ca_file.display())))?;
    if !String::from_utf8_lossy(&extra).contains("-----BEGIN CERTIFICATE-----") {
        return Err(err(format!("{}: no PEM certificate in it", ca_file.display())));
    }
    // GIO reads one file: write the system bundle and the extra CAs into a private copy.
    let mut bundle = tempfile_in_tmp()?;
    if let Ok(system) = std::fs::read(SYSTEM_BUNDLE) {
        bundle.1.write_all(&system).map_err(|e| err(e.to_string()))?;
        bundle.1.write_all(b"\n").map_err(|e| err(e.to_string()))?;
    }
    bundle.1.write_all(&extra).map_err(|e| err(e.to_string()))?;
    bundle.1.flush().map_err(|e| err(e.to_string()))?;
    let db = gio::TlsFileDatabase::new(&bundle.0).map_err(|e| err(format!("{}: {e}", ca_file.display())))?;
    let backend = gio::TlsBackend::default();
    backend.set_default_database(Some(&db));
    Ok(())
}

fn tempfile_in_tmp() -> Result<(std::path::PathBuf, std::fs::File)> {
    let path = std::env::temp_dir().join(format!("tessera-ca-bundle-{}.pem", std::process::id()));
    let file = std::fs::File::create(&path)
        .map_err(|e| CompositorError::Gst(format!("cannot write {}: {e}", path.display())))?;
    Ok((path, file))
}
