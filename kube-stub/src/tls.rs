//! The server's certificates: a self-signed CA made at start and a serving certificate for the
//! loopback names and any extra addresses, as rustls server config.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the certificates or the TLS config could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused a name or failed to sign.
    #[error("making the stand-in's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the key or certificate.
    #[error("configuring TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The CA (PEM, for kubeconfig's certificate-authority-data) and the rustls config serving
/// HTTP/2 and HTTP/1.1.
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server config.
    pub server_config: Arc<ServerConfig>,
}

impl Pki {
    /// Makes a CA and a serving certificate for `127.0.0.1`, `::1`, `localhost` and
    /// `extra_names` (IP addresses or DNS names).
    pub fn new(extra_names: &[String]) -> Result<Self, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sluice-kube-stub CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut names = vec!["127.0.0.1".into(), "::1".into(), "localhost".into()];
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca.pem(),
            server_config: Arc::new(config),
        })
    }
}
