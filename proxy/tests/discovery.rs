//! The discovery stream end to end in one process: the control plane's server
//! (`sluice_control::discovery::stream`) fed by a test publisher, the proxy library
//! following it over TLS and plain text, and requests routed through the proxy's outbound
//! listener to real apps.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sluice_api::model::Workload;
use sluice_api::{Resource, load_str};
use sluice_control::discovery::state::{self, ClusterConfig, Publisher};
use sluice_control::discovery::stream::{self, Discovery};
use sluice_control::discovery::{self as cluster};
use sluice_control::webhook::CertStore;
use sluice_proxy::config::Store;
use sluice_proxy::config::discovery::{self, Hello, Target};
use sluice_proxy::metrics::Metrics;
use sluice_proxy::{Ports, Settings, Source, admin};
use support::{Proxy, echo_app, free_ports, get, until};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const VIP: &str = "10.96.0.10:80";
const HOST: &str = "catalog.default.svc.cluster.local";

/// The catalog service with two versions, `extra` Kubernetes-style objects after it.
fn catalog(v1: SocketAddr, v2: SocketAddr, extra: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: default}}
spec:
  hosts: [catalog.default.svc.cluster.local]
  addresses: [10.96.0.10]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v1}}}}
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: catalog, namespace: default}}
spec:
  host: catalog.default.svc.cluster.local
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
{extra}"#,
        v1.ip(),
        v1.port(),
        v2.ip(),
        v2.port()
    )
}

/// A VirtualService in `namespace`, exported to `export_to`, sending catalog to `subset`.
fn route_to(subset: &str, namespace: &str, export_to: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: catalog-route, namespace: {namespace}}}\nspec:\n  hosts: [{HOST}]\n  exportTo: [{export_to}]\n  http:\n  - route: [{{destination: {{host: {HOST}, subset: {subset}}}}}]\n"
    )
}

const EXTRA: &str = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: extra, namespace: default}\nspec:\n  hosts: [extra.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: DNS\n";

/// Resources as discovery makes them from Kubernetes objects: each origin names its object.
fn objects(yaml: &str) -> Vec<Resource> {
    let set = load_str("cluster.yaml", yaml);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    set.resources
        .into_iter()
        .map(|mut r| {
            r.origin = cluster::origin(r.spec.kind(), r.meta.namespace(), &r.meta.name);
            r
        })
        .collect()
}

/// A test CA and a serving certificate for `localhost`, as files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("sluice-discovery-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, leaf.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }
}

/// The control plane's discovery stream on a loopback port, fed by the test.
struct Control {
    addr: SocketAddr,
    publisher: Publisher,
    discovery: Arc<Discovery>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), rustls::Error>>>,
}

impl Control {
    /// Serves on `addr` (port 0: any), over TLS with the certificate of `pki` if given.
    async fn start(addr: &str, pki: Option<&Pki>) -> Control {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (publisher, subscriber) = state::channel();
        let discovery = Discovery::new(subscriber);
        let certs = pki.map(|p| Arc::new(CertStore::load(&p.cert, &p.key).unwrap()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(stream::serve(listener, discovery.clone(), certs, async {
            let _ = stopped.await;
        }));
        Control {
            addr,
            publisher,
            discovery,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Publishes the next version: `yaml` as objects, `more` after them.
    fn publish(&self, yaml: &str, more: Vec<Resource>) -> u64 {
        let version = self.publisher.borrow().version + 1;
        self.publish_as(version, yaml, more)
    }

    /// Publishes `yaml` as objects, `more` after them, as `version`.
    fn publish_as(&self, version: u64, yaml: &str, more: Vec<Resource>) -> u64 {
        let mut resources = objects(yaml);
        resources.extend(more);
        self.publisher.send_replace(Arc::new(ClusterConfig {
            version,
            resources: resources.into_iter().map(Arc::new).collect(),
            rejected: Vec::new(),
        }));
        version
    }

    /// `GET /v1/proxies` (plain text only).
    async fn proxies(&self) -> serde_json::Value {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/v1/proxies")
            .header("host", "control")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let body = sender.send_request(req).await.unwrap().into_body();
        serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap()
    }

    /// Waits until the one connected proxy's status satisfies `ok`.
    async fn until_proxy(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.proxies().await;
            if list.as_array().is_some_and(|l| l.len() == 1 && ok(&l[0])) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never: {what}; last {list}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops serving and ends every stream, as a killed replica does.
    async fn kill(mut self) -> SocketAddr {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self.addr
    }
}

fn client_workload(namespace: &str) -> Workload {
    Workload {
        namespace: namespace.into(),
        labels: [("app".into(), "client".into())].into(),
        cluster_domain: Default::default(),
    }
}

/// A proxy core following `target` as a pod of `namespace`.
fn follower(target: Target, namespace: &str) -> (Proxy, JoinHandle<()>) {
    let metrics = Arc::new(Metrics::new(false));
    let store = Arc::new(Store::new(metrics.config.clone()));
    let workload = client_workload(namespace);
    let hello = Hello {
        namespace: namespace.into(),
        pod_name: format!("client-{namespace}"),
        labels: workload.labels.clone(),
        pod_ip: Some("127.0.0.9".into()),
        service_account: Some("client".into()),
    };
    let following = tokio::spawn(discovery::follow(target, hello, workload, store.clone()));
    (Proxy::serving(store, metrics), following)
}

async fn until_version(proxy: &Proxy, version: u64) {
    let store = &proxy.sidecar.store;
    until(&format!("version {version} in force"), || {
        store.status().discovery_version == Some(version)
    })
    .await;
}

/// The apps that answered `n` requests for catalog.
async fn answers(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut apps = Vec::new();
    for _ in 0..n {
        let reply = get(addr, HOST, "/", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        apps.push(reply.app().to_string());
    }
    apps.sort();
    apps.dedup();
    apps
}

async fn follows_changes(pki: Option<&Pki>) {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let (v1, v2) = (v1.local_addr(), v2.local_addr());
    let control = Control::start("127.0.0.1:0", pki).await;
    let target = match pki {
        Some(pki) => Target::new(
            &format!("https://localhost:{}", control.addr.port()),
            Some(&pki.ca),
        ),
        None => Target::new(&format!("http://{}", control.addr), None),
    }
    .unwrap();
    let (proxy, _following) = follower(target, "default");
    let addr = proxy.outbound(VIP).await;

    let first = control.publish(
        &(catalog(v1, v2, EXTRA) + &route_to("v1", "default", "\"*\"")),
        vec![],
    );
    until_version(&proxy, first).await;
    assert_eq!(answers(addr, 4).await, ["catalog-v1"]);
    let model = proxy.sidecar.store.current().unwrap().model.clone();
    assert!(model.registry.by_host("extra.example.com").is_some());

    let second = control.publish(
        &(catalog(v1, v2, EXTRA) + &route_to("v2", "default", "\"*\"")),
        vec![],
    );
    until_version(&proxy, second).await;
    assert_eq!(
        answers(addr, 4).await,
        ["catalog-v2"],
        "the changed route is live"
    );

    let third = control.publish(&catalog(v1, v2, ""), vec![]);
    until_version(&proxy, third).await;
    assert_eq!(
        answers(addr, 6).await,
        ["catalog-v1", "catalog-v2"],
        "without its VirtualService, catalog is balanced over both versions"
    );
    let model = proxy.sidecar.store.current().unwrap().model.clone();
    assert!(
        model.registry.by_host("extra.example.com").is_none(),
        "removed"
    );
    control.kill().await;
}

#[tokio::test]
async fn full_state_then_changes_route_live_over_tls() {
    follows_changes(Some(&Pki::new("follow"))).await;
}

#[tokio::test]
async fn full_state_then_changes_route_live_over_plain_text() {
    follows_changes(None).await;
}

#[tokio::test]
async fn a_rotated_ca_is_trusted_on_the_next_connection_without_a_restart() {
    let (old, new) = (Pki::new("ca-old"), Pki::new("ca-new"));
    let control = Control::start("127.0.0.1:0", Some(&new)).await;
    let ca = old.ca.with_file_name("discovery-ca.pem");
    std::fs::copy(&old.ca, &ca).unwrap();
    let url = format!("https://localhost:{}", control.addr.port());
    let target = Target::new(&url, Some(&ca)).unwrap();
    let refused = target.connect().await.unwrap_err();
    assert!(refused.contains("TLS handshake failed"), "{refused}");

    // The CA ConfigMap's file is replaced: the same target trusts the new CA.
    std::fs::copy(&new.ca, &ca).unwrap();
    target.connect().await.expect("the rotated CA is trusted");

    // A file that is no CA keeps the last good one.
    std::fs::write(&ca, "not a certificate").unwrap();
    target.connect().await.expect("the last good CA stays");
    control.kill().await;
}

#[tokio::test]
async fn a_proxy_gets_only_what_its_namespace_sees() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let control = Control::start("127.0.0.1:0", None).await;
    let target = Target::new(&format!("http://{}", control.addr), None).unwrap();
    let (in_a, _a) = follower(target.clone(), "a");
    let (in_b, _b) = follower(target, "b");
    let yaml = catalog(v1.local_addr(), v2.local_addr(), "") + &route_to("v2", "shop", "b");
    let version = control.publish(&yaml, vec![]);
    until_version(&in_a, version).await;
    until_version(&in_b, version).await;
    assert_eq!(answers(in_b.outbound(VIP).await, 4).await, ["catalog-v2"]);
    assert_eq!(
        answers(in_a.outbound(VIP).await, 6).await,
        ["catalog-v1", "catalog-v2"]
    );
}

#[tokio::test]
async fn a_version_the_proxy_cannot_load_is_nacked_and_the_old_routes_stay() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let (v1, v2) = (v1.local_addr(), v2.local_addr());
    let control = Control::start("127.0.0.1:0", None).await;
    let target = Target::new(&format!("http://{}", control.addr), None).unwrap();
    let (proxy, _following) = follower(target, "default");
    let addr = proxy.outbound(VIP).await;
    let good = catalog(v1, v2, &route_to("v1", "default", "\"*\""));
    let first = control.publish(&good, vec![]);
    until_version(&proxy, first).await;
    control
        .until_proxy("version 1 acked", |p| p["versionAcked"] == first)
        .await;

    // A resource without a name: the proxy's strict loader refuses it.
    let mut nameless = objects(&route_to("v2", "default", "\"*\"")).remove(0);
    nameless.meta.name.clear();
    nameless.origin = cluster::origin("VirtualService", "default", "broken");
    let bad = control.publish(&good, vec![nameless]);
    control
        .until_proxy("the bad version nacked", |p| {
            p["lastNack"]["version"] == bad
        })
        .await;
    let status = control.proxies().await;
    let error = status[0]["lastNack"]["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("kubernetes VirtualService default/broken"),
        "{error}"
    );
    assert!(error.contains("metadata.name"), "{error}");
    assert_eq!(status[0]["versionAcked"], first);
    assert_eq!(status[0]["podName"], "client-default");
    assert_eq!(status[0]["namespace"], "default");
    assert_eq!(status[0]["labels"]["app"], "client");
    assert!(
        proxy
            .sidecar
            .store
            .status()
            .last_error
            .unwrap()
            .contains("metadata.name")
    );
    assert_eq!(
        answers(addr, 4).await,
        ["catalog-v1"],
        "the old routes stay"
    );
    let metrics = control.discovery.metrics().encode();
    assert!(
        metrics.contains("sluice_discovery_nacks_total 1"),
        "{metrics}"
    );

    let fixed = control.publish(
        &catalog(v1, v2, &route_to("v2", "default", "\"*\"")),
        vec![],
    );
    control
        .until_proxy("the fix acked", |p| {
            p["versionAcked"] == fixed && p["lastNack"].is_null()
        })
        .await;
    assert_eq!(answers(addr, 4).await, ["catalog-v2"]);
}

#[tokio::test]
async fn a_lost_control_plane_changes_nothing_and_its_successor_is_followed() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let (v1, v2) = (v1.local_addr(), v2.local_addr());
    let control = Control::start("127.0.0.1:0", None).await;
    let target = Target::new(&format!("http://{}", control.addr), None).unwrap();
    let (proxy, _following) = follower(target, "default");
    let addr = proxy.outbound(VIP).await;
    let first = control.publish(
        &catalog(v1, v2, &route_to("v1", "default", "\"*\"")),
        vec![],
    );
    until_version(&proxy, first).await;

    let at = control.kill().await;
    assert_eq!(
        answers(addr, 4).await,
        ["catalog-v1"],
        "routing goes on without the control plane"
    );

    // Another replica at the same address, with what changed meanwhile.
    let successor = Control::start(&at.to_string(), None).await;
    // Replicas count versions on their own: the successor's differs from its predecessor's.
    let changed = successor.publish_as(
        7,
        &catalog(v1, v2, &route_to("v2", "default", "\"*\"")),
        vec![],
    );
    until_version(&proxy, changed).await;
    assert_eq!(answers(addr, 4).await, ["catalog-v2"]);
    successor
        .until_proxy("reconnected and acked", |p| p["versionAcked"] == changed)
        .await;
}

/// The status of `GET /healthz/ready` on `port`.
async fn readiness(port: u16) -> Option<u16> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let req = http::Request::get("/healthz/ready")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Some(sender.send_request(req).await.ok()?.status().as_u16())
}

async fn until_ready(port: u16, status: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = readiness(port).await;
        if got == Some(status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never {status}; last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn readiness_waits_for_the_first_version_only() {
    let control = Control::start("127.0.0.1:0", None).await;
    let [outbound, inbound, admin, health, metrics] = free_ports();
    let ports = Ports {
        outbound,
        inbound,
        admin,
        health,
        metrics,
    };
    let settings = Settings {
        source: Source::Discovery {
            target: Target::new(&format!("http://{}", control.addr), None).unwrap(),
            hello: Hello {
                namespace: "default".into(),
                pod_name: "web-0".into(),
                ..Hello::default()
            },
        },
        workload: client_workload("default"),
        ports,
        pod_name: Some("web-0".into()),
        ..support::settings()
    };
    let set_level: admin::SetLevel = Arc::new(|_: &str| Ok(()));
    let running = tokio::spawn(sluice_proxy::run(settings, set_level, "info".into()));
    control
        .until_proxy("the proxy connected", |p| p["podName"] == "web-0")
        .await;
    assert_eq!(
        readiness(ports.health).await,
        Some(503),
        "connected, no version yet"
    );

    let version = control.publish(
        &catalog(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.2:1".parse().unwrap(),
            "",
        ),
        vec![],
    );
    control
        .until_proxy("the first version acked", |p| p["versionAcked"] == version)
        .await;
    until_ready(ports.health, 200).await;
    control.kill().await;
    assert_eq!(
        readiness(ports.health).await,
        Some(200),
        "a lost control plane changes nothing"
    );
    running.abort();
}

/// The Gateway and the VirtualService bound to it that send the edge's `shop.example.com`
/// on `port` to catalog's `subset`.
fn edge_route(port: u16, subset: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: istio-system}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: shop, namespace: default}}\nspec:\n  hosts: [shop.example.com]\n  gateways: [istio-system/edge]\n  http:\n  - route: [{{destination: {{host: {HOST}, subset: {subset}}}}}]\n"
    )
}

#[tokio::test]
async fn a_gateway_serves_what_the_control_plane_streams() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let (v1, v2) = (v1.local_addr(), v2.local_addr());
    let control = Control::start("127.0.0.1:0", None).await;
    let [edge, admin, health, metrics] = free_ports();
    let labels: std::collections::BTreeMap<String, String> =
        [("istio".to_string(), "ingressgateway".to_string())].into();
    let settings = Settings {
        source: Source::Discovery {
            target: Target::new(&format!("http://{}", control.addr), None).unwrap(),
            hello: Hello {
                namespace: "istio-system".into(),
                pod_name: "ingressgateway-0".into(),
                labels: labels.clone(),
                ..Hello::default()
            },
        },
        workload: Workload {
            namespace: "istio-system".into(),
            labels,
            cluster_domain: Default::default(),
        },
        ports: Ports {
            outbound: 0,
            inbound: 0,
            admin,
            health,
            metrics,
        },
        pod_name: Some("ingressgateway-0".into()),
        mode: sluice_proxy::listener::Mode::Gateway,
        ..support::settings()
    };
    let set_level: admin::SetLevel = Arc::new(|_: &str| Ok(()));
    tokio::spawn(sluice_proxy::run(settings, set_level, "info".into()));
    let edge_addr = SocketAddr::from(([127, 0, 0, 1], edge));

    let answered_by = |subset: &'static str| async move {
        until(&format!("the edge answers from {subset}"), || {
            std::net::TcpStream::connect(edge_addr).is_ok()
        })
        .await;
        let reply = get(edge_addr, "shop.example.com", "/", &[]).await;
        (reply.status, reply.app().to_string())
    };
    let version = control.publish(&catalog(v1, v2, &edge_route(edge, "v1")), vec![]);
    control
        .until_proxy("the gateway acked", |p| p["versionAcked"] == version)
        .await;
    assert_eq!(answered_by("v1").await, (200, "catalog-v1".to_string()));
    // A change streamed later moves the edge's traffic.
    let version = control.publish(&catalog(v1, v2, &edge_route(edge, "v2")), vec![]);
    control
        .until_proxy("the change acked", |p| p["versionAcked"] == version)
        .await;
    assert_eq!(answered_by("v2").await, (200, "catalog-v2".to_string()));
    assert_eq!(
        get(edge_addr, "other.example.com", "/", &[]).await.status,
        404,
        "a host no VirtualService of the Gateway serves"
    );
}
