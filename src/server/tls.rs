//! The certificates STARTTLS can present, and the choice among them: RFC 3887 section 6 has the
//! client name the server in `STARTTLS <fqdn>`, and the server answers with the certificate
//! whose subjectAltName dNSNames match that name (wildcards per RFC 6125, as webpki checks
//! them). One rustls crypto provider (ring), TLS 1.2 and 1.3 only. The gate and the syslog
//! receiver use the same certificates, chosen by SNI ([`TlsCerts::by_sni`]); SIGHUP replaces the
//! whole set ([`super::live_certs`]).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

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
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    // A renewed certificate copied without its new key must be refused here, at a reload
    // too, not found out by clients failing their handshakes.
    certified.keys_match().map_err(|e| {
        format!(
            "key {} does not fit certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    let certified = Arc::new(certified);
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    Ok(Served {
        end_entity,
        config: Arc::new(config),
        certified,
    })
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

    /// The certificate for the name the client's TLS hello asks for (SNI), the first in order
    /// when the hello names none or no certificate serves the name: SMTP's STARTTLS, unlike
    /// MTQP's, names no host.
    pub(crate) fn by_sni(&self, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
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
        self.served
            .iter()
            .find(|s| serves(&s.end_entity).is_some())
            .or(self.served.first())
            .map(|s| Arc::clone(&s.certified))
    }

    /// How many certificates there are.
    pub(crate) fn len(&self) -> usize {
        self.served.len()
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
