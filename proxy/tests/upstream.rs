//! The way to the upstream through real sockets. Request bodies stream upstream behind the
//! retry buffer: a 10 MB upload arrives whole without the proxy holding it; a small body is
//! retried after a 503 and after a reset and arrives whole on the second try, with its HTTP/2
//! trailers; a body over the buffer is not retried; `Expect: 100-continue` is answered; a POST
//! the upstream may have acted on is never sent twice. HTTP/2 upstream connections respect the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS`: a second connection takes what the first cannot.
//! One proxy serves every case, in one test so that the peak memory is this test's alone.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{Proxy, model};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const VIP: &str = "10.96.0.10:80";
const H2_VIP: &str = "10.96.0.11:80";
const NARROW_VIP: &str = "10.96.0.12:80";

/// The catalog over HTTP/1.1 and over HTTP/2 (one upstream serves both), retried on 5xx and
/// resets; `narrow` over HTTP/2 at `narrow`.
fn config(upstream: SocketAddr, narrow: SocketAddr) -> String {
    let entry = |name: &str, vip: &str, protocol: &str, upstream: SocketAddr| {
        format!(
            "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\n\
             spec:\n  hosts: [{name}]\n  addresses: [{vip}]\n  ports: [{{number: 80, name: http, protocol: {protocol}}}]\n\
             \x20 resolution: STATIC\n  endpoints:\n  - address: {}\n    ports: {{http: {}}}\n---\n\
             apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}]\n  http:\n\
             \x20 - route: [{{destination: {{host: {name}}}}}]\n    retries: {{attempts: 2, retryOn: \"5xx,reset\"}}\n---\n",
            upstream.ip(),
            upstream.port()
        )
    };
    entry("catalog", "10.96.0.10", "HTTP", upstream)
        + &entry("grpcish", "10.96.0.11", "HTTP2", upstream)
        + &entry("narrow", "10.96.0.12", "HTTP2", narrow)
}

/// One try as the upstream read it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Try {
    len: usize,
    hash: u64,
    trailer: Option<String>,
}

/// FNV-1a, continued over `bytes`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The upstream: reads each body to its end (hashing it, noting its `x-sum` trailer) and
/// answers 200 with `len hash`; the first try of a request whose `x-fail` says `503` or
/// `reset` is answered 503 or with a closed connection. Tries are logged by `x-id`.
type Tries = Arc<Mutex<HashMap<String, Vec<Try>>>>;

async fn upstream() -> (SocketAddr, Tries) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tries: Tries = Arc::default();
    let log = tries.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            let service = hyper::service::service_fn(move |req| answer(req, log.clone()));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, tries)
}

async fn answer(req: Request<Incoming>, log: Tries) -> Result<Response<Full<Bytes>>, String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, fail) = (header("x-id"), header("x-fail"));
    let mut body = req.into_body();
    let mut seen = Try {
        len: 0,
        hash: FNV_START,
        trailer: None,
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            seen.len += data.len();
            seen.hash = fnv(seen.hash, data);
        } else if let Some(t) = frame.trailers_ref() {
            seen.trailer = t.get("x-sum").map(|v| v.to_str().unwrap().to_string());
        }
    }
    let first = {
        let mut log = log.lock().unwrap();
        let tries = log.entry(id).or_default();
        tries.push(seen.clone());
        tries.len() == 1
    };
    match fail.as_str() {
        "503" if first => Ok(Response::builder()
            .status(503)
            .body(Full::new(Bytes::from("try again")))
            .unwrap()),
        "reset" if first => Err("reset".into()),
        _ => Ok(Response::new(Full::new(Bytes::from(format!(
            "{} {}",
            seen.len, seen.hash
        ))))),
    }
}

/// Chunk `i` of a generated body (deterministic, never all held at once).
fn chunk(i: usize, size: usize) -> Bytes {
    (0..size).map(|j| ((i * 131 + j * 7) % 251) as u8).collect()
}

/// The `len hash` the upstream answers for `n` chunks of `size`.
fn expected(n: usize, size: usize) -> String {
    let hash = (0..n).fold(FNV_START, |h, i| fnv(h, &chunk(i, size)));
    format!("{} {hash}", n * size)
}

type StreamedBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A body of `n` chunks of `size` bytes, made as they are sent, then trailers if given.
fn generated(n: usize, size: usize, trailer: Option<&'static str>) -> StreamedBody {
    let data = (0..n).map(move |i| Ok(Frame::data(chunk(i, size))));
    let trailers = trailer.map(|sum| {
        let mut t = http::HeaderMap::new();
        t.insert("x-sum", sum.parse().unwrap());
        Ok(Frame::trailers(t))
    });
    StreamBody::new(futures_util::stream::iter(data.chain(trailers))).boxed_unsync()
}

/// One HTTP/1.1 request with a generated body (`Content-Length` set); status and body text.
async fn send(
    addr: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    n: usize,
    size: usize,
) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri("/upload")
        .header("host", "catalog")
        .header("content-length", n * size);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(generated(n, size, None)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The proxy process's `VmHWM` or `VmRSS`, in KiB.
fn vm(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

fn tries(log: &Tries, id: &str) -> Vec<Try> {
    log.lock().unwrap().get(id).cloned().unwrap_or_default()
}

fn overflows(proxy: &Proxy) -> u64 {
    let text = proxy.sidecar.metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix("sluice_retry_buffer_overflows_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overflow counter: {text}"))
}

/// An HTTP/2 upstream taking one stream per connection (`SETTINGS_MAX_CONCURRENT_STREAMS` 1),
/// answering after 300 ms; it counts connections and requests.
async fn narrow_upstream() -> (SocketAddr, Arc<Mutex<(usize, usize)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<(usize, usize)>> = Arc::default();
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.lock().unwrap().0 += 1;
            let count = count.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                count.lock().unwrap().1 += 1;
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("slow"))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(1)
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn bodies_stream_and_h2_connections_respect_the_servers_streams() {
    let (up, log) = upstream().await;
    let (narrow, narrow_seen) = narrow_upstream().await;
    let proxy = Proxy::start(model(&config(up, narrow)));
    let addr = proxy.outbound(VIP).await;
    let h2_addr = proxy.outbound(H2_VIP).await;
    let narrow_addr = proxy.outbound(NARROW_VIP).await;

    // A 10 MB upload arrives whole, and the process's peak memory grows by far less than it
    // (reset first: writing 5 to clear_refs sets VmHWM to the current RSS).
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 160;
    let before = vm("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (status, text) = send(addr, "PUT", &[("x-id", "big")], CHUNKS, CHUNK).await;
    assert_eq!((status, text), (200, expected(CHUNKS, CHUNK)));
    let grew = vm("VmHWM").saturating_sub(before);
    eprintln!("10 MB upload: peak RSS grew by {grew} KiB (VmHWM reset: {reset})");
    if reset {
        assert!(
            grew < 4 * 1024,
            "peak memory grew by {grew} KiB for a 10 MB body"
        );
    }
    assert_eq!(
        overflows(&proxy),
        1,
        "the big body outgrew the retry buffer"
    );

    // A small body answered 503, then reset: retried, whole on the second try.
    for fail in ["503", "reset"] {
        let id = format!("small-{fail}");
        let headers = [("x-id", id.as_str()), ("x-fail", fail)];
        let (status, text) = send(addr, "PUT", &headers, 4, 1000).await;
        assert_eq!((status, text), (200, expected(4, 1000)), "{fail}");
        let seen = tries(&log, &id);
        assert_eq!(seen.len(), 2, "{fail}: {seen:?}");
        assert_eq!(seen[0], seen[1], "{fail}: both tries read the whole body");
    }

    // A body over the retry buffer (64 KiB) is sent once: the 503 stands.
    let headers = [("x-id", "over"), ("x-fail", "503")];
    let (status, _) = send(addr, "PUT", &headers, 3, 32 * 1024).await;
    assert_eq!(status, 503);
    assert_eq!(tries(&log, "over").len(), 1);
    assert_eq!(overflows(&proxy), 2);

    // A POST the upstream received is never sent again, even with a small body.
    let headers = [("x-id", "post"), ("x-fail", "503")];
    let (status, _) = send(addr, "POST", &headers, 1, 100).await;
    assert_eq!(status, 503);
    assert_eq!(tries(&log, "post").len(), 1);

    // HTTP/2 with trailers, retried after a 503: body and trailers whole on both tries.
    let stream = TcpStream::connect(h2_addr).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::put("http://grpcish/upload")
        .header("x-id", "trailers")
        .header("x-fail", "503")
        .header("te", "trailers")
        .body(generated(3, 5000, Some("abc")))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, expected(3, 5000));
    let seen = tries(&log, "trailers");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].trailer.as_deref(), Some("abc"), "{seen:?}");
    assert_eq!(seen[0], seen[1]);

    // `Expect: 100-continue`: the client hears 100 before it sends, and a retry replays.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(
        b"PUT /upload HTTP/1.1\r\nHost: catalog\r\nx-id: expect\r\nx-fail: 503\r\n\
          Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut got))
        .await
        .expect("no 100 Continue")
        .unwrap();
    let interim = String::from_utf8_lossy(&got[..n]).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    raw.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest))
        .await
        .expect("no answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&rest).into_owned();
    assert!(answer.contains("200 OK"), "{answer}");
    assert!(
        answer.ends_with(&format!("5 {}", fnv(FNV_START, b"hello"))),
        "{answer}"
    );
    assert_eq!(tries(&log, "expect").len(), 2);

    // Two slow requests at once to a server taking one stream per connection: the second
    // gets a connection of its own rather than waiting for the first's stream.
    let get = |uri: &'static str| async move {
        let stream = TcpStream::connect(narrow_addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get(uri)
            .header("host", "narrow")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    };
    let first = tokio::spawn(get("/a"));
    support::until("the first request at the upstream", || {
        narrow_seen.lock().unwrap().1 == 1
    })
    .await;
    let started = std::time::Instant::now();
    let second = get("/b").await;
    assert_eq!(second, (200, Bytes::from("slow")));
    assert_eq!(first.await.unwrap(), (200, Bytes::from("slow")));
    assert_eq!(
        *narrow_seen.lock().unwrap(),
        (2, 2),
        "(connections, requests)"
    );
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "the second request waited for the first's stream: {:?}",
        started.elapsed()
    );
}
