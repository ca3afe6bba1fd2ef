//! The client-facing limits through real sockets: header read timeout, header count and size,
//! the idle timeout of HTTP/1.1 and HTTP/2 client connections, the body-read timeout and load
//! shedding. One proxy with small limits serves every case.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_proxy::limits::ClientLimits;
use support::{Proxy, echo_app, get, h2, h2_get, model};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const VIP: &str = "10.96.0.10:80";

fn catalog(app: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {{name: catalog}}\n\
         spec:\n  hosts: [catalog]\n  addresses: [10.96.0.10]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n\
         \x20 resolution: STATIC\n  endpoints:\n  - address: {}\n    ports: {{http: {}}}\n",
        app.ip(),
        app.port()
    )
}

const SHORT: Duration = Duration::from_millis(400);

fn small() -> ClientLimits {
    ClientLimits {
        header_read_timeout: SHORT,
        idle_timeout: SHORT,
        body_read_timeout: SHORT,
        max_headers: 20,
        max_header_bytes: 8 * 1024,
        max_requests: 2,
        ..ClientLimits::default()
    }
}

/// Reads until the proxy closes the connection (within 5 s); what it sent, and how long it took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "still open after 5 s: {:?}",
        String::from_utf8_lossy(&got)
    );
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn slow_large_idle_and_excess_clients_are_cut_off() {
    let app = echo_app("127.0.0.1", "catalog", "v1").await;
    let proxy = Proxy::start_with(model(&catalog(app.local_addr())), |s| {
        s.gates = sluice_proxy::limits::Gates::new(small(), s.metrics.limits.clone());
    });
    let addr = proxy.outbound(VIP).await;

    // Headers trickled: closed at the header read timeout, not served.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: catalog\r\n")
        .await
        .unwrap();
    let (answer, took) = until_closed(&mut slow).await;
    assert!(!answer.contains("200"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Too many headers, too large a head: 431.
    let many: Vec<(String, String)> = (0..30).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(get(addr, "catalog", "/", &many).await.status, 431);
    let big = "v".repeat(16 * 1024);
    assert_eq!(
        get(addr, "catalog", "/", &[("x-big", &big)]).await.status,
        431
    );
    assert_eq!(get(addr, "catalog", "/", &[]).await.status, 200);

    // A keep-alive connection left idle after its request: closed.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: catalog\r\n\r\n")
        .await
        .unwrap();
    let (answer, took) = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // An HTTP/2 connection left idle: closed (GOAWAY) too.
    let mut sender = h2(addr).await;
    assert_eq!(
        h2_get(&mut sender, "http://catalog/", &[]).await.status,
        200
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while !sender.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(closed.await.is_ok(), "idle HTTP/2 connection still open");

    // A body trickled: the request fails at the body-read timeout instead of waiting.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"POST / HTTP/1.1\r\nHost: catalog\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    let (answer, took) = until_closed(&mut trickle).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Beyond the requests in flight: a fast 503.
    let before = app.log().seen().len();
    const DELAY: &[(&str, &str)] = &[("x-echo-delay-ms", "1500")];
    let slow = (
        tokio::spawn(get(addr, "catalog", "/", DELAY)),
        tokio::spawn(get(addr, "catalog", "/", DELAY)),
    );
    support::until("two requests in flight at the app", || {
        app.log().seen().len() >= before + 2
    })
    .await;
    let started = Instant::now();
    let shed = get(addr, "catalog", "/", &[]).await;
    assert_eq!(shed.status, 503, "{}", shed.text());
    assert_eq!(shed.headers["x-sluice-error"], "overloaded");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(slow.0.await.unwrap().status, 200);
    assert_eq!(slow.1.await.unwrap().status, 200);
    assert_eq!(get(addr, "catalog", "/", &[]).await.status, 200);
    let metrics = proxy.sidecar.metrics.encode();
    assert!(
        metrics.contains("sluice_requests_shed_total 1"),
        "{metrics}"
    );
}
