//! The gateway's TLS ports through the real `run` and a rustls client: SIMPLE TLS for two
//! hosts on one port with the certificate chosen by SNI (and TLS versions per server), the
//! host of the request held to the server the SNI chose, HTTP/2 by ALPN, MUTUAL with
//! `caCertificates`, PASSTHROUGH by SNI to a backend that terminates TLS itself, and a
//! certificate file replaced while running.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sluice_api::model::Workload;
use sluice_proxy::{Ports, Settings, admin, listener};
use support::{echo_app, free_ports};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A CA and the leaves it signs, written as PEM files into `dir`.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "edge test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            ca,
            dir: dir.to_path_buf(),
        }
    }

    /// A leaf for `name` as `name.pem` / `name-key.pem`; its DER.
    fn leaf(&self, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        let pem = self.dir.join(format!("{name}.pem"));
        let tmp = self.dir.join(format!(".{name}.pem"));
        std::fs::write(&tmp, cert.pem()).unwrap();
        std::fs::write(
            self.dir.join(format!("{name}-key.pem")),
            key.serialize_pem(),
        )
        .unwrap();
        std::fs::rename(tmp, pem).unwrap();
        let der = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
        (cert.der().clone(), der)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn client(&self, alpn: &[&[u8]], identity: Option<&str>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let mut config = match identity {
            Some(name) => {
                let (cert, key) = self.leaf(name);
                builder.with_client_auth_cert(vec![cert], key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    // TLS 1.3 reports a refused client certificate on the first read.
    tls.write_all(b"").await?;
    Ok(tls)
}

/// One HTTP/1.1 GET over `tls` with `host`: status and body.
async fn get(tls: TlsStream<TcpStream>, host: &str) -> (u16, String) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/tls")
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A TLS backend that answers any request with `passthrough` on its own certificate.
async fn tls_backend(pki: &Pki) -> SocketAddr {
    let (cert, key) = pki.leaf("pt.example.com");
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\npassthrough")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn peer_cert(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_servers_by_sni_terminate_verify_and_pass_through() {
    let dir = std::env::temp_dir().join(format!("sluice-gateway-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki::new(&dir);
    let (cert_a, _) = pki.leaf("a.example.com");
    let (cert_b, _) = pki.leaf("b.example.com");
    pki.leaf("m.example.com");
    let v1 = echo_app("127.0.0.1", "myapp", "v1").await;
    let backend = tls_backend(&pki).await;
    let [https, tls_port, mutual, admin, health, metrics] = free_ports();
    let config = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: myapp, namespace: production}}
spec:
  hosts: [myapp.production.svc.cluster.local]
  ports: [{{number: 80, name: http}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {app}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure, namespace: production}}
spec:
  hosts: [secure.production.svc.cluster.local]
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {backend}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {https}, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {a}, privateKey: {a_key}}}
  - port: {{number: {https}, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {b}, privateKey: {b_key}, minProtocolVersion: TLSV1_3}}
  - port: {{number: {tls_port}, name: tls-pt, protocol: TLS}}
    hosts: [pt.example.com]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: {mutual}, name: https-m, protocol: HTTPS}}
    hosts: [m.example.com]
    tls: {{mode: MUTUAL, serverCertificate: {m}, privateKey: {m_key}, caCertificates: {ca}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: production}}
spec:
  hosts: [a.example.com, b.example.com, m.example.com]
  gateways: [istio-system/edge]
  http: [{{route: [{{destination: {{host: myapp.production.svc.cluster.local}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure, namespace: production}}
spec:
  hosts: [pt.example.com]
  gateways: [istio-system/edge]
  tls:
  - match: [{{sniHosts: [pt.example.com]}}]
    route: [{{destination: {{host: secure.production.svc.cluster.local, port: {{number: 443}}}}}}]
"#,
        app = v1.local_addr().port(),
        backend = backend.port(),
        a = pki.path("a.example.com.pem"),
        a_key = pki.path("a.example.com-key.pem"),
        b = pki.path("b.example.com.pem"),
        b_key = pki.path("b.example.com-key.pem"),
        m = pki.path("m.example.com.pem"),
        m_key = pki.path("m.example.com-key.pem"),
        ca = pki.path("ca.pem"),
    );
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("edge.yaml"), config).unwrap();
    let settings = Settings {
        source: sluice_proxy::Source::Files(conf),
        workload: Workload {
            namespace: "istio-system".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
            cluster_domain: Default::default(),
        },
        ports: Ports {
            outbound: 0,
            inbound: 0,
            admin,
            health,
            metrics,
        },
        mode: listener::Mode::Gateway,
        ..support::settings()
    };
    let set_level: admin::SetLevel = Arc::new(|_: &str| Ok(()));
    tokio::spawn(sluice_proxy::run(settings, set_level, "info".into()));
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(at(mutual)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two hosts on one port, each with its own certificate.
    let h1 = pki.client(&[b"http/1.1"], None);
    let tls = connect(&h1, at(https), "a.example.com").await.unwrap();
    assert_eq!(peer_cert(&tls), cert_a);
    let (status, body) = get(tls, "a.example.com").await;
    assert_eq!(status, 200, "{body}");
    let seen: sluice_e2e::apps::Seen = serde_json::from_str(&body).unwrap();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    let tls = connect(&h1, at(https), "b.example.com").await.unwrap();
    assert_eq!(peer_cert(&tls), cert_b);
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3),
        "b's minProtocolVersion"
    );
    // The host must be one of the server's that the SNI chose.
    let tls = connect(&h1, at(https), "a.example.com").await.unwrap();
    assert_eq!(get(tls, "b.example.com").await.0, 404);
    assert!(
        connect(&h1, at(https), "c.example.com").await.is_err(),
        "no server for the SNI"
    );

    // HTTP/2 by ALPN.
    let h2 = pki.client(&[b"h2", b"http/1.1"], None);
    let tls = connect(&h2, at(https), "a.example.com").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            hyper::Request::get("https://a.example.com/h2")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // MUTUAL: a client certificate signed by caCertificates is required.
    let without = connect(&h1, at(mutual), "m.example.com").await;
    let refused = match without {
        Err(_) => true,
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET / HTTP/1.1\r\nhost: m.example.com\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            !matches!(tls.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused, "no client certificate, no service");
    let with = pki.client(&[b"http/1.1"], Some("client.example.com"));
    let tls = connect(&with, at(mutual), "m.example.com").await.unwrap();
    assert_eq!(get(tls, "m.example.com").await.0, 200);

    // PASSTHROUGH: the backend's own certificate and answer.
    let tls = connect(&h1, at(tls_port), "pt.example.com").await.unwrap();
    let mut tls = tls;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: pt.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer).await;
    assert!(answer.ends_with("passthrough"), "{answer}");

    // A certificate file replaced while running serves from the next connection.
    let (cert_a2, _) = pki.leaf("a.example.com");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // The key and the certificate are replaced one after the other: a handshake in
        // between may fail.
        let served = connect(&h1, at(https), "a.example.com").await;
        if served.is_ok_and(|tls| peer_cert(&tls) == cert_a2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
