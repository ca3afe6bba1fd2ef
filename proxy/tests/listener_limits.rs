//! The HTTP/2 settings a client sees (concurrent streams and header-list size through a real
//! `h2` client, window sizes in the raw SETTINGS and WINDOW_UPDATE frames) and the connection cap
//! through the real listener.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_proxy::limits::{ClientLimits, Gates};
use support::{Proxy, echo_app, get, model};
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

/// A proxy in front of the echo app with `limits`; the outbound listener's address.
async fn start(limits: ClientLimits) -> (Proxy, SocketAddr, sluice_e2e::apps::HttpServer) {
    let app = echo_app("127.0.0.1", "catalog", "v1").await;
    let proxy = Proxy::start_with(model(&catalog(app.local_addr())), |s| {
        s.gates = Gates::new(limits, s.metrics.limits.clone());
    });
    let addr = proxy.outbound(VIP).await;
    (proxy, addr, app)
}

/// One HTTP/2 frame: type, flags, stream id, payload.
async fn frame(stream: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], id, payload)
}

#[tokio::test]
async fn http2_settings_are_advertised_and_enforced() {
    let limits = ClientLimits {
        h2_max_concurrent_streams: 7,
        max_header_bytes: 8 * 1024,
        h2_stream_window: 256 * 1024,
        h2_connection_window: 2 * 1024 * 1024,
        ..ClientLimits::default()
    };
    let (_proxy, addr, _app) = start(limits).await;

    // The raw frames: SETTINGS first, then the connection window as a WINDOW_UPDATE on stream 0.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let (kind, flags, id, payload) = frame(&mut raw).await;
    assert_eq!((kind, flags, id), (0x4, 0, 0), "first frame is SETTINGS");
    let settings: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(settings.contains(&(0x3, 7)), "{settings:?}"); // MAX_CONCURRENT_STREAMS
    assert!(settings.contains(&(0x4, 256 * 1024)), "{settings:?}"); // INITIAL_WINDOW_SIZE
    assert!(settings.contains(&(0x6, 8 * 1024)), "{settings:?}"); // MAX_HEADER_LIST_SIZE
    let increment = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (kind, _, id, payload) = frame(&mut raw).await;
            if kind == 0x8 && id == 0 {
                return u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            }
        }
    })
    .await
    .expect("no WINDOW_UPDATE for the connection");
    assert_eq!(increment, 2 * 1024 * 1024 - 65_535);

    // A real client: it learns the stream limit, and a header list beyond the limit is refused.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let requests = async move {
        let mut client = client.ready().await.unwrap();
        let request = |headers: &[(&str, &str)]| {
            let mut r = http::Request::get("http://catalog/");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.body(()).unwrap()
        };
        let (resp, _) = client.send_request(request(&[]), true).unwrap();
        let ok = resp.await.unwrap().status();
        let big = "v".repeat(16 * 1024);
        let oversized = match client.send_request(request(&[("x-big", &big)]), true) {
            Ok((resp, _)) => match resp.await {
                Ok(resp) => format!("status {}", resp.status().as_u16()),
                Err(e) => format!("reset {:?}", e.reason()),
            },
            Err(e) => format!("refused by the client: {e}"),
        };
        let (resp, _) = client.send_request(request(&[]), true).unwrap();
        (ok, oversized, resp.await.unwrap().status())
    };
    let (ok, oversized, after) = tokio::select! {
        r = requests => r,
        r = &mut connection => panic!("HTTP/2 connection ended: {r:?}"),
    };
    assert_eq!(ok, 200);
    assert!(
        oversized == "status 431" || oversized.starts_with("reset Some"),
        "a 16 KiB header list through an 8 KiB limit: {oversized}"
    );
    assert_eq!(after, 200, "the connection still serves after the refusal");
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_those_under_it_served() {
    let limits = ClientLimits {
        max_connections: 2,
        ..ClientLimits::default()
    };
    let (proxy, addr, _app) = start(limits).await;

    // Two keep-alive connections, each served once and held open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: catalog\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(c);
    }

    // A third: accepted by the kernel, closed by the proxy without an answer.
    let mut over = TcpStream::connect(addr).await.unwrap();
    let _ = over
        .write_all(b"GET / HTTP/1.1\r\nHost: catalog\r\n\r\n")
        .await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "a connection beyond the cap stayed open");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));

    // One closed: once the proxy has seen it go, a new connection is under the cap and served.
    drop(held.pop());
    support::until("a place freed under the cap", || {
        proxy.sidecar.gates.counts.connections_open.get() < 2
    })
    .await;
    assert_eq!(get(addr, "catalog", "/", &[]).await.status, 200);
}
