//! The client's TLS settings: which certificate authorities it trusts (a `--ca` PEM bundle, or
//! the system's roots) and the rustls configuration built on them — the ring provider, TLS 1.2
//! and 1.3 only, no client certificate. The handshake itself is [`super::connection`]'s.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Reads the CA certificates of a PEM bundle (`--ca`). A bundle that yields no usable
/// certificate is an error: trusting nothing would only fail later, less clearly.
pub fn load_ca(path: &Path) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA bundle {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA bundle {} is not valid PEM: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, rejected) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "CA bundle {} holds no usable certificate ({rejected} rejected)",
            path.display()
        ));
    }
    Ok(roots)
}

/// The system's trusted roots (rustls-native-certs: the platform store, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`). Errors for individual files are tolerated as long as some roots load.
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(format!(
            "no trusted CA certificates found on this system{why} (give --ca PEM)"
        ));
    }
    Ok(roots)
}

/// The client configuration over `roots`.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_bundle_is_an_error() {
        let dir = std::env::temp_dir().join(format!("mtqpd-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        assert!(load_ca(&missing).unwrap_err().contains("cannot read"));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        assert!(load_ca(&empty)
            .unwrap_err()
            .contains("no usable certificate"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn configuration_builds() {
        assert!(client_config(RootCertStore::empty()).is_ok());
    }
}
