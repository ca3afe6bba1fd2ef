//! Routing through the proxy core on loopback: real listener, real sockets,
//! real upstream apps; the original destination comes from a table.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Proxy, echo_app, get, h2, h2_get, model, request, until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const VIP: &str = "10.96.0.10:80";

fn catalog(v1: SocketAddr, v2: SocketAddr, extra: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {{name: catalog}}
spec:
  hosts: [catalog]
  addresses: [10.96.0.10]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v1}}}}
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: catalog}}
spec:
  host: catalog
  subsets:
  - {{name: version-v1, labels: {{version: v1}}}}
  - {{name: version-v2, labels: {{version: v2}}}}
{extra}"#,
        v1.ip(),
        v1.port(),
        v2.ip(),
        v2.port()
    )
}

const HEADER_ROUTING: &str = r#"---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  gateways: [mesh]
  http:
  - match: [{headers: {x-istio-cohort: {exact: "internal"}}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{uri: {prefix: /missing}}]
    route: [{destination: {host: catalog, subset: version-v3}}]
  - match: [{uri: {prefix: /slow}}]
    timeout: 200ms
    route: [{destination: {host: catalog, subset: version-v1}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: catalog, subset: version-v1}}]
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: catalog, subset: version-v1}, weight: 90}
    - {destination: {host: catalog, subset: version-v2}, weight: 10}
  - route: [{destination: {host: catalog, subset: version-v1}}]
"#;

#[tokio::test]
async fn header_routing_errors_timeouts_and_faults() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let proxy = Proxy::start(model(&catalog(
        v1.local_addr(),
        v2.local_addr(),
        HEADER_ROUTING,
    )));
    let addr = proxy.outbound(VIP).await;

    let reply = get(addr, "catalog", "/", &[("x-istio-cohort", "internal")]).await;
    assert_eq!(reply.app(), "catalog-v2");
    assert_eq!(
        reply.seen().authority.as_deref(),
        Some("catalog"),
        "the app sees the client's authority"
    );
    assert_eq!(
        get(addr, "catalog.default:80", "/", &[]).await.app(),
        "catalog-v1"
    );

    let missing = get(addr, "catalog", "/missing", &[]).await;
    assert_eq!(missing.status, 503);
    assert!(
        missing.text().contains("\"version-v3\""),
        "{}",
        missing.text()
    );

    let slow = get(addr, "catalog", "/slow", &[("x-echo-delay-ms", "2000")]).await;
    assert_eq!(slow.status, 504, "{}", slow.text());

    assert_eq!(get(addr, "catalog", "/abort", &[]).await.status, 418);

    let metrics = proxy.sidecar.metrics.encode();
    assert!(
        metrics.contains(
            r#"destination_subset="version-v2",destination_version="v2",response_code="200"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn weights_apply_per_request_on_one_http2_connection() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let proxy = Proxy::start(model(&catalog(
        v1.local_addr(),
        v2.local_addr(),
        HEADER_ROUTING,
    )));
    let mut conn = h2(proxy.outbound(VIP).await).await;
    let mut v2_count = 0;
    for i in 0..100 {
        let reply = h2_get(&mut conn, "http://catalog/split", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.seen().proto,
            "HTTP/1.1",
            "the port is declared `http`: HTTP/1.1 upstream"
        );
        if reply.app() == "catalog-v2" {
            v2_count += 1;
        }
        if i == 9 {
            assert_eq!(v2_count, 1, "smooth weights: one in the first ten");
        }
    }
    assert_eq!(v2_count, 10);
}

/// A Kubernetes headless Service as discovery translates it: resolution NONE with its Pods
/// as endpoints (a shape `validate` refuses in hand-written config, hence no validation).
fn headless(v1: SocketAddr, v2: SocketAddr) -> sluice_api::model::Model {
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: default}}
spec:
  hosts: [catalog.default.svc.cluster.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: NONE
  location: MESH_INTERNAL
  endpoints:
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v1}}}}
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v2}}}}
"#,
        v1.ip(),
        v1.port(),
        v2.ip(),
        v2.port()
    );
    let set = sluice_api::load_str("headless.yaml", &yaml);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let workload = sluice_api::model::Workload {
        namespace: "default".into(),
        ..Default::default()
    };
    sluice_api::model::Model::compile(&set.resources, &workload)
}

#[tokio::test]
async fn a_headless_service_forwards_to_the_pod_the_app_dialled() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let proxy = Proxy::start(headless(v1.local_addr(), v2.local_addr()));
    for (pod, app) in [
        (v1.local_addr(), "catalog-v1"),
        (v2.local_addr(), "catalog-v2"),
    ] {
        let addr = proxy.outbound(&pod.to_string()).await;
        for _ in 0..4 {
            let reply = get(addr, "catalog-0.catalog", "/", &[]).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.app(), app, "never balanced to the other Pod");
        }
    }
    let metrics = proxy.sidecar.metrics.encode();
    assert!(
        metrics.contains(r#"destination_version="v2",response_code="200"} 4"#),
        "the Pod's labels still name the version: {metrics}"
    );
}

#[tokio::test]
async fn unknown_destinations_follow_the_outbound_policy() {
    let outside = echo_app("127.0.0.3", "outside", "v1").await;
    let dst = outside.local_addr().to_string();
    for (mode, expected) in [("ALLOW_ANY", 200), ("REGISTRY_ONLY", 502)] {
        let yaml = format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  outboundTrafficPolicy: {{mode: {mode}}}\n"
        );
        let proxy = Proxy::start(model(&yaml));
        let addr = proxy.outbound(&dst).await;
        let reply = get(addr, "outside", "/", &[]).await;
        assert_eq!(reply.status, expected, "{mode}: {}", reply.text());
        // One fixed label for every unknown destination, never its address.
        let metrics = proxy.sidecar.metrics.encode();
        let label = if expected == 200 {
            "PassthroughCluster"
        } else {
            "BlackHoleCluster"
        };
        assert!(
            metrics.contains(&format!("destination_service=\"{label}\"")),
            "{metrics}"
        );
        assert!(!metrics.contains("127.0.0.3"), "{metrics}");
        if expected == 502 {
            assert!(reply.text().contains("REGISTRY_ONLY"), "{}", reply.text());
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"\x00binary").await.unwrap();
            let mut buf = [0; 8];
            assert_eq!(tcp.read(&mut buf).await.unwrap_or(0), 0, "TCP is closed");
            let metrics = proxy.sidecar.metrics.encode();
            assert!(
                metrics.contains(r#"sluice_unknown_destination_refused_total{protocol="http"} 1"#),
                "{metrics}"
            );
            assert!(
                metrics.contains(r#"sluice_unknown_destination_refused_total{protocol="tcp"} 1"#),
                "{metrics}"
            );
        }
    }
}

#[tokio::test]
async fn server_first_protocol_on_an_undeclared_port_has_no_added_delay() {
    let banner = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = banner.local_addr().unwrap().port();
    let _app = sluice_e2e::apps::serve_banner(banner, "mx").unwrap();
    let yaml = format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {{name: mesh}}
spec: {{protocolDetectionTimeout: 5s}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: mail}}
spec:
  hosts: [mail]
  addresses: [10.96.0.25]
  ports: [{{number: 25, name: smtp}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{smtp: {port}}}}}]
"#
    );
    let proxy = Proxy::start(model(&yaml));
    let addr = proxy.outbound("10.96.0.25:25").await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut greeting = vec![0; 64];
    let n = stream.read(&mut greeting).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(
        &greeting[..n],
        sluice_e2e::apps::banner::greeting("mx").as_bytes()
    );
    assert!(
        waited < Duration::from_millis(500),
        "banner after {waited:?}; the detection timeout is 5s"
    );
    stream.write_all(b"hello\r\n").await.unwrap();
    let n = stream.read(&mut greeting).await.unwrap();
    assert_eq!(&greeting[..n], b"mx: hello\r\n");
}

#[tokio::test]
async fn mirrors_get_a_shadow_copy_and_a_hanging_mirror_changes_nothing() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let mirror = r#"---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - route: [{destination: {host: catalog, subset: version-v1}, weight: 100}]
    mirror: {host: catalog, subset: version-v2}
    mirrorPercent: 100
"#;
    let proxy = Proxy::start(model(&catalog(v1.local_addr(), v2.local_addr(), mirror)));
    let addr = proxy.outbound(VIP).await;
    for i in 0..5 {
        let reply = get(addr, "catalog:80", &format!("/m{i}"), &[]).await;
        assert_eq!(reply.app(), "catalog-v1");
    }
    until("v2 saw 5 shadow copies", || v2.log().seen().len() >= 5).await;
    let shadows = v2.log().seen();
    assert_eq!(shadows.len(), 5, "{shadows:?}");
    assert!(
        shadows
            .iter()
            .all(|s| s.authority.as_deref() == Some("catalog-shadow:80")),
        "{shadows:?}"
    );

    // A mirror that reads each copy's request head and never answers.
    let hole = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let copies = Arc::new(AtomicUsize::new(0));
    let counted = copies.clone();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = hole.accept().await {
            let counted = counted.clone();
            held.push(tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        counted.fetch_add(1, Ordering::SeqCst);
                        head.clear();
                    }
                }
                std::future::pending::<()>().await;
                drop(s);
            }));
        }
    });
    let proxy = Proxy::start(model(&catalog(v1.local_addr(), hole_addr, mirror)));
    let addr = proxy.outbound(VIP).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(get(addr, "catalog", "/", &[]).await.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    until("the hanging mirror received all 5 copies", || {
        copies.load(Ordering::SeqCst) == 5
    })
    .await;
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_endpoint() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let closed = TcpListener::bind("127.0.0.2:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(model(&catalog(closed, v1.local_addr(), "")));
    let addr = proxy.outbound(VIP).await;
    for _ in 0..6 {
        let reply = get(addr, "catalog", "/", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

#[tokio::test]
async fn inbound_reaches_apps_on_the_pod_address_and_loopback_only_where_asked() {
    let on_loopback = echo_app("127.0.0.1", "app", "lo").await;
    let on_pod_ip = echo_app("127.0.0.7", "app", "pod").await;
    let asked = echo_app("127.0.0.1", "app", "asked").await;
    let asked_port = asked.local_addr().port();
    let proxy = Proxy::start_with(model(""), |s| s.app_loopback_ports = vec![asked_port]);
    // 127.0.0.9 stands for the pod IP where nothing listens: an app on loopback only is not
    // reached, and the answer names no address.
    let lo = proxy
        .inbound(&format!("127.0.0.9:{}", on_loopback.local_addr().port()))
        .await;
    let reply = get(lo, "app", "/in", &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(!reply.text().contains("127.0.0"), "{}", reply.text());
    // Its port named for loopback delivery: reached.
    let named = proxy.inbound(&format!("127.0.0.9:{asked_port}")).await;
    assert_eq!(get(named, "app", "/in", &[]).await.app(), "app-asked");
    let pod = proxy.inbound(&on_pod_ip.local_addr().to_string()).await;
    let reply = get(pod, "app", "/in", &[]).await;
    assert_eq!(reply.app(), "app-pod", "{} {}", reply.status, reply.text());
    let metrics = proxy.sidecar.metrics.encode();
    assert!(
        metrics.contains(r#"sluice_requests_total{direction="inbound""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn draining_finishes_in_flight_requests() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let mut proxy = Proxy::start(model(&catalog(v1.local_addr(), v1.local_addr(), "")));
    let addr = proxy.outbound(VIP).await;
    let slow =
        tokio::spawn(async move { get(addr, "catalog", "/", &[("x-echo-delay-ms", "300")]).await });
    until("the slow request reached the app", || {
        !v1.log().seen().is_empty()
    })
    .await;
    assert!(proxy.drain(Duration::from_secs(5)).await, "drained in time");
    assert_eq!(slow.await.unwrap().status, 200);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

/// A server that switches to an echo protocol on any `Upgrade`, naming it in its `101`, and
/// answers 200 otherwise.
async fn upgrade_server() -> SocketAddr {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(
                |mut req: hyper::Request<hyper::body::Incoming>| async move {
                    let Some(protocol) = req.headers().get("upgrade").cloned() else {
                        let plain = hyper::Response::new(Empty::<Bytes>::new());
                        return Ok::<_, std::convert::Infallible>(plain);
                    };
                    let upgraded = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(upgraded.await.unwrap());
                        let mut buf = [0; 64];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let resp = hyper::Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", protocol)
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

/// Sends `request` on `stream` and reads the response head.
async fn head_of(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn websocket_upgrades_pass_as_tunnels_held_in_drain_and_others_are_plain_http() {
    let app = upgrade_server().await;
    let mut proxy = Proxy::start(model(&catalog(app, app, "")));
    let addr = proxy.outbound(VIP).await;
    // h2c (and any protocol but WebSocket) is stripped: the request is served as HTTP/1.1.
    for protocol in ["h2c", "echo"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /x HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {protocol}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        let head = head_of(&mut stream, request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{protocol}: {head}");
    }
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = head_of(
        &mut stream,
        b"GET /ws HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0; 4];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
    // The open tunnel holds the drain until its deadline.
    assert!(!proxy.drain(Duration::from_millis(300)).await);
    stream.write_all(b"pong").await.unwrap();
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"pong", "still tunnelled while draining");
}

/// A minimal TLS ClientHello record naming `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let len = |n: usize| u16::try_from(n).unwrap().to_be_bytes();
    let mut ext = Vec::new();
    ext.extend(len(name.len() + 3));
    ext.push(0);
    ext.extend(len(name.len()));
    ext.extend(name);
    let mut exts = vec![0, 0];
    exts.extend(len(ext.len()));
    exts.extend(ext);
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend(len(exts.len()));
    body.extend(exts);
    let mut hs = vec![1, 0];
    hs.extend(len(body.len()));
    hs.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend(len(hs.len()));
    record.extend(hs);
    record
}

/// Two banner servers, `a` and `b`, and a ServiceEntry `backend` for them on
/// port 443 (TLS) and 5432 (TCP), with subsets `a` and `b`.
async fn banners(rules: &str) -> (Proxy, Vec<sluice_e2e::apps::Server>) {
    let mut servers = Vec::new();
    let mut endpoints = String::new();
    for (name, ip) in [("a", "127.0.0.1"), ("b", "127.0.0.2")] {
        let l = TcpListener::bind((ip, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        endpoints += &format!(
            "  - {{address: {ip}, ports: {{tls: {port}, tcp-db: {port}}}, labels: {{name: {name}}}}}\n"
        );
        servers.push(sluice_e2e::apps::serve_banner(l, name).unwrap());
    }
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend}}
spec:
  hosts: [backend]
  addresses: [10.96.0.20]
  ports: [{{number: 443, name: tls}}, {{number: 5432, name: tcp-db}}]
  resolution: STATIC
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend}}
spec:
  host: backend
  subsets: [{{name: a, labels: {{name: a}}}}, {{name: b, labels: {{name: b}}}}]
---
{rules}"#
    );
    (Proxy::start(model(&yaml)), servers)
}

async fn greeting(addr: SocketAddr, first: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    let mut buf = vec![0; 128];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

#[tokio::test]
async fn tls_passes_through_routed_by_sni() {
    let rules = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend]
  tls:
  - match: [{port: 443, sniHosts: [a.example.com]}]
    route: [{destination: {host: backend, subset: a}}]
  - match: [{port: 443, sniHosts: ["*.example.com"]}]
    route: [{destination: {host: backend, subset: b}}]
"#;
    let (proxy, _servers) = banners(rules).await;
    let addr = proxy.outbound("10.96.0.20:443").await;
    assert_eq!(
        greeting(addr, &client_hello("a.example.com")).await,
        "220 sluice-e2e banner a"
    );
    assert_eq!(
        greeting(addr, &client_hello("z.example.com")).await,
        "220 sluice-e2e banner b"
    );
}

#[tokio::test]
async fn tcp_routes_match_port_and_subnet_and_split_by_weight() {
    let rules = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend]
  tcp:
  - match: [{port: 5432, destinationSubnets: [10.99.0.0/16]}]
    route: [{destination: {host: backend, subset: b}}]
  - match: [{port: 5432}]
    route:
    - {destination: {host: backend, subset: a}, weight: 50}
    - {destination: {host: backend, subset: b}, weight: 50}
"#;
    let (proxy, _servers) = banners(rules).await;
    let addr = proxy.outbound("10.96.0.20:5432").await;
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(greeting(addr, b"").await);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "220 sluice-e2e banner a",
            "220 sluice-e2e banner a",
            "220 sluice-e2e banner b",
            "220 sluice-e2e banner b"
        ]
    );
}

/// A server that answers every request with 503.
async fn failing_server() -> SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|_req| async {
                let resp = hyper::Response::builder()
                    .status(503)
                    .body(Full::new(Bytes::from("down")))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(resp)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn endpoints_failing_in_a_row_are_ejected() {
    let good = echo_app("127.0.0.1", "catalog", "v1").await;
    let bad = failing_server().await;
    let yaml = catalog(good.local_addr(), bad, "")
        .replace(
            "spec:\n  host: catalog\n",
            "spec:\n  host: catalog\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 60s, maxEjectionPercent: 50}\n",
        )
        + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec:\n  hosts: [catalog]\n  http:\n  - route: [{destination: {host: catalog}}]\n    retries: {attempts: 0}\n";
    let proxy = Proxy::start(model(&yaml));
    let addr = proxy.outbound(VIP).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(get(addr, "catalog", "/", &[]).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        2,
        "two failures eject the endpoint: {statuses:?}"
    );
    assert!(statuses[4..].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        proxy.sidecar.outliers.is_ejected(bad),
        "kept by address, beside the config snapshot"
    );
}

#[tokio::test]
async fn cors_preflights_are_answered_and_answers_carry_cors_headers() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let rules = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - match: [{uri: {prefix: /strict}}]
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: catalog, subset: version-v1}}]
  - corsPolicy:
      allowOrigins: [{regex: "https://.*[.]example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-app]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: catalog, subset: version-v1}}]
"#;
    let proxy = Proxy::start(model(&catalog(v1.local_addr(), v1.local_addr(), rules)));
    let addr = proxy.outbound(VIP).await;
    let preflight = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "POST"),
    ];

    let answered = request(addr, "OPTIONS", "catalog", "/", &preflight).await;
    assert_eq!(answered.status, 200);
    assert_eq!(answered.app(), "", "answered by the proxy");
    let h = &answered.headers;
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "x-token");
    assert_eq!(h["access-control-max-age"], "86400");
    assert_eq!(h["access-control-allow-credentials"], "true");

    let actual = get(addr, "catalog", "/", &[("origin", "https://shop.example")]).await;
    assert_eq!(actual.app(), "catalog-v1");
    assert_eq!(
        actual.headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(actual.headers["access-control-expose-headers"], "x-app");

    let other = get(addr, "catalog", "/", &[("origin", "https://evil.test")]).await;
    assert_eq!(other.app(), "catalog-v1");
    assert!(!other.headers.contains_key("access-control-allow-origin"));

    // FORWARD (the default): an unmatched preflight goes to the app.
    let unmatched = [
        ("origin", "https://evil.test"),
        ("access-control-request-method", "GET"),
    ];
    let forwarded = request(addr, "OPTIONS", "catalog", "/", &unmatched).await;
    assert_eq!(forwarded.app(), "catalog-v1");
    // IGNORE: answered here, without CORS headers.
    let ignored = request(addr, "OPTIONS", "catalog", "/strict", &unmatched).await;
    assert_eq!((ignored.status, ignored.app()), (200, ""));
    assert!(!ignored.headers.contains_key("access-control-allow-origin"));
    assert_eq!(
        v1.log().seen().len(),
        3,
        "the app saw the three forwarded requests"
    );
}

const DELEGATION: &str = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: catalog-api, namespace: team}
    headers: {response: {set: {x-routed-by: root}}}
  - route: [{destination: {host: catalog, subset: version-v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog-api, namespace: team}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: catalog.default.svc.cluster.local, subset: version-v2}}]
  - match: [{uri: {prefix: /web}}]
    route: [{destination: {host: catalog.default.svc.cluster.local, subset: version-v2}}]
  - route: [{destination: {host: catalog.default.svc.cluster.local, subset: version-v1}}]
    headers: {response: {set: {x-routed-by: delegate}}}
"#;

#[tokio::test]
async fn a_delegate_virtual_service_routes_inside_its_roots_match() {
    let v1 = echo_app("127.0.0.1", "catalog", "v1").await;
    let v2 = echo_app("127.0.0.2", "catalog", "v2").await;
    let proxy = Proxy::start(model(&catalog(
        v1.local_addr(),
        v2.local_addr(),
        DELEGATION,
    )));
    let addr = proxy.outbound(VIP).await;
    // (path, app, x-routed-by)
    let cases = [
        ("/api/v2/items", "catalog-v2", Some("root")),
        ("/api/v1/items", "catalog-v1", Some("delegate")),
        // The delegate's /web rule lies outside the root's /api match: dropped.
        ("/web", "catalog-v1", None),
    ];
    for (path, app, routed_by) in cases {
        let reply = get(addr, "catalog", path, &[]).await;
        assert_eq!(reply.app(), app, "{path}");
        assert_eq!(
            reply
                .headers
                .get("x-routed-by")
                .map(|v| v.to_str().unwrap()),
            routed_by,
            "{path}"
        );
    }
}

/// An upstream that reads each request whole, counts it by method, and resets the connection
/// without answering.
async fn resetting_app() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0; 4096];
            let head_end = loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            while buf.len() < head_end + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let method = head.split(' ').next().unwrap_or("").to_string();
            log.lock().unwrap().push(method);
            // Received in full, then reset: the upstream may have acted on it.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn resets_are_retried_for_idempotent_requests_only() {
    let (resetting, at_reset) = resetting_app().await;
    let healthy = echo_app("127.0.0.1", "catalog", "v2").await;
    let retries = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec:\n  hosts: [catalog]\n  http:\n  - route: [{destination: {host: catalog}}]\n    retries: {attempts: 3, retryOn: \"reset,connect-failure,5xx\"}\n";
    let proxy = Proxy::start(model(&catalog(resetting, healthy.local_addr(), retries)));
    let addr = proxy.outbound(VIP).await;
    for _ in 0..6 {
        let reply = get(addr, "catalog", "/", &[]).await;
        assert_eq!(reply.status, 200, "GET is retried: {}", reply.text());
    }
    let mut failed = 0;
    for _ in 0..6 {
        let reply = request(addr, "POST", "catalog", "/", &[("content-length", "0")]).await;
        if reply.status != 200 {
            failed += 1;
        }
    }
    let posts_at_reset = at_reset
        .lock()
        .unwrap()
        .iter()
        .filter(|m| *m == "post")
        .count();
    let posts_at_healthy = healthy
        .log()
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert!(
        posts_at_reset > 0,
        "round robin sends some POSTs to the resetting endpoint"
    );
    assert_eq!(
        posts_at_reset, failed,
        "a POST the upstream received is not sent again"
    );
    assert_eq!(posts_at_reset + posts_at_healthy, 6, "no POST replayed");
}
