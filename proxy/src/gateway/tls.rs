//! TLS ports of the gateway: the ClientHello's SNI picks the server among the port's; a
//! `PASSTHROUGH` server forwards the bytes as they are ([`super::passthrough`]), a `SIMPLE` or
//! `MUTUAL` server terminates with rustls (the certificate and key from its files, or from
//! the mounted `credentialName`; re-read when the files change) and serves HTTP/1.1 or
//! HTTP/2 (ALPN) through the edge's routing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use sluice_api::istio::gateway::{ServerTlsMode, TlsProtocol};
use sluice_api::model::edge::ServerTls;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::{Edge, Shared};
use crate::http::{self, Outbound};
use crate::protocol::{self, Prefixed, Sniff};
use crate::{drain, tls};

/// The longest wait for a client's ClientHello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection to a TLS port.
pub async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    drain: &drain::Watch,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let found = protocol::detect(&mut stream, None::<std::future::Pending<_>>, HELLO_TIMEOUT).await;
    let Sniff::Tls { sni } = found.sniff else {
        return tracing::debug!(%peer, port = local.port(), "not TLS on a TLS gateway port");
    };
    let Some(snap) = shared.sidecar.store.current() else {
        return;
    };
    let Some(port) = snap.model.edge.ports.get(&local.port()) else {
        return;
    };
    let name = sni.as_deref().unwrap_or("").to_ascii_lowercase();
    let Some(&(server, server_host)) = port.servers_for(&name).first() else {
        return tracing::debug!(%peer, sni = ?sni, "no server for this SNI");
    };
    let Some(settings) = &server.tls else {
        return;
    };
    if settings.passes_through() {
        if sni.is_none() {
            return tracing::debug!(%peer, "passthrough needs an SNI");
        }
        let to = super::passthrough::Hello {
            server,
            server_host,
            sni: &name,
            local,
            client: &found.client,
        };
        return super::passthrough::forward(&shared.sidecar, &snap, to, stream).await;
    }
    let config = match shared
        .certs
        .config(settings, &shared.options.credentials_dir)
    {
        Ok(c) => c,
        Err(e) => {
            return tracing::error!(gateway = %server.gateway, server = %server.port_name, "cannot terminate TLS: {e}");
        }
    };
    let accepted = TlsAcceptor::from(config)
        .accept(Prefixed::new(found.client, stream))
        .await;
    let tls = match accepted {
        Ok(tls) => tls,
        Err(e) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
    };
    let edge = Arc::new(Edge::terminated(
        local.port(),
        server,
        shared.options.trusted_proxies,
    ));
    let outbound = Outbound::edge(shared.sidecar.clone(), local, peer, edge);
    let gates = shared.sidecar.gates.clone();
    http::serve_with(tls, move |req| outbound.clone().handle(req), drain, &gates).await;
}

/// Server configs by TLS settings, rebuilt when their files change.
#[derive(Debug, Default)]
pub struct Certs {
    built: Mutex<HashMap<String, (u64, Arc<ServerConfig>)>>,
}

/// The files of a server's credential.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
}

impl Files {
    /// The server's files, or those of its `credentialName` mounted under `credentials`.
    fn of(t: &ServerTls, credentials: &Path) -> Result<Files, String> {
        if let (Some(cert), Some(key)) = (&t.server_certificate, &t.private_key) {
            return Ok(Files {
                cert: cert.into(),
                key: key.into(),
                ca: t.ca_certificates.as_ref().map(PathBuf::from),
            });
        }
        let Some(name) = &t.credential_name else {
            return Err("no serverCertificate and privateKey, and no credentialName".into());
        };
        let dir = credentials.join(name);
        let ca = dir.join("ca.crt");
        Ok(Files {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: t
                .ca_certificates
                .as_ref()
                .map(PathBuf::from)
                .or_else(|| ca.exists().then_some(ca)),
        })
    }

    /// Changes when any file changes.
    fn stamp(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash as _, Hasher as _};
        let mut h = DefaultHasher::new();
        for f in [Some(&self.cert), Some(&self.key), self.ca.as_ref()]
            .into_iter()
            .flatten()
        {
            let meta = std::fs::metadata(f).ok();
            meta.as_ref().map(std::fs::Metadata::len).hash(&mut h);
            meta.and_then(|m| m.modified().ok())
                .map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
                .hash(&mut h);
        }
        h.finish()
    }
}

impl Certs {
    /// The rustls config of a server's TLS settings, built again when its files changed.
    pub fn config(&self, t: &ServerTls, credentials: &Path) -> Result<Arc<ServerConfig>, String> {
        let files = Files::of(t, credentials)?;
        let key = format!("{t:?}");
        let stamp = files.stamp();
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, config)) = built.get(&key)
            && *s == stamp
        {
            return Ok(config.clone());
        }
        let config = Arc::new(build(t, &files)?);
        built.insert(key, (stamp, config.clone()));
        Ok(config)
    }
}

fn build(t: &ServerTls, files: &Files) -> Result<ServerConfig, String> {
    let provider = Arc::new(provider(&t.cipher_suites));
    let versions = versions(t.min_version, t.max_version)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let mutual = matches!(
        t.mode,
        ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    let builder = match (&files.ca, mutual) {
        (Some(ca), true) => {
            let path = ca.display().to_string();
            let mut roots = rustls::RootCertStore::empty();
            for c in tls::certificates(&path, "caCertificates")? {
                roots
                    .add(c)
                    .map_err(|e| format!("caCertificates {path}: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if t.mode == ServerTlsMode::OptionalMutual {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("caCertificates {path}: {e}"))?,
            )
        }
        (None, true) => return Err("MUTUAL needs caCertificates".into()),
        (_, false) => builder.with_no_client_auth(),
    };
    let cert_path = files.cert.display().to_string();
    let chain = tls::certificates(&cert_path, "serverCertificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("cannot read privateKey {}: {e}", files.key.display()))?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("serverCertificate {cert_path} and its privateKey: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// ring's suites; with `cipherSuites`, the TLS 1.2 suites are those named (OpenSSL or IANA
/// names), as in Envoy, where the list does not apply to TLS 1.3.
fn provider(names: &[String]) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return provider;
    }
    let wanted: Vec<String> = names.iter().map(|n| iana(n)).collect();
    provider.cipher_suites.retain(|s| {
        s.version() == &rustls::version::TLS13 || wanted.contains(&format!("{:?}", s.suite()))
    });
    provider
}

/// The IANA name of an OpenSSL cipher name (IANA names stay).
fn iana(name: &str) -> String {
    let openssl = [
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
    ];
    openssl
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_ascii_uppercase(), |(_, i)| (*i).to_string())
}

/// The versions between min and max (rustls has TLS 1.2 and 1.3; older minimums mean 1.2).
fn versions(
    min: Option<TlsProtocol>,
    max: Option<TlsProtocol>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |p: TlsProtocol| match p {
        TlsProtocol::Auto => None,
        TlsProtocol::V1_0 => Some(10),
        TlsProtocol::V1_1 => Some(11),
        TlsProtocol::V1_2 => Some(12),
        TlsProtocol::V1_3 => Some(13),
    };
    let lo = min.and_then(rank).unwrap_or(12);
    let hi = max.and_then(rank).unwrap_or(13);
    let mut out = Vec::new();
    if lo <= 12 && hi >= 12 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(format!(
            "no TLS version between minProtocolVersion and maxProtocolVersion that sluice speaks (TLS 1.2, 1.3); got max {max:?}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_suites_as_configured() {
        let v = |min, max| versions(min, max).map(|v| v.len());
        assert_eq!(v(None, None), Ok(2));
        assert_eq!(v(Some(TlsProtocol::V1_3), None), Ok(1));
        assert_eq!(v(None, Some(TlsProtocol::V1_2)), Ok(1));
        assert_eq!(v(Some(TlsProtocol::V1_0), Some(TlsProtocol::V1_2)), Ok(1));
        assert!(v(None, Some(TlsProtocol::V1_1)).is_err());
        let p = provider(&["ECDHE-RSA-AES256-GCM-SHA384".into()]);
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()));
        assert!(!names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        assert!(
            names.iter().any(|n| n.starts_with("TLS13_")),
            "TLS 1.3 suites stay"
        );
    }
}
