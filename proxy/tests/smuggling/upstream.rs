//! A raw upstream that records exactly the bytes it receives and splits them into requests
//! with the strict checker (never trusting the proxy in front of it): each complete request
//! gets an answer chosen by its path, a framing violation is recorded and ends the connection.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::strict;

/// What the upstream received since the last [`Upstream::take`].
#[derive(Debug, Default)]
pub struct Received {
    /// Complete, well-framed requests.
    pub requests: Vec<strict::Request>,
    /// Framing violations, each with the connection's unparsed bytes.
    pub violations: Vec<String>,
    /// Connections left holding the start of a request that never completed.
    pub partial: usize,
    /// Every byte received, per connection.
    pub raw: BTreeMap<u64, Vec<u8>>,
}

impl Received {
    /// Requests for a path no proxy may ever forward (`/smuggled`: the tail of a desync).
    pub fn smuggled(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.target.contains("smuggled"))
            .count()
    }
}

#[derive(Default)]
struct State {
    got: Received,
    /// Connections open now: their unparsed bytes and how to end them.
    open: BTreeMap<u64, (usize, Arc<Notify>)>,
    next: u64,
}

/// The recording upstream.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Upstream {
    /// Listens on loopback.
    pub async fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Upstream {
            addr: l.local_addr().unwrap(),
            state: Arc::default(),
        };
        let serving = up.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serving.clone().serve(s));
            }
        });
        up
    }

    /// The config routing the `catalog` service (10.96.0.10:80, HTTP) to this upstream, with
    /// no retries, so each request the proxy forwards reaches it once.
    pub fn catalog(&self) -> String {
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
  endpoints: [{{address: {}, ports: {{http: {}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog}}
spec:
  hosts: [catalog]
  http:
  - route: [{{destination: {{host: catalog}}}}]
    retries: {{attempts: 0}}
"#,
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// What was received since the last call; connections holding part of a request are
    /// counted and closed, so the next case starts clean.
    pub fn take(&self) -> Received {
        let mut state = self.state.lock().unwrap();
        let mut partial = 0;
        for (pending, end) in state.open.values() {
            if *pending > 0 {
                partial += 1;
                end.notify_one();
            }
        }
        let mut got = std::mem::take(&mut state.got);
        got.partial = partial;
        got
    }

    async fn serve(self, mut s: TcpStream) {
        let end = Arc::new(Notify::new());
        let id = {
            let mut state = self.state.lock().unwrap();
            state.next += 1;
            let id = state.next;
            state.open.insert(id, (0, end.clone()));
            id
        };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = tokio::select! {
                n = s.read(&mut chunk) => n.unwrap_or(0),
                () = end.notified() => 0,
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut answers = Vec::new();
            let mut close = false;
            {
                let mut state = self.state.lock().unwrap();
                state
                    .got
                    .raw
                    .entry(id)
                    .or_default()
                    .extend_from_slice(&chunk[..n]);
                loop {
                    match strict::request(&buf) {
                        Ok(Some((req, len))) => {
                            buf.drain(..len);
                            let (answer, last) = answer(&req.target);
                            answers.push(answer);
                            state.got.requests.push(req);
                            if last {
                                close = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            state
                                .got
                                .violations
                                .push(format!("{e} in {:?}", String::from_utf8_lossy(&buf)));
                            buf.clear();
                            close = true;
                            break;
                        }
                    }
                }
                if let Some(open) = state.open.get_mut(&id) {
                    open.0 = buf.len();
                }
            }
            for a in answers {
                if s.write_all(a.as_bytes()).await.is_err() {
                    close = true;
                }
            }
            if close {
                break;
            }
        }
        self.state.lock().unwrap().open.remove(&id);
    }
}

/// The answer to a request for `path`, and whether the connection ends after it.
fn answer(path: &str) -> (String, bool) {
    let ok = "HTTP/1.1 200 OK\r\nx-upstream: 1\r\nContent-Length: 2\r\n\r\nok";
    let smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    match path {
        // No framing at all: the body runs to the end of the connection.
        "/resp/unframed" => (
            "HTTP/1.1 200 OK\r\nx-upstream: 1\r\n\r\nunframed body".into(),
            true,
        ),
        // Both framings (chunked wins), then bytes that read as a response if the
        // Content-Length were believed or the connection reused.
        "/resp/cl-te" => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
                 2\r\nok\r\n0\r\n\r\n{smuggled}"
            ),
            false,
        ),
        // Two Content-Lengths that differ: no proxy may pass either on.
        "/resp/cl-cl" => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 10\r\n\r\nok{smuggled}"
            ),
            false,
        ),
        // Informational responses before the final one.
        "/resp/1xx" => (
            format!(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n{ok}"
            ),
            false,
        ),
        // A Content-Length with a sign: not a number, whatever a lenient parser makes of it.
        "/resp/cl-signed" => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok{smuggled}"),
            false,
        ),
        // Chunked in an HTTP/1.0 response, which has no chunked coding.
        "/resp/te-http10" => (
            format!(
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n{smuggled}"
            ),
            false,
        ),
        // A folded header line (obs-fold) hiding a Content-Length.
        "/resp/obs-fold" => (
            format!(
                "HTTP/1.1 200 OK\r\nx-a: 1\r\n Content-Length: 40\r\nContent-Length: 2\r\n\r\nok{smuggled}"
            ),
            false,
        ),
        // Whitespace between a field name and its colon.
        "/resp/space-colon" => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length : 40\r\nContent-Length: 2\r\n\r\nok{smuggled}"
            ),
            false,
        ),
        // A chunked body with extensions and trailers, well framed: the connection may serve
        // the next request.
        "/resp/trailers" => (
            "HTTP/1.1 200 OK\r\nx-upstream: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
             2;x=y\r\nok\r\n0\r\nx-sum: 1\r\n\r\n"
                .into(),
            false,
        ),
        _ => (ok.into(), false),
    }
}
