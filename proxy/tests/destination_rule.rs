//! DestinationRule traffic policies through the proxy core on loopback:
//! circuit breaking, connection policy, HTTP/2 upgrade, outlier detection
//! and cookie affinity, against real upstream servers.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_api::model::routes::SubsetRef;
use sluice_proxy::cluster::{Cluster, Limit};
use support::{Proxy, echo_app, get, h2, h2_get, model, until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;

const VIP: &str = "10.96.0.30:80";

/// A ServiceEntry `shop` at [`VIP`] with these endpoints (each labelled
/// `name: e<i>`), and a DestinationRule with `policy` as its trafficPolicy.
fn shop(endpoints: &[SocketAddr], policy: &str) -> String {
    let endpoints: String = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "  - {{address: {}, ports: {{http: {}}}, labels: {{name: e{i}}}}}\n",
                e.ip(),
                e.port()
            )
        })
        .collect();
    let policy: String = policy.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: shop}}
spec:
  hosts: [shop]
  addresses: [10.96.0.30]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: shop}}
spec:
  host: shop
  trafficPolicy:
{policy}"#
    )
}

#[tokio::test]
async fn cookie_affinity_generates_the_cookie_then_sticks_to_one_endpoint() {
    let a = echo_app("127.0.0.1", "shop", "a").await;
    let b = echo_app("127.0.0.2", "shop", "b").await;
    let c = echo_app("127.0.0.3", "shop", "c").await;
    let policy =
        "loadBalancer:\n  consistentHash:\n    httpCookie: {name: affinity, path: /, ttl: 3600s}\n";
    let proxy = Proxy::start(model(&shop(
        &[a.local_addr(), b.local_addr(), c.local_addr()],
        policy,
    )));
    let addr = proxy.outbound(VIP).await;

    let first = get(addr, "shop", "/", &[]).await;
    assert_eq!(first.status, 200);
    let set = first.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("affinity=\"") && set.ends_with("; Max-Age=3600; Path=/; HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let app = first.app().to_string();
    for _ in 0..10 {
        let again = get(addr, "shop", "/", &[("cookie", &cookie)]).await;
        assert_eq!(again.app(), app, "the generated cookie sticks");
        assert!(
            !again.headers.contains_key("set-cookie"),
            "no new cookie once the client has one"
        );
    }
}

/// What a [`counting_server`] has seen, and the gate its answers wait at.
#[derive(Debug)]
struct Counts {
    requests: AtomicUsize,
    connections: AtomicUsize,
    closed: AtomicUsize,
    gate: Semaphore,
}

impl Counts {
    /// Lets `n` more held answers go.
    fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

/// Whether a [`counting_server`] answers at once or holds each answer until the test
/// [releases](Counts::release) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answers {
    AtOnce,
    Held,
}

/// A server on `ip` that answers every request with `status` (at once, or when released),
/// counting requests, connections and closed connections.
async fn counting_server(ip: &str, status: u16, answers: Answers) -> (SocketAddr, Arc<Counts>) {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts {
        requests: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            let per_request = c.clone();
            let service = hyper::service::service_fn(move |_req| {
                per_request.requests.fetch_add(1, Ordering::SeqCst);
                let counts = per_request.clone();
                async move {
                    if answers == Answers::Held {
                        counts.gate.acquire().await.unwrap().forget();
                    }
                    let resp = hyper::Response::builder()
                        .status(status)
                        .header("x-app", format!("status-{status}"))
                        .body(Full::new(Bytes::from("from the app")))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                c.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, counts)
}

/// A server on `ip` that answers every request with `status`.
async fn status_server(ip: &str, status: u16) -> SocketAddr {
    counting_server(ip, status, Answers::AtOnce).await.0
}

/// The destination `shop`, all endpoints, port 80, of the config in force.
fn shop_cluster(proxy: &Proxy) -> Arc<Cluster> {
    let snap = proxy.sidecar.store.current().unwrap();
    let id = snap
        .model
        .registry
        .by_host("shop.default.svc.cluster.local")
        .unwrap();
    snap.clusters.get(id, SubsetRef::All, 80).unwrap().clone()
}

/// The value of the overflow counter of `limit` for the `shop` service.
fn overflows(proxy: &Proxy, limit: &str) -> u64 {
    let text = proxy.sidecar.metrics.encode();
    let prefix = format!(
        "sluice_overflow_total{{destination_service=\"shop.default.svc.cluster.local\",destination_subset=\"\",destination_port=\"80\",limit=\"{limit}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

/// No retries, so every answer shows which endpoint was tried.
const NO_RETRIES: &str = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop}\nspec:\n  hosts: [shop]\n  http:\n  - route: [{destination: {host: shop}}]\n    retries: {attempts: 0}\n";

/// Waits (bounded) until `check` holds for a reply to GET /.
async fn eventually_reply(addr: SocketAddr, what: &str, check: impl Fn(&support::Reply) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get(addr, "shop", "/", &[]).await;
        if check(&reply) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: last {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ejected_endpoints_return_after_the_ejection_time_on_a_sweep() {
    let good = echo_app("127.0.0.1", "shop", "good").await;
    let bad = status_server("127.0.0.2", 503).await;
    let policy = "outlierDetection:\n  consecutive5xxErrors: 1\n  interval: 100ms\n  baseEjectionTime: 300ms\n  maxEjectionPercent: 100\n";
    let proxy = Proxy::start(model(
        &(shop(&[good.local_addr(), bad], policy) + NO_RETRIES),
    ));
    let addr = proxy.outbound(VIP).await;
    eventually_reply(addr, "the failing endpoint answered", |r| r.status == 503).await;
    let ejected_at = Instant::now();
    assert!(proxy.sidecar.outliers.is_ejected(bad));
    for _ in 0..6 {
        assert_eq!(get(addr, "shop", "/", &[]).await.app(), "shop-good");
    }
    eventually_reply(addr, "the ejected endpoint came back", |r| r.status == 503).await;
    let out = ejected_at.elapsed();
    assert!(
        out >= Duration::from_millis(250),
        "back after {out:?}: the base ejection time is 300ms"
    );
}

#[tokio::test]
async fn connect_failures_count_as_gateway_errors() {
    let good = echo_app("127.0.0.1", "shop", "good").await;
    let closed = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let policy = "outlierDetection:\n  consecutive5xxErrors: 0\n  consecutiveGatewayErrors: 2\n  maxEjectionPercent: 50\n";
    let proxy = Proxy::start(model(&shop(&[good.local_addr(), closed], policy)));
    let addr = proxy.outbound(VIP).await;
    for _ in 0..6 {
        // The mesh's default retries take the request to the good endpoint.
        assert_eq!(get(addr, "shop", "/", &[]).await.app(), "shop-good");
    }
    assert!(proxy.sidecar.outliers.is_ejected(closed));
    assert!(!proxy.sidecar.outliers.is_ejected(good.local_addr()));
}

#[tokio::test]
async fn all_ejected_is_no_healthy_upstream_unless_below_min_health() {
    let a = status_server("127.0.0.1", 503).await;
    let b = status_server("127.0.0.2", 503).await;
    // (minHealthPercent, what the third request gets)
    let cases = [(0, "no-healthy-upstream"), (50, "")];
    for (min_health, expected) in cases {
        let policy = format!(
            "outlierDetection:\n  consecutive5xxErrors: 1\n  baseEjectionTime: 60s\n  maxEjectionPercent: 100\n  minHealthPercent: {min_health}\n"
        );
        let proxy = Proxy::start(model(&(shop(&[a, b], &policy) + NO_RETRIES)));
        let addr = proxy.outbound(VIP).await;
        for _ in 0..2 {
            let reply = get(addr, "shop", "/", &[]).await;
            assert_eq!(reply.app(), "status-503", "{}", reply.text());
        }
        assert!(proxy.sidecar.outliers.is_ejected(a) && proxy.sidecar.outliers.is_ejected(b));
        let third = get(addr, "shop", "/", &[]).await;
        assert_eq!(third.status, 503);
        let error = third
            .headers
            .get("x-sluice-error")
            .map_or("", |v| v.to_str().unwrap());
        assert_eq!(
            error,
            expected,
            "minHealthPercent {min_health}: {}",
            third.text()
        );
        if expected.is_empty() {
            assert_eq!(
                third.app(),
                "status-503",
                "below minHealthPercent: sent anyway"
            );
        }
    }
}

#[tokio::test]
async fn one_connection_one_waiting_request_and_the_next_overflows() {
    let (app, counts) = counting_server("127.0.0.1", 200, Answers::Held).await;
    let policy =
        "connectionPool:\n  tcp: {maxConnections: 1}\n  http: {http1MaxPendingRequests: 1}\n";
    let proxy = Proxy::start(model(&shop(&[app], policy)));
    let addr = proxy.outbound(VIP).await;
    let first = tokio::spawn(async move { get(addr, "shop", "/", &[]).await });
    until("the first request reached the app", || {
        counts.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = tokio::spawn(async move { get(addr, "shop", "/", &[]).await });
    until("the second request waits for the connection", || {
        overflows(&proxy, "max_connections") == 1
    })
    .await;
    let third = get(addr, "shop", "/", &[]).await;
    assert_eq!(third.status, 503, "{}", third.text());
    assert_eq!(third.headers["x-sluice-error"], "overflow");
    assert!(
        third
            .text()
            .contains("limit of 1 requests waiting for a connection")
            && third.text().contains("http1MaxPendingRequests"),
        "{}",
        third.text()
    );
    counts.release(2);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(
        second.await.unwrap().status,
        200,
        "served once the connection was free"
    );
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
    assert_eq!(overflows(&proxy, "max_pending_requests"), 1);
}

#[tokio::test]
async fn requests_beyond_http2_max_requests_overflow() {
    let (app, counts) = counting_server("127.0.0.1", 200, Answers::Held).await;
    let proxy = Proxy::start(model(&shop(
        &[app],
        "connectionPool:\n  http: {http2MaxRequests: 1}\n",
    )));
    let addr = proxy.outbound(VIP).await;
    let first = tokio::spawn(async move { get(addr, "shop", "/", &[]).await });
    until("the first request reached the app", || {
        counts.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = get(addr, "shop", "/", &[]).await;
    assert_eq!(second.status, 503);
    assert!(
        second.text().contains("http2MaxRequests"),
        "{}",
        second.text()
    );
    counts.release(2);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(get(addr, "shop", "/", &[]).await.status, 200, "room again");
    assert_eq!(overflows(&proxy, "max_requests"), 1);
}

#[tokio::test]
async fn retries_beyond_max_retries_are_not_made() {
    let (app, counts) = counting_server("127.0.0.1", 503, Answers::Held).await;
    let retries = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop}\nspec:\n  hosts: [shop]\n  http:\n  - route: [{destination: {host: shop}}]\n    retries: {attempts: 2, retryOn: 5xx}\n";
    let yaml = shop(&[app], "connectionPool:\n  http: {maxRetries: 1}\n") + retries;
    let proxy = Proxy::start(model(&yaml));
    let addr = proxy.outbound(VIP).await;
    let a = tokio::spawn(async move { get(addr, "shop", "/", &[]).await });
    let b = tokio::spawn(async move { get(addr, "shop", "/", &[]).await });
    until("both first tries reached the app", || {
        counts.requests.load(Ordering::SeqCst) == 2
    })
    .await;
    counts.release(2);
    // One request's retry goes out and is held at the app; the other's is refused while it is
    // in flight, so that request is answered.
    until("one retry held and the other request answered", || {
        counts.requests.load(Ordering::SeqCst) == 3 && (a.is_finished() || b.is_finished())
    })
    .await;
    counts.release(10);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((a.status, b.status), (503, 503));
    assert_eq!(a.text(), "from the app", "the app's answer stands");
    assert_eq!(b.text(), "from the app", "the app's answer stands");
    assert_eq!(overflows(&proxy, "max_retries"), 1);
    assert_eq!(
        counts.requests.load(Ordering::SeqCst),
        4,
        "two tries, and two retries of one request; the other's retry was refused"
    );
}

#[tokio::test]
async fn connections_close_after_max_requests_idle_timeout_and_max_duration() {
    // (policy, before each request after the first: wait for the proxy to close the
    // connection?, connections the app sees)
    let cases: [(&str, &[bool], usize); 5] = [
        ("", &[false, false], 1),
        (
            "connectionPool:\n  http: {maxRequestsPerConnection: 1}\n",
            &[false, false],
            3,
        ),
        (
            "connectionPool:\n  http: {maxRequestsPerConnection: 2}\n",
            &[false, false, false],
            2,
        ),
        (
            "connectionPool:\n  http: {idleTimeout: 50ms}\n",
            &[true, true],
            3,
        ),
        (
            "connectionPool:\n  tcp: {maxConnectionDuration: 2s}\n",
            &[false, true, false],
            2,
        ),
    ];
    for (policy, wait_for_close, connections) in cases {
        let (app, counts) = counting_server("127.0.0.1", 200, Answers::AtOnce).await;
        let proxy = Proxy::start(model(&shop(&[app], policy)));
        let addr = proxy.outbound(VIP).await;
        assert_eq!(get(addr, "shop", "/", &[]).await.status, 200);
        for wait in wait_for_close {
            if *wait {
                let open = counts.connections.load(Ordering::SeqCst);
                until("the proxy closed the connection", || {
                    counts.closed.load(Ordering::SeqCst) == open
                })
                .await;
            }
            assert_eq!(get(addr, "shop", "/", &[]).await.status, 200);
        }
        assert_eq!(
            counts.connections.load(Ordering::SeqCst),
            connections,
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn tcp_connections_beyond_max_connections_are_closed() {
    let banner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = banner.local_addr().unwrap().port();
    let _app = sluice_e2e::apps::serve_banner(banner, "db").unwrap();
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: shop}}
spec:
  hosts: [shop]
  addresses: [10.96.0.30]
  ports: [{{number: 80, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: shop}}
spec:
  host: shop
  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 1}}}}}}
"#
    );
    let proxy = Proxy::start(model(&yaml));
    let addr = proxy.outbound(VIP).await;
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0; 64];
    assert!(first.read(&mut buf).await.unwrap() > 0, "the banner");
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(second.read(&mut buf).await.unwrap_or(0), 0, "closed");
    assert_eq!(overflows(&proxy, "max_connections"), 1);
    first.write_all(b"bye\r\n").await.unwrap();
    drop(first);
    let cluster = shop_cluster(&proxy);
    until("the first connection is uncounted", || {
        cluster.breaker.count(Limit::Connections) == 0
    })
    .await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(third.read(&mut buf).await.unwrap() > 0, "room again");
}

#[tokio::test]
async fn h2_upgrade_policy_and_use_client_protocol() {
    let app = echo_app("127.0.0.1", "shop", "a").await;
    // (policy, client speaks HTTP/2, what the app sees)
    let cases = [
        ("", false, "HTTP/1.1"),
        (
            "connectionPool:\n  http: {h2UpgradePolicy: UPGRADE}\n",
            false,
            "HTTP/2.0",
        ),
        (
            "connectionPool:\n  http: {h2UpgradePolicy: DO_NOT_UPGRADE}\n",
            false,
            "HTTP/1.1",
        ),
        (
            "connectionPool:\n  http: {useClientProtocol: true}\n",
            true,
            "HTTP/2.0",
        ),
        (
            "connectionPool:\n  http: {useClientProtocol: true, h2UpgradePolicy: UPGRADE}\n",
            false,
            "HTTP/1.1",
        ),
    ];
    for (policy, client_h2, expected) in cases {
        let proxy = Proxy::start(model(&shop(&[app.local_addr()], policy)));
        let addr = proxy.outbound(VIP).await;
        let reply = if client_h2 {
            h2_get(&mut h2(addr).await, "http://shop/", &[]).await
        } else {
            get(addr, "shop", "/", &[]).await
        };
        assert_eq!(reply.status, 200, "{policy}: {}", reply.text());
        assert_eq!(
            reply.seen().proto,
            expected,
            "{policy:?} client h2 {client_h2}"
        );
    }
}

#[tokio::test]
async fn a_request_that_gives_up_waiting_leaves_no_count_behind() {
    // Answers held for good: both requests outlast the route's 100 ms timeout.
    let (app, counts) = counting_server("127.0.0.1", 200, Answers::Held).await;
    let timeout = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop}\nspec:\n  hosts: [shop]\n  http:\n  - route: [{destination: {host: shop}}]\n    timeout: 100ms\n    retries: {attempts: 0}\n";
    let policy =
        "connectionPool:\n  tcp: {maxConnections: 1}\n  http: {http1MaxPendingRequests: 5}\n";
    let proxy = Proxy::start(model(&(shop(&[app], policy) + timeout)));
    let addr = proxy.outbound(VIP).await;
    let first = tokio::spawn(async move { get(addr, "shop", "/", &[]).await });
    until("the first request reached the app", || {
        counts.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    let waiting = get(addr, "shop", "/", &[]).await;
    assert_eq!(waiting.status, 504, "gave up waiting for the connection");
    assert_eq!(
        first.await.unwrap().status,
        504,
        "the slow one timed out too"
    );
    let cluster = shop_cluster(&proxy);
    until("pending and active requests are uncounted", || {
        cluster.breaker.count(Limit::PendingRequests) == 0
            && cluster.breaker.count(Limit::Requests) == 0
    })
    .await;
    // The connection cut by the timeout closes, and its count with it.
    until("the timed-out connection is closed", || {
        cluster.breaker.count(Limit::Connections) == 0
    })
    .await;
}
