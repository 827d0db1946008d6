//! The certificates STARTTLS can present, and the choice among them: RFC 3887 section 6 has the
//! client name the server in `STARTTLS <fqdn>`, and the server answers with the certificate
//! whose subjectAltName dNSNames match that name (wildcards per RFC 6125, as webpki checks
//! them). One rustls crypto provider (ring), TLS 1.2 and 1.3 only. The gate and the syslog
//! receiver use the same certificates, chosen by SNI; the receiver may also require client
//! certificates ([`TlsCerts::for_syslog`]).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, NoClientAuth, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// Plaintext and TLS output a connection may buffer inside rustls; past it, writing waits.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// One certificate chain with its key, ready to serve.
struct Served {
    end_entity: CertificateDer<'static>,
    config: Arc<ServerConfig>,
    /// The same chain and key for a resolver that chooses among them ([`TlsCerts::by_sni`]).
    certified: Arc<CertifiedKey>,
}

/// Every configured certificate, in `--tls-cert` order.
pub struct TlsCerts {
    served: Vec<Served>,
}

impl std::fmt::Debug for TlsCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsCerts({} certificates)", self.served.len())
    }
}

fn load_pair(cert: &Path, key: &Path) -> Result<Served, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate {} is not valid PEM: {e}", cert.display()))?;
    let end_entity = chain
        .first()
        .cloned()
        .ok_or_else(|| format!("{} holds no certificate", cert.display()))?;
    webpki::EndEntityCert::try_from(&end_entity)
        .map_err(|e| format!("certificate {} cannot be parsed: {e}", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
    let signing_key = default_provider()
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|e| format!("key {} cannot be used: {e}", key.display()))?;
    let certified = Arc::new(CertifiedKey::new(chain.clone(), signing_key));
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "key {} does not fit certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    Ok(Served {
        end_entity,
        config: Arc::new(config),
        certified,
    })
}

/// Chooses a certificate by the name the client's TLS hello asks for (SNI), the first in order
/// when the hello names none or no certificate serves the name: SMTP's STARTTLS, unlike MTQP's,
/// names no host.
#[derive(Debug)]
struct BySni(Vec<(CertificateDer<'static>, Arc<CertifiedKey>)>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let wanted = hello
            .server_name()
            .and_then(|n| DnsName::try_from(n.to_ascii_lowercase()).ok())
            .map(ServerName::DnsName);
        let serves = |ee: &CertificateDer<'static>| {
            let name = wanted.as_ref()?;
            webpki::EndEntityCert::try_from(ee)
                .ok()?
                .verify_is_valid_for_subject_name(name)
                .ok()
        };
        self.0
            .iter()
            .find(|(ee, _)| serves(ee).is_some())
            .or(self.0.first())
            .map(|(_, key)| Arc::clone(key))
    }
}

impl TlsCerts {
    /// Loads `(certificate chain, key)` PEM pairs; the first problem is the error.
    pub fn load(pairs: &[(&Path, &Path)]) -> Result<TlsCerts, String> {
        let served = pairs
            .iter()
            .map(|(c, k)| load_pair(c, k))
            .collect::<Result<_, _>>()?;
        Ok(TlsCerts { served })
    }

    /// One configuration for every certificate, choosing by the client's SNI (see [`BySni`]).
    pub fn by_sni(&self) -> Result<Arc<ServerConfig>, String> {
        self.by_sni_verifying(Arc::new(NoClientAuth))
    }

    /// [`TlsCerts::by_sni`] for the syslog receiver (RFC 5425), where a client certificate
    /// signed by a CA of `client_ca` (a PEM file), when given, is required: it stands for the
    /// sender's address in the allow list.
    pub fn for_syslog(&self, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, String> {
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
        self.by_sni_verifying(verifier)
    }

    fn by_sni_verifying(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<Arc<ServerConfig>, String> {
        let keys = self
            .served
            .iter()
            .map(|s| (s.end_entity.clone(), Arc::clone(&s.certified)))
            .collect();
        let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(BySni(keys)));
        Ok(Arc::new(config))
    }

    /// The configuration whose certificate is valid for `fqdn`, the first in order when several
    /// are. None when no certificate serves that name.
    pub fn config_for(&self, fqdn: &[u8]) -> Option<Arc<ServerConfig>> {
        let name = std::str::from_utf8(fqdn).ok()?;
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let dns = ServerName::DnsName(DnsName::try_from(name).ok()?);
        self.served.iter().find_map(|s| {
            let ee = webpki::EndEntityCert::try_from(&s.end_entity).ok()?;
            ee.verify_is_valid_for_subject_name(&dns).ok()?;
            Some(Arc::clone(&s.config))
        })
    }
}
