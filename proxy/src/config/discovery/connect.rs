//! The connection to the control plane: HTTP/2 over TLS (ALPN `h2`, the server verified
//! against `--discovery-ca`) for `https://`, HTTP/2 with prior knowledge for `http://`;
//! keepalive pings notice a control plane that went away without closing. The CA file is
//! read again before each connection and trusted anew when it changed, so a rotated CA
//! needs no restart.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The body of the request: the hello, then acks and nacks.
pub type RequestBody = BoxBody<Bytes, Infallible>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why `--discovery` and `--discovery-ca` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The URL is not `http(s)://HOST[:PORT]`.
    #[error("--discovery {url:?}: {reason}")]
    Url {
        /// The flag's value.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA file cannot be used.
    #[error("--discovery-ca {path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where the control plane is, and how to trust it.
#[derive(Clone, Debug)]
pub struct Target {
    url: Uri,
    host: String,
    port: u16,
    tls: Option<Arc<Tls>>,
}

/// How the control plane is trusted: the CA file, and what it held when last read.
#[derive(Debug)]
struct Tls {
    ca: PathBuf,
    name: ServerName<'static>,
    loaded: Mutex<Loaded>,
}

/// The CA file's content when last read, and the client config trusting it.
#[derive(Debug)]
struct Loaded {
    pem: Vec<u8>,
    config: Arc<ClientConfig>,
}

impl Tls {
    /// The client config for the CA file as it is now: made again when the file changed;
    /// the last good one while it cannot be read or used.
    fn config(&self) -> Arc<ClientConfig> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        match std::fs::read(&self.ca) {
            Ok(pem) if pem != loaded.pem => match client_config(&self.ca, &pem) {
                Ok(config) => {
                    tracing::info!(ca = %self.ca.display(), "--discovery-ca changed: the new CA is trusted from this connection on");
                    *loaded = Loaded { pem, config };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "--discovery-ca changed but cannot be used; the CA read before stays trusted")
                }
            },
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(ca = %self.ca.display(), error = %e, "cannot read --discovery-ca again; the CA read before stays trusted")
            }
        }
        loaded.config.clone()
    }
}

impl Target {
    /// The control plane at `url` (`https://HOST[:PORT]`, trusted by the PEM certificates
    /// of `ca`; or `http://HOST[:PORT]` for plain text in local tests).
    pub fn new(url: &str, ca: Option<&Path>) -> Result<Target, TargetError> {
        let bad = |reason: &str| TargetError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed: Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
        let secure = match parsed.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(bad(
                    "use https://HOST[:PORT], or http://HOST[:PORT] for plain text",
                ));
            }
        };
        let authority = parsed.authority().ok_or_else(|| bad("no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let tls = match (secure, ca) {
            (false, _) => None,
            (true, None) => {
                return Err(bad(
                    "https needs --discovery-ca FILE, the PEM certificate that signed the control plane's",
                ));
            }
            (true, Some(ca)) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| bad("the host is no valid TLS server name"))?;
                let pem = std::fs::read(ca).map_err(|e| TargetError::Ca {
                    path: ca.to_path_buf(),
                    reason: format!("cannot read it: {e}"),
                })?;
                let config = client_config(ca, &pem)?;
                Some(Arc::new(Tls {
                    ca: ca.to_path_buf(),
                    name,
                    loaded: Mutex::new(Loaded { pem, config }),
                }))
            }
        };
        let url = Uri::builder()
            .scheme(parsed.scheme_str().unwrap_or("http"))
            .authority(authority.as_str())
            .path_and_query("/v1/discovery")
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Target {
            url,
            host,
            port,
            tls,
        })
    }

    /// The stream's URL.
    pub fn url(&self) -> &Uri {
        &self.url
    }

    /// An HTTP/2 connection to the control plane.
    pub async fn connect(&self) -> Result<SendRequest<RequestBody>, String> {
        let connecting = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => handshake(tcp).await,
                Some(tls) => {
                    let tls = TlsConnector::from(tls.config())
                        .connect(tls.name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS handshake failed: {e}"))?;
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Err("the server did not agree to HTTP/2 (ALPN h2)".into());
                    }
                    handshake(tls).await
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| Err(format!("no connection within {CONNECT_TIMEOUT:?}")))
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<RequestBody>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "discovery connection closed");
        }
    });
    Ok(sender)
}

/// A client config trusting the certificates `pem` of file `ca`, offering HTTP/2 only.
fn client_config(ca: &Path, pem: &[u8]) -> Result<Arc<ClientConfig>, TargetError> {
    let bad = |reason: String| TargetError::Ca {
        path: ca.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let plain = Target::new("http://127.0.0.1:15012", None).unwrap();
        assert_eq!(
            plain.url().to_string(),
            "http://127.0.0.1:15012/v1/discovery"
        );
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 15012));
        let v6 = Target::new("http://[::1]:9", None).unwrap();
        assert_eq!(v6.host, "::1");
        let cases = [
            (
                "https://sluice-control.sluice-system.svc:15012",
                "--discovery-ca",
            ),
            ("grpc://x:1", "use https://"),
            ("sluice-control:15012", "use https://"),
        ];
        for (url, want) in cases {
            let err = Target::new(url, None).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
        let missing = Path::new("/nonexistent/ca.pem");
        let err = Target::new("https://x:1", Some(missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
