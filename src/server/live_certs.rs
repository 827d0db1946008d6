//! The certificates in use, which SIGHUP replaces: [`LiveCerts`] holds the current
//! [`TlsCerts`] and the files they came from. A reload reads every pair again and swaps the
//! whole set in only when all of it loads; a connection keeps the configuration it began its
//! handshake with, so nothing open is dropped. The set is read when a handshake begins (MTQP's
//! STARTTLS, and the hello of the gate's and the syslog receiver's clients), never per command.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, NoClientAuth, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use super::tls::TlsCerts;

/// The `--tls-cert`/`--tls-key` files and the certificates last loaded from them.
pub struct LiveCerts {
    pairs: Vec<(PathBuf, PathBuf)>,
    current: RwLock<Arc<TlsCerts>>,
}

impl std::fmt::Debug for LiveCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LiveCerts({} pairs)", self.pairs.len())
    }
}

impl LiveCerts {
    /// Loads `(certificate chain, key)` PEM pairs; the first problem is the error.
    pub fn load(pairs: &[(PathBuf, PathBuf)]) -> Result<Arc<LiveCerts>, String> {
        let certs = load_all(pairs)?;
        Ok(Arc::new(LiveCerts {
            pairs: pairs.to_vec(),
            current: RwLock::new(Arc::new(certs)),
        }))
    }

    /// The certificates in use now.
    pub fn current(&self) -> Arc<TlsCerts> {
        Arc::clone(&self.current.read())
    }

    /// Reads every pair again and, when all load, puts them in use for the handshakes that
    /// begin from now on; returns how many there are. On an error the set in use stays.
    pub fn reload(&self) -> Result<usize, String> {
        let certs = load_all(&self.pairs)?;
        let count = certs.len();
        *self.current.write() = Arc::new(certs);
        Ok(count)
    }

    /// One configuration for every certificate, choosing the current one by the client's SNI
    /// at each handshake ([`TlsCerts::by_sni`]): the gate's.
    pub fn by_sni(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        self.config_verifying(Arc::new(NoClientAuth))
    }

    /// [`LiveCerts::by_sni`] for the syslog receiver (RFC 5425), where a client certificate
    /// signed by a CA of `client_ca` (a PEM file), when given, is required: it stands for the
    /// sender's address in the allow list. The CA file is read here only, not at a reload.
    pub fn for_syslog(
        self: &Arc<Self>,
        client_ca: Option<&Path>,
    ) -> Result<Arc<ServerConfig>, String> {
        let Some(ca) = client_ca else {
            return self.by_sni();
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("cannot read CA certificates {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert
                .map_err(|e| format!("CA certificates {} are not valid PEM: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA certificate in {} cannot be used: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{} holds no CA certificate", ca.display()));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(default_provider()),
        )
        .build()
        .map_err(|e| format!("CA certificates {}: {e}", ca.display()))?;
        self.config_verifying(verifier)
    }

    fn config_verifying(
        self: &Arc<Self>,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<Arc<ServerConfig>, String> {
        let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Current(Arc::clone(self))));
        Ok(Arc::new(config))
    }
}

fn load_all(pairs: &[(PathBuf, PathBuf)]) -> Result<TlsCerts, String> {
    let paths: Vec<(&Path, &Path)> = pairs
        .iter()
        .map(|(c, k)| (c.as_path(), k.as_path()))
        .collect();
    TlsCerts::load(&paths)
}

/// The resolver of [`LiveCerts::by_sni`]: the set in use when the client's hello arrives.
#[derive(Debug)]
struct Current(Arc<LiveCerts>);

impl ResolvesServerCert for Current {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current().by_sni(&hello)
    }
}
