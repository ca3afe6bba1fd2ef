//! A proxy core on loopback for routing tests: the real listener and request
//! path, with the original destination given by a table instead of iptables.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_api::model::{Model, Workload};
use sluice_api::{load_str, validate};
use sluice_proxy::config::Store;
use sluice_proxy::metrics::Metrics;
use sluice_proxy::{Identity, Ports, Sidecar, drain, listener};
use tokio::net::{TcpListener, TcpStream};

/// Compiles YAML for a workload in namespace `default`.
pub fn model(yaml: &str) -> Model {
    let mut set = load_str("test.yaml", yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:#?}", set.errors().collect::<Vec<_>>());
    Model::compile(
        &set.resources,
        &Workload {
            namespace: "default".into(),
            labels: [("app".into(), "client".into())].into(),
            cluster_domain: Default::default(),
        },
    )
}

/// A running proxy core.
pub struct Proxy {
    pub sidecar: Arc<Sidecar>,
    routes: Arc<Mutex<HashMap<u16, SocketAddr>>>,
    drain: Option<drain::Signal>,
    watch: drain::Watch,
}

impl Proxy {
    /// Starts a core serving `model`.
    pub fn start(model: Model) -> Proxy {
        let metrics = Arc::new(Metrics::new(false));
        let store = Arc::new(Store::with_model(model, metrics.config.clone()));
        Proxy::serving(store, metrics)
    }

    /// Starts a core serving what `store` holds, as it changes (`metrics.config` is the
    /// store's).
    pub fn serving(store: Arc<Store>, metrics: Arc<Metrics>) -> Proxy {
        Proxy::serving_with(store, metrics, |_| {})
    }

    /// Starts a core serving `model`, its sidecar changed by `configure` first.
    pub fn start_with(model: Model, configure: impl FnOnce(&mut Sidecar)) -> Proxy {
        let metrics = Arc::new(Metrics::new(false));
        let store = Arc::new(Store::with_model(model, metrics.config.clone()));
        Proxy::serving_with(store, metrics, configure)
    }

    fn serving_with(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        configure: impl FnOnce(&mut Sidecar),
    ) -> Proxy {
        let routes: Arc<Mutex<HashMap<u16, SocketAddr>>> = Arc::default();
        let table = routes.clone();
        let orig_dst = move |s: &TcpStream| {
            let port = s.local_addr()?.port();
            table
                .lock()
                .unwrap()
                .get(&port)
                .copied()
                .ok_or_else(|| std::io::Error::other("no original destination"))
        };
        let identity = Identity::of(&Workload {
            namespace: "default".into(),
            labels: [("app".into(), "client".into())].into(),
            cluster_domain: Default::default(),
        });
        let mut sidecar = Sidecar::new(
            store,
            Arc::new(orig_dst),
            metrics,
            identity,
            Ports::default(),
        );
        configure(&mut sidecar);
        let sidecar = Arc::new(sidecar);
        let (signal, watch) = drain::channel();
        Proxy {
            sidecar,
            routes,
            drain: Some(signal),
            watch,
        }
    }

    /// A listener address whose connections "were going to" `dst`, outbound.
    pub async fn outbound(&self, dst: &str) -> SocketAddr {
        self.listen(dst, false).await
    }

    /// A listener address whose connections "were going to" `dst`, inbound.
    pub async fn inbound(&self, dst: &str) -> SocketAddr {
        self.listen(dst, true).await
    }

    async fn listen(&self, dst: &str, inbound: bool) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        self.routes
            .lock()
            .unwrap()
            .insert(addr.port(), dst.parse().unwrap());
        let sidecar = self.sidecar.clone();
        let gates = sidecar.gates.clone();
        tokio::spawn(listener::serve(
            vec![l],
            self.watch.clone(),
            gates,
            move |stream, peer, drain| {
                let sidecar = sidecar.clone();
                async move {
                    if inbound {
                        listener::inbound::handle(sidecar, stream, peer, drain).await
                    } else {
                        listener::outbound::handle(sidecar, stream, peer, drain).await
                    }
                }
            },
        ));
        addr
    }

    /// Starts draining; resolves when done or after `deadline`.
    pub async fn drain(&mut self, deadline: Duration) -> bool {
        let signal = self.drain.take().unwrap();
        let (_, watch) = drain::channel();
        drop(std::mem::replace(&mut self.watch, watch));
        signal.drain(deadline).await
    }
}

/// A reply as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The echo app's account of the request.
    pub fn seen(&self) -> sluice_e2e::apps::Seen {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `x-app` header (`name-version`).
    pub fn app(&self) -> &str {
        self.headers
            .get("x-app")
            .map_or("", |v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 GET on a fresh connection.
pub async fn get(addr: SocketAddr, authority: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", authority, path, headers).await
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// An HTTP/2 (prior knowledge) connection through the proxy.
pub async fn h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// One request on an HTTP/2 connection.
pub async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    uri: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// The echo app on `ip`, port chosen by the kernel.
pub async fn echo_app(ip: &str, name: &str, version: &str) -> sluice_e2e::apps::HttpServer {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    sluice_e2e::apps::serve_http(l, sluice_e2e::apps::AppId::new(name, version)).unwrap()
}

/// Waits until `ready` holds; fails the test naming `what` after 10 seconds.
pub async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `N` distinct free ports: the listeners are held until all are chosen, since a port
/// released at once may be handed out again by the next bind to port 0.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Settings of a proxy run by a test, to be completed with its `source`, `workload` and
/// `ports`: a sidecar with a 5 s drain, no access log and every limit at its default.
pub fn settings() -> sluice_proxy::Settings {
    sluice_proxy::Settings {
        source: sluice_proxy::Source::Files(std::path::PathBuf::new()),
        workload: Workload::default(),
        ports: sluice_proxy::Ports::default(),
        drain_timeout: Duration::from_secs(5),
        access_log: false,
        pod_name: None,
        app_probes: Default::default(),
        mode: Default::default(),
        tproxy_mark: sluice_proxy::listener::DEFAULT_TPROXY_MARK,
        gateway: Default::default(),
        app_loopback_ports: Vec::new(),
        limits: Default::default(),
    }
}
