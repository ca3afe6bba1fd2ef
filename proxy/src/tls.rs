//! TLS origination towards upstreams (DestinationRule `trafficPolicy.tls`)
//! with rustls: `SIMPLE` verifies the server against `caCertificates` (else
//! the webpki roots) and `subjectAltNames` (else the SNI name), `MUTUAL`
//! adds the client certificate; `insecureSkipVerify` and `caCrl` as in
//! Istio. `ISTIO_MUTUAL` needs a mesh CA, which sluice does not have yet.

pub(crate) mod verify;

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use sluice_api::istio::destination_rule::{ClientTlsMode, ClientTlsSettings};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What a destination's connections do about TLS.
#[derive(Clone, Debug, Default)]
pub enum Tls {
    /// Plain text: no `tls`, or mode `DISABLE`.
    #[default]
    Plain,
    /// TLS originated by the proxy.
    Originate(Arc<Origination>),
    /// TLS the proxy cannot originate: requests get 503 with this reason.
    Unavailable(String),
}

impl Tls {
    /// The TLS of a destination on `host` with these settings.
    pub fn of(settings: Option<&ClientTlsSettings>, host: &str) -> Tls {
        let Some(settings) = settings else {
            return Tls::Plain;
        };
        match settings.mode {
            None | Some(ClientTlsMode::Disable) => Tls::Plain,
            Some(ClientTlsMode::IstioMutual) => Tls::Unavailable(
                "tls mode ISTIO_MUTUAL needs the mesh's certificate authority, which sluice does \
                 not have yet; use SIMPLE or MUTUAL with certificate files, or DISABLE"
                    .into(),
            ),
            Some(mode) => match Origination::new(settings, mode == ClientTlsMode::Mutual, host) {
                Ok(o) => Tls::Originate(Arc::new(o)),
                Err(reason) => Tls::Unavailable(reason),
            },
        }
    }

    /// Tells apart the connections of different TLS settings in the pools (0: plain).
    pub fn fingerprint(&self) -> u64 {
        match self {
            Tls::Originate(o) => o.fingerprint,
            _ => 0,
        }
    }
}

/// The protocol offered by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1`.
    Http1,
    /// `h2`.
    Http2,
    /// Nothing (opaque TCP).
    None,
}

/// Client TLS settings ready to connect with.
pub struct Origination {
    http1: TlsConnector,
    http2: TlsConnector,
    opaque: TlsConnector,
    server_name: Option<ServerName<'static>>,
    fingerprint: u64,
}

impl Origination {
    fn new(settings: &ClientTlsSettings, mutual: bool, host: &str) -> Result<Origination, String> {
        if settings.credential_name.is_some() && settings.ca_certificates.is_none() {
            return Err("credentialName is not supported by sluice: give the certificates as files (caCertificates, clientCertificate, privateKey)".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = verify::server_verifier(settings, &provider)?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = if mutual {
            let (chain, key) = client_identity(settings)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("clientCertificate and privateKey do not go together: {e}"))?
        } else {
            builder.with_no_client_auth()
        };
        let server_name = match &settings.sni {
            Some(sni) => Some(
                ServerName::try_from(sni.clone())
                    .map_err(|_| format!("sni {sni:?} is not a valid server name"))?,
            ),
            None => ServerName::try_from(host.to_string())
                .ok()
                .filter(|_| !host.starts_with('*')),
        };
        let with_alpn = |alpn: &[&[u8]]| {
            let mut c = config.clone();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            TlsConnector::from(Arc::new(c))
        };
        let mut h = DefaultHasher::new();
        format!("{settings:?}{host}").hash(&mut h);
        Ok(Origination {
            http1: with_alpn(&[b"http/1.1"]),
            http2: with_alpn(&[b"h2"]),
            opaque: with_alpn(&[]),
            server_name,
            fingerprint: h.finish().max(1),
        })
    }

    /// The server name sent and verified, when there is one.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// Runs the TLS handshake on a connection to `addr`: SNI is `sni`, else
    /// the destination's host (an IP address, and no SNI, for a wildcard host).
    pub async fn connect(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        alpn: Alpn,
    ) -> io::Result<TlsStream<TcpStream>> {
        let connector = match alpn {
            Alpn::Http1 => &self.http1,
            Alpn::Http2 => &self.http2,
            Alpn::None => &self.opaque,
        };
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        connector.connect(name, stream).await
    }
}

impl std::fmt::Debug for Origination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origination")
            .field("server_name", &self.server_name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn client_identity(
    settings: &ClientTlsSettings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (Some(cert), Some(key)) = (&settings.client_certificate, &settings.private_key) else {
        return Err("MUTUAL needs clientCertificate and privateKey files".into());
    };
    let chain = certificates(cert, "clientCertificate")?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read privateKey {key}: {e}"))?;
    Ok((chain, key))
}

/// The certificates of a PEM file; an error names the field and the file.
pub(crate) fn certificates(
    path: &str,
    field: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {field} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{field} {path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The revocation lists of a PEM file.
fn revocation_lists(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read caCrl {path}: {e}"))
}

/// An upstream connection, plain or with TLS originated.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: ClientTlsMode) -> ClientTlsSettings {
        ClientTlsSettings {
            mode: Some(mode),
            ..ClientTlsSettings::default()
        }
    }

    #[test]
    fn what_each_mode_makes() {
        let missing = ClientTlsSettings {
            ca_certificates: Some("/nonexistent/ca.pem".into()),
            ..settings(ClientTlsMode::Simple)
        };
        let bad_san = ClientTlsSettings {
            subject_alt_names: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
            ..settings(ClientTlsMode::Simple)
        };
        let credential = ClientTlsSettings {
            credential_name: Some("secret".into()),
            ..settings(ClientTlsMode::Simple)
        };
        let mutual_without_files = settings(ClientTlsMode::Mutual);
        // (settings, Plain / Originate / the reason of Unavailable)
        let cases: [(Option<ClientTlsSettings>, &str); 8] = [
            (None, "plain"),
            (Some(settings(ClientTlsMode::Disable)), "plain"),
            (Some(ClientTlsSettings::default()), "plain"),
            (Some(settings(ClientTlsMode::Simple)), "originate"),
            (
                Some(settings(ClientTlsMode::IstioMutual)),
                "ISTIO_MUTUAL needs the mesh",
            ),
            (
                Some(missing),
                "cannot read caCertificates /nonexistent/ca.pem",
            ),
            (Some(bad_san), "neither a DNS name nor an IP address"),
            (Some(credential), "credentialName is not supported"),
        ];
        for (s, expected) in cases {
            let got = match Tls::of(s.as_ref(), "api.example.com") {
                Tls::Plain => "plain".to_string(),
                Tls::Originate(_) => "originate".to_string(),
                Tls::Unavailable(reason) => reason,
            };
            assert!(got.contains(expected), "{s:?}: {got}");
        }
        assert!(matches!(
            Tls::of(Some(&mutual_without_files), "a"),
            Tls::Unavailable(r) if r.contains("clientCertificate and privateKey")
        ));
    }

    #[test]
    fn settings_tell_pooled_connections_apart() {
        let simple = Tls::of(Some(&settings(ClientTlsMode::Simple)), "a.example.com");
        let other_sni = ClientTlsSettings {
            sni: Some("b.example.com".into()),
            ..settings(ClientTlsMode::Simple)
        };
        let sni = Tls::of(Some(&other_sni), "a.example.com");
        assert_eq!(Tls::Plain.fingerprint(), 0);
        assert_ne!(simple.fingerprint(), 0);
        assert_ne!(simple.fingerprint(), sni.fingerprint());
        assert_eq!(
            simple.fingerprint(),
            Tls::of(Some(&settings(ClientTlsMode::Simple)), "a.example.com").fingerprint()
        );
    }
}
