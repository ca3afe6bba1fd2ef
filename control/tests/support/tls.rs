//! Test support for the webhook: certificates made with rcgen, an HTTPS client on rustls and
//! hyper, and an in-process server on a loopback port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sluice_control::InjectConfig;
use sluice_control::webhook::{self, CertStore, Injector};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A test CA that issues serving certificates for `localhost`.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { ca }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A certificate and key (PEM) for `localhost`, with `name` as common name.
    pub fn leaf(&self, name: &str) -> (String, String) {
        self.leaf_for(&["localhost"], name)
    }

    /// A certificate and key (PEM) for the DNS names `hosts`, with `name` as common name.
    pub fn leaf_for(&self, hosts: &[&str], name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let hosts = hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(hosts).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a file the way a Secret volume changes: a new file renamed over the old one.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A webhook on 127.0.0.1 serving the files in `dir`.
pub struct Server {
    pub addr: SocketAddr,
    pub pki: Pki,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub injector: Arc<Injector>,
    _watcher: notify::RecommendedWatcher,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub async fn start(dir: &Path, config: InjectConfig) -> Self {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        Self::start_with(dir, config, None).await
    }

    /// Starts with a config file that is watched like the certificate (`dir` must exist).
    pub async fn start_with(
        dir: &Path,
        config: InjectConfig,
        config_path: Option<PathBuf>,
    ) -> Self {
        let pki = Pki::new();
        let (cert_pem, key_pem) = pki.leaf("first");
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let store = CertStore::load(&cert, &key).unwrap();
        let injector = Arc::new(Injector::new(config, config_path, Some(store)));
        let watcher = webhook::watch(injector.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let injector = injector.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                webhook::serve(listener, injector, shutdown).await.unwrap();
            }
        });
        Self {
            addr,
            pki,
            cert,
            key,
            injector,
            _watcher: watcher,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self, http2: bool) -> Client {
        Client::connect(self.addr, &self.pki.ca_pem(), http2)
            .await
            .unwrap()
    }

    /// Stops accepting and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One keep-alive HTTPS connection, verified against the test CA.
pub struct Client {
    sender: Sender,
    /// The certificate the server presented.
    pub server_cert: CertificateDer<'static>,
}

/// A TLS connection to `addr` verified against `ca_pem`, offering `alpn`.
pub async fn tls_stream(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?)
}

impl Client {
    pub async fn connect(addr: SocketAddr, ca_pem: &str, http2: bool) -> anyhow::Result<Self> {
        let alpn: &[u8] = if http2 { b"h2" } else { b"http/1.1" };
        let tls = tls_stream(addr, ca_pem, alpn).await?;
        let server_cert = tls.get_ref().1.peer_certificates().unwrap_or_default()[0].clone();
        let io = hyper_util::rt::TokioIo::new(tls);
        let sender = if http2 {
            let executor = hyper_util::rt::TokioExecutor::new();
            let (sender, conn) = hyper::client::conn::http2::handshake(executor, io).await?;
            tokio::spawn(conn);
            Sender::Http2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Sender::Http1(sender)
        };
        Ok(Self {
            sender,
            server_cert,
        })
    }

    /// Sends one request; returns the status and the body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }
}
