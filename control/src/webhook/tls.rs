//! The serving certificate: PEM files loaded into rustls, swapped atomically when they change
//! on disk (a renewed Secret), the old one kept while the new one is unusable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate/key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{cert} and {key}: {reason}")]
    Pair {
        cert: String,
        key: String,
        reason: String,
    },
}

/// The current certificate, read from two files.
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl CertStore {
    /// Loads the pair; fails when either file is missing, unparsable, or they do not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let current = ArcSwap::from_pointee(read_pair(cert, key)?);
        Ok(Self {
            cert: cert.into(),
            key: key.into(),
            current,
        })
    }

    /// Reads the files again; on error the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.current
            .store(Arc::new(read_pair(&self.cert, &self.key)?));
        Ok(())
    }

    /// The files this store reads.
    pub fn paths(&self) -> [&Path; 2] {
        [&self.cert, &self.key]
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(cert, format!("cannot read PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no CERTIFICATE block found".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_error(key, format!("cannot read a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Pair {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason: e.to_string(),
    })
}

/// A rustls server config answering with the store's current certificate (HTTP/2 and 1.1).
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
