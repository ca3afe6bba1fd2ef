//! TLS origination through the proxy core: a plain-text client, a rustls
//! server on loopback with rcgen-made certificates, and the DestinationRule
//! `tls` settings in between.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    IsCa, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use support::{Proxy, get, model};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const VIP: &str = "10.96.0.40:80";

/// A CA, a server certificate for `shop.example` and a client certificate,
/// as PEM files in a directory of their own.
struct Pki {
    dir: PathBuf,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("sluice-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |san: &str, serial: u64| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
            params.serial_number = Some(SerialNumber::from(serial));
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert, key)
        };
        let (server_cert, server_key) = leaf("shop.example", 7);
        let (client_cert, client_key) = leaf("client.example", 8);
        // Two revocation lists: one that revokes the server's certificate.
        for (file, revoked) in [("crl-none.pem", vec![]), ("crl-server.pem", vec![7u64])] {
            let crl = CertificateRevocationListParams {
                this_update: date_time_ymd(2020, 1, 1),
                next_update: date_time_ymd(2100, 1, 1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .into_iter()
                    .map(|serial| RevokedCertParams {
                        serial_number: SerialNumber::from(serial),
                        revocation_time: date_time_ymd(2020, 1, 1),
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&ca)
            .unwrap();
            std::fs::write(dir.join(file), crl.pem().unwrap()).unwrap();
        }
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client_cert.pem()).unwrap();
        std::fs::write(dir.join("client-key.pem"), client_key.serialize_pem()).unwrap();
        let key = PrivatePkcs8KeyDer::from(server_key.serialize_der()).into();
        Pki {
            server: (server_cert.der().clone(), key),
            ca: ca.der().clone(),
            dir,
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS server on loopback that answers HTTP/1.1 or HTTP/2 (by ALPN) with
/// what it saw of the handshake in `x-tls`: `sni=..;alpn=..;client-cert=yes|no`.
async fn tls_server(pki: &Pki) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(clients)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                let alpn = conn
                    .alpn_protocol()
                    .map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned());
                let seen = format!(
                    "sni={};alpn={alpn};client-cert={}",
                    conn.server_name().unwrap_or("none"),
                    if conn.peer_certificates().is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                );
                let h2 = alpn == "h2";
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let resp = hyper::Response::builder()
                        .header("x-tls", seen.clone())
                        .header("x-proto", format!("{:?}", req.version()))
                        .header("connection", "close")
                        .body(Full::new(Bytes::from("over tls")))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    addr
}

/// `shop.example` at [`VIP`] port 80 (`protocol`), one endpoint, and a
/// DestinationRule with this `trafficPolicy`.
fn shop(endpoint: SocketAddr, protocol: &str, policy: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: shop}}
spec:
  hosts: [shop.example]
  addresses: [10.96.0.40]
  ports: [{{number: 80, name: web, protocol: {protocol}}}]
  resolution: STATIC
  endpoints: [{{address: {}, ports: {{web: {}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: shop}}
spec:
  host: shop.example
  trafficPolicy: {policy}
"#,
        endpoint.ip(),
        endpoint.port()
    )
}

fn header<'a>(reply: &'a support::Reply, name: &str) -> &'a str {
    reply.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn simple_and_mutual_tls_are_originated_and_verified() {
    let pki = Pki::new("origination");
    let server = tls_server(&pki).await;
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem"),
    );
    let (crl_none, crl_server) = (pki.path("crl-none.pem"), pki.path("crl-server.pem"));
    // (trafficPolicy, status, x-tls the server reports or x-sluice-error)
    let cases = [
        (
            format!("{{tls: {{mode: SIMPLE, caCertificates: {ca}}}}}"),
            200,
            "sni=shop.example;alpn=http/1.1;client-cert=no",
        ),
        (
            format!(
                "{{tls: {{mode: SIMPLE, caCertificates: {ca}, sni: other.example, subjectAltNames: [nope.example, shop.example]}}}}"
            ),
            200,
            "sni=other.example;alpn=http/1.1;client-cert=no",
        ),
        (
            format!(
                "{{tls: {{mode: SIMPLE, caCertificates: {ca}, subjectAltNames: [nope.example]}}}}"
            ),
            503,
            "tls",
        ),
        ("{tls: {mode: SIMPLE}}".to_string(), 503, "tls"),
        (
            format!("{{tls: {{mode: SIMPLE, caCertificates: {ca}, caCrl: {crl_none}}}}}"),
            200,
            "sni=shop.example;alpn=http/1.1;client-cert=no",
        ),
        (
            format!("{{tls: {{mode: SIMPLE, caCertificates: {ca}, caCrl: {crl_server}}}}}"),
            503,
            "tls",
        ),
        (
            "{tls: {mode: SIMPLE, insecureSkipVerify: true}}".to_string(),
            200,
            "sni=shop.example;alpn=http/1.1;client-cert=no",
        ),
        (
            format!(
                "{{tls: {{mode: MUTUAL, caCertificates: {ca}, clientCertificate: {cert}, privateKey: {key}}}}}"
            ),
            200,
            "sni=shop.example;alpn=http/1.1;client-cert=yes",
        ),
        (
            format!(
                "{{tls: {{mode: SIMPLE, caCertificates: {ca}}}, connectionPool: {{http: {{h2UpgradePolicy: UPGRADE}}}}}}"
            ),
            200,
            "sni=shop.example;alpn=h2;client-cert=no",
        ),
        (
            "{tls: {mode: ISTIO_MUTUAL}}".to_string(),
            503,
            "tls-unavailable",
        ),
        (
            "{tls: {mode: SIMPLE, caCertificates: /nonexistent/ca.pem}}".to_string(),
            503,
            "tls-unavailable",
        ),
    ];
    for (policy, status, expected) in cases {
        let proxy = Proxy::start(model(&shop(server, "HTTP", &policy)));
        let addr = proxy.outbound(VIP).await;
        let reply = get(addr, "shop.example", "/", &[]).await;
        assert_eq!(reply.status, status, "{policy}: {}", reply.text());
        if status == 200 {
            assert_eq!(header(&reply, "x-tls"), expected, "{policy}");
            assert_eq!(reply.text(), "over tls");
        } else {
            assert_eq!(
                header(&reply, "x-sluice-error"),
                expected,
                "{policy}: {}",
                reply.text()
            );
        }
        let warnings = proxy.sidecar.store.status().warnings.join("\n");
        assert_eq!(
            warnings.contains("requests to it are answered 503"),
            expected == "tls-unavailable",
            "the config status tells: {warnings}"
        );
        if policy.contains("ISTIO_MUTUAL") {
            assert!(
                reply
                    .text()
                    .contains("ISTIO_MUTUAL needs the mesh's certificate authority"),
                "{}",
                reply.text()
            );
        }
        if policy.contains("nonexistent") {
            assert!(
                reply
                    .text()
                    .contains("cannot read caCertificates /nonexistent/ca.pem"),
                "{}",
                reply.text()
            );
        }
    }
}

#[tokio::test]
async fn opaque_tcp_is_wrapped_in_tls_too() {
    let pki = Pki::new("tcp");
    let server = tls_server(&pki).await;
    let policy = format!(
        "{{tls: {{mode: SIMPLE, caCertificates: {}}}}}",
        pki.path("ca.pem")
    );
    let proxy = Proxy::start(model(&shop(server, "TCP", &policy)));
    let mut stream = TcpStream::connect(proxy.outbound(VIP).await).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("x-tls: sni=shop.example;alpn=none;client-cert=no"),
        "{answer}"
    );
}
