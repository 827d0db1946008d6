//! Certificates made at test time: a CA and leaves signed by it, written as PEM files, and a
//! rustls client configuration that trusts the CA.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::TempDir;

/// A test CA and leaf certificates signed by it, written as PEM files.
pub struct Pki {
    pub dir: TempDir,
    pub ca_der: CertificateDer<'static>,
}

/// One leaf: its files and its DER, to compare with what a client is shown.
pub struct Leaf {
    pub cert: String,
    pub key: String,
    pub der: Vec<u8>,
}

impl Pki {
    pub fn new(name: &str) -> (Pki, rcgen::Certificate, KeyPair) {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "mtqpd test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = TempDir::new(name);
        std::fs::write(dir.path("ca.pem"), ca.pem()).unwrap();
        let pki = Pki {
            dir,
            ca_der: ca.der().clone(),
        };
        (pki, ca, ca_key)
    }

    pub fn leaf(
        &self,
        ca: &rcgen::Certificate,
        ca_key: &KeyPair,
        file: &str,
        names: &[&str],
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, ca, ca_key).unwrap();
        let cert_path = self.dir.path(&format!("{file}.pem"));
        let key_path = self.dir.path(&format!("{file}.key"));
        // The chain: leaf, then the CA.
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf {
            cert: cert_path.display().to_string(),
            key: key_path.display().to_string(),
            der: cert.der().to_vec(),
        }
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}
