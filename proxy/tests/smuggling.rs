//! Request smuggling: a table of desync attempts sent raw over a real socket to the proxy's
//! outbound HTTP listener, in front of an upstream that records exactly the bytes it receives
//! and parses them with a strict checker of its own. Each case is either rejected (400, or the
//! status the case names; a body error found after the head may instead cut the request short)
//! with no complete request reaching the upstream, or forwarded so that the upstream parses
//! exactly the expected number of well-framed requests and the client well-framed responses.
//! The same table runs against a plain hyper reverse proxy, and the proxy must be at least as
//! strict as hyper case by case (`--nocapture` prints both verdicts).

mod support;

#[path = "smuggling/reference.rs"]
mod reference;
#[path = "smuggling/strict.rs"]
mod strict;
#[path = "smuggling/upstream.rs"]
mod upstream;

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use upstream::{Received, Upstream};

/// What a case allows.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Refused with this status before anything reached the upstream.
    Reject(u16),
    /// Refused (an error status or a closed connection) before any complete request reached
    /// the upstream: a body error found after the head was read.
    Cut,
    /// Forwarded as exactly this many well-framed requests.
    Forward(usize),
    /// Either of `Reject` and `Forward`: both are safe, RFC 9112 allows both.
    Either(u16, usize),
    /// Either of `Cut` and `Forward`.
    CutOr(usize),
}

impl Want {
    /// Final responses the client should get before it stops waiting.
    fn responses(self) -> usize {
        match self {
            Want::Reject(_) | Want::Cut => 1,
            Want::Forward(n) | Want::Either(_, n) | Want::CutOr(n) => n.max(1),
        }
    }

    fn allows(self, v: &Verdict) -> bool {
        match (self, v) {
            (Want::Reject(want) | Want::Either(want, _), Verdict::Rejected(Some(got))) => {
                want == *got
            }
            (Want::Cut | Want::CutOr(_), Verdict::Rejected(got)) => got.is_none_or(|s| s >= 400),
            (
                Want::Forward(want) | Want::Either(_, want) | Want::CutOr(want),
                Verdict::Forwarded(got),
            ) => want == *got,
            _ => false,
        }
    }
}

/// What a proxy did with a case.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// No complete request reached the upstream; the client got this status (or none).
    Rejected(Option<u16>),
    /// The upstream parsed this many well-framed requests.
    Forwarded(usize),
    /// Something ambiguous got through, or a smuggled request or response.
    Unsafe(String),
}

impl Verdict {
    /// Higher is stricter: unsafe, then forwarded, then rejected (how many requests are
    /// forwarded is for the case to say).
    fn strictness(&self) -> u8 {
        match self {
            Verdict::Unsafe(_) => 0,
            Verdict::Forwarded(_) => 1,
            Verdict::Rejected(_) => 2,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Rejected(Some(s)) => write!(f, "rejected {s}"),
            Verdict::Rejected(None) => write!(f, "cut (closed)"),
            Verdict::Forwarded(n) => write!(f, "forwarded {n}"),
            Verdict::Unsafe(why) => write!(f, "UNSAFE: {why}"),
        }
    }
}

/// One raw exchange.
struct Case {
    name: &'static str,
    send: Vec<u8>,
    want: Want,
}

const HOST: &str = "Host: catalog\r\n";

/// A chunked encoding of `data` as one chunk and the last chunk.
fn chunked(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n0\r\n\r\n", data.len())
}

/// A request that must never reach the upstream as a request of its own.
fn smuggled() -> String {
    format!("GET /smuggled HTTP/1.1\r\n{HOST}\r\n")
}

fn post(headers: &str, body: &str) -> String {
    format!("POST / HTTP/1.1\r\n{HOST}{headers}\r\n{body}")
}

fn cases() -> Vec<Case> {
    use Want::*;
    let te = "Transfer-Encoding: chunked\r\n";
    let hello = "5\r\nhello\r\n0\r\n\r\n";
    let second = format!("GET /second HTTP/1.1\r\n{HOST}\r\n");
    let case = |name, send: String, want| Case {
        name,
        send: send.into_bytes(),
        want,
    };
    let mut cases = vec![
        // Clean messages, as a baseline.
        case("get", format!("GET / HTTP/1.1\r\n{HOST}\r\n"), Forward(1)),
        case(
            "post-length",
            post("Content-Length: 5\r\n", "hello"),
            Forward(1),
        ),
        case("post-chunked", post(te, hello), Forward(1)),
        // Content-Length with Transfer-Encoding (CL.TE and TE.CL).
        case(
            "cl-then-te",
            post(
                &format!("Content-Length: 6\r\n{te}"),
                &format!("0\r\n\r\n{}", smuggled()),
            ),
            Either(400, 1),
        ),
        case(
            "te-then-cl",
            post(&format!("{te}Content-Length: 3\r\n"), &chunked(&smuggled())),
            Either(400, 1),
        ),
        // Content-Length values.
        case(
            "cl-twice-equal",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            Either(400, 1),
        ),
        case(
            "cl-twice-different",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            Reject(400),
        ),
        case(
            "cl-list",
            post("Content-Length: 5, 5\r\n", "hello"),
            Either(400, 1),
        ),
        case(
            "cl-plus",
            post("Content-Length: +5\r\n", "hello"),
            Reject(400),
        ),
        case(
            "cl-minus",
            post("Content-Length: -5\r\n", "hello"),
            Reject(400),
        ),
        case(
            "cl-hex",
            post("Content-Length: 0x5\r\n", "hello"),
            Reject(400),
        ),
        case(
            "cl-inner-space",
            post("Content-Length: 5 5\r\n", "hello"),
            Reject(400),
        ),
        case(
            "cl-ows",
            post("Content-Length: \t 5 \t\r\n", "hello"),
            Forward(1),
        ),
        case(
            "cl-overflow",
            post("Content-Length: 18446744073709551621\r\n", "hello"),
            Reject(400),
        ),
        case(
            "cl-empty",
            post("Content-Length: \r\n", "hello"),
            Reject(400),
        ),
        case(
            "cl-on-get-hides-request",
            format!(
                "GET / HTTP/1.1\r\n{HOST}Content-Length: {}\r\n\r\n{}",
                smuggled().len(),
                smuggled()
            ),
            Forward(1),
        ),
        // Transfer-Encoding values.
        case(
            "te-chunked-identity",
            post("Transfer-Encoding: chunked, identity\r\n", hello),
            Reject(400),
        ),
        case(
            "te-identity-chunked",
            post("Transfer-Encoding: identity, chunked\r\n", hello),
            Either(400, 1),
        ),
        case(
            "te-upper-case",
            post("Transfer-Encoding: CHUNKED\r\n", hello),
            Either(400, 1),
        ),
        case(
            "te-ows",
            post("Transfer-Encoding: \t chunked \t\r\n", hello),
            Either(400, 1),
        ),
        case(
            "te-xchunked",
            post("Transfer-Encoding: xchunked\r\n", hello),
            Reject(400),
        ),
        case(
            "te-two-fields",
            post(&format!("{te}{te}"), hello),
            Either(400, 1),
        ),
        case(
            "te-chunked-twice",
            post("Transfer-Encoding: chunked, chunked\r\n", hello),
            Either(400, 1),
        ),
        case(
            "te-http10",
            format!("POST / HTTP/1.0\r\n{HOST}{te}\r\n{hello}"),
            Reject(400),
        ),
        case(
            "te-and-cl-http10",
            format!("POST / HTTP/1.0\r\n{HOST}{te}Content-Length: 5\r\n\r\n{hello}"),
            Reject(400),
        ),
        // Field syntax.
        case(
            "te-obs-fold",
            post("Transfer-Encoding:\r\n chunked\r\n", hello),
            Reject(400),
        ),
        case(
            "obs-fold",
            post("X-Note: a\r\n b\r\nContent-Length: 5\r\n", "hello"),
            Reject(400),
        ),
        case(
            "te-space-before-colon",
            post("Transfer-Encoding : chunked\r\n", hello),
            Reject(400),
        ),
        case(
            "cl-space-before-colon",
            post("Content-Length : 5\r\n", "hello"),
            Reject(400),
        ),
        case(
            "host-tab-before-colon",
            "GET / HTTP/1.1\r\nHost\t: catalog\r\n\r\n".into(),
            Reject(400),
        ),
        case("nul-in-value", post("X-Note: a\0b\r\n", ""), Reject(400)),
        case("ctl-in-value", post("X-Note: a\x01b\r\n", ""), Reject(400)),
        case("del-in-value", post("X-Note: a\x7fb\r\n", ""), Reject(400)),
        case(
            "bare-cr-in-value",
            post("X-Note: a\rb\r\n", ""),
            Reject(400),
        ),
        case("bad-name", post("X(Note): a\r\n", ""), Reject(400)),
        case("empty-name", post(": a\r\n", ""), Reject(400)),
        case(
            "space-in-target",
            format!("GET /a b HTTP/1.1\r\n{HOST}\r\n"),
            Reject(400),
        ),
        case(
            "bare-lf-head",
            "GET / HTTP/1.1\nHost: catalog\n\n".into(),
            Either(400, 1),
        ),
        case(
            "bare-lf-some-lines",
            "POST / HTTP/1.1\r\nHost: catalog\nContent-Length: 5\r\n\r\nhello".into(),
            Either(400, 1),
        ),
        // Invalid chunk sizes and extensions.
        case("chunk-negative", post(te, "-5\r\nhello\r\n0\r\n\r\n"), Cut),
        case(
            "chunk-hex-overflow",
            post(te, "10000000000000005\r\nhello\r\n0\r\n\r\n"),
            Cut,
        ),
        case("chunk-0x", post(te, "0x5\r\nhello\r\n0\r\n\r\n"), Cut),
        case(
            "chunk-space-after",
            post(te, "5 \r\nhello\r\n0\r\n\r\n"),
            CutOr(1),
        ),
        case(
            "chunk-space-inside",
            post(te, "5 5\r\nhello\r\n0\r\n\r\n"),
            Cut,
        ),
        case(
            "chunk-space-before",
            post(te, " 5\r\nhello\r\n0\r\n\r\n"),
            Cut,
        ),
        case(
            "chunk-leading-zeros",
            post(te, "0005\r\nhello\r\n000\r\n\r\n"),
            Forward(1),
        ),
        case(
            "chunk-ext",
            post(te, "5;name=value\r\nhello\r\n0;last\r\n\r\n"),
            Forward(1),
        ),
        case(
            "chunk-ext-quoted",
            post(te, "5;name=\"a;b\"\r\nhello\r\n0\r\n\r\n"),
            CutOr(1),
        ),
        case(
            "chunk-ext-oversized",
            post(
                te,
                &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(64 * 1024)),
            ),
            CutOr(1),
        ),
        case(
            "chunk-ext-ctl",
            post(te, "5;a\x01b\r\nhello\r\n0\r\n\r\n"),
            CutOr(1),
        ),
        case(
            "chunk-bare-lf-size",
            post(te, "5\nhello\r\n0\r\n\r\n"),
            CutOr(1),
        ),
        case(
            "chunk-bare-lf-data",
            post(te, "5\r\nhello\n0\r\n\r\n"),
            CutOr(1),
        ),
        case(
            "chunk-data-too-long",
            post(te, "3\r\nhello\r\n0\r\n\r\n"),
            Cut,
        ),
        case("chunk-oversized", post(te, "fffffffffffff\r\nhello"), Cut),
        case("chunk-no-final-crlf", post(te, "5\r\nhello\r\n0\r\n"), Cut),
        case(
            "chunk-request-as-trailer",
            post(te, &format!("5\r\nhello\r\n0\r\n{}", smuggled())),
            CutOr(1),
        ),
        case(
            "chunk-trailer",
            post(te, "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"),
            Forward(1),
        ),
        // Expect: 100-continue.
        case(
            "expect-continue-body",
            post("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello"),
            Forward(1),
        ),
        case(
            "expect-continue-no-body",
            format!("GET / HTTP/1.1\r\n{HOST}Expect: 100-continue\r\n\r\n"),
            Forward(1),
        ),
        case(
            "expect-continue-http10",
            format!(
                "POST / HTTP/1.0\r\n{HOST}Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
            ),
            Forward(1),
        ),
        case(
            "expect-unknown",
            post("Expect: teapot\r\nContent-Length: 5\r\n", "hello"),
            Either(417, 1),
        ),
        case(
            "expect-continue-then-pipelined",
            format!(
                "{}{second}",
                post("Expect: 100-continue\r\nContent-Length: 0\r\n", "")
            ),
            Forward(2),
        ),
        // HTTP/1.0 and pipelining.
        case(
            "http10-keep-alive",
            format!(
                "GET / HTTP/1.0\r\n{HOST}Connection: keep-alive\r\n\r\nGET /second HTTP/1.0\r\n{HOST}\r\n"
            ),
            Forward(2),
        ),
        case(
            "http10-closes",
            format!("GET / HTTP/1.0\r\n{HOST}\r\n{}", smuggled()),
            Forward(1),
        ),
        case(
            "http10-no-host",
            "GET / HTTP/1.0\r\n\r\n".into(),
            Either(400, 1),
        ),
        case(
            "pipelined-two",
            format!("GET / HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "pipelined-after-length",
            format!("{}{second}", post("Content-Length: 5\r\n", "hello")),
            Forward(2),
        ),
        case(
            "pipelined-after-chunked",
            format!("{}{second}", post(te, hello)),
            Forward(2),
        ),
        case(
            "pipelined-after-close",
            format!(
                "GET / HTTP/1.1\r\n{HOST}Connection: close\r\n\r\n{}",
                smuggled()
            ),
            Forward(1),
        ),
        // Targets and authorities.
        case(
            "absolute-form",
            "GET http://catalog/ HTTP/1.1\r\nHost: catalog\r\n\r\n".into(),
            Forward(1),
        ),
        case(
            "absolute-form-other-host",
            "GET http://catalog/ HTTP/1.1\r\nHost: evil.example\r\n\r\n".into(),
            Either(400, 1),
        ),
        case(
            "two-hosts",
            "GET / HTTP/1.1\r\nHost: catalog\r\nHost: evil.example\r\n\r\n".into(),
            Reject(400),
        ),
        case("no-host", "GET / HTTP/1.1\r\n\r\n".into(), Reject(400)),
        case(
            "absolute-form-no-host",
            "GET http://catalog/ HTTP/1.1\r\n\r\n".into(),
            Forward(1),
        ),
        case(
            "version-1-2",
            format!("GET / HTTP/1.2\r\n{HOST}\r\n"),
            Reject(400),
        ),
        // What the upstream answers.
        case(
            "response-unframed",
            format!("GET /resp/unframed HTTP/1.1\r\n{HOST}\r\n"),
            Forward(1),
        ),
        case(
            "response-cl-and-te",
            format!("GET /resp/cl-te HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "response-two-cl",
            format!("GET /resp/cl-cl HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "response-1xx-first",
            format!("GET /resp/1xx HTTP/1.1\r\n{HOST}\r\n"),
            Forward(1),
        ),
        case(
            "response-cl-signed",
            format!("GET /resp/cl-signed HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "response-te-in-http10",
            format!("GET /resp/te-http10 HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "response-obs-fold",
            format!("GET /resp/obs-fold HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "response-space-before-colon",
            format!("GET /resp/space-colon HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
        case(
            "response-chunked-trailers-then-reuse",
            format!("GET /resp/trailers HTTP/1.1\r\n{HOST}\r\n{second}"),
            Forward(2),
        ),
    ];
    cases.shrink_to_fit();
    cases
}

/// What the client received.
struct Client {
    bytes: Vec<u8>,
    eof: bool,
}

/// Sends `case` on a fresh connection to `addr` and reads until the connection closes, or
/// the responses the case expects are in and nothing more comes for a moment, or nothing
/// comes for longer (a proxy waiting for the rest of a body).
async fn exchange(addr: SocketAddr, case: &Case) -> Client {
    let minor = minor(&case.send);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut got = Client {
        bytes: Vec::new(),
        eof: false,
    };
    let _ = s.write_all(&case.send).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        let done = strict::responses(&got.bytes, minor, false)
            .is_ok_and(|(r, partial)| r.len() >= case.want.responses() && !partial);
        let wait = Duration::from_millis(if done { 150 } else { 1000 });
        match tokio::time::timeout(wait, s.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => {
                got.eof = true;
                break;
            }
            Ok(Ok(n)) => got.bytes.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    got
}

/// The minor HTTP version of the case's first request.
fn minor(send: &[u8]) -> u8 {
    let line = send.split(|b| *b == b'\n').next().unwrap_or_default();
    u8::from(!line.windows(8).any(|w| w == b"HTTP/1.0"))
}

/// The verdict on what the client and the upstream saw.
fn verdict(case: &Case, client: &Client, upstream: &Received) -> Verdict {
    let responses = match strict::responses(&client.bytes, minor(&case.send), client.eof) {
        Ok((_, true)) => {
            return Verdict::Unsafe("client got a response that never completed".into());
        }
        Ok((r, _)) => r,
        Err(e) => return Verdict::Unsafe(format!("client got {e}")),
    };
    if client.bytes.windows(8).any(|w| w == b"smuggled") {
        return Verdict::Unsafe("client got the smuggled response".into());
    }
    if let Some(v) = upstream.violations.first() {
        return Verdict::Unsafe(format!("upstream got {v}"));
    }
    if upstream.smuggled() > 0 {
        return Verdict::Unsafe("upstream got the smuggled request".into());
    }
    match upstream.requests.len() {
        0 => Verdict::Rejected(responses.first().map(|r| r.status)),
        n => Verdict::Forwarded(n),
    }
}

/// Runs `case` against the proxy at `addr` in front of `upstream`.
async fn run(addr: SocketAddr, upstream: &Upstream, case: &Case) -> (Verdict, Client, Received) {
    let client = exchange(addr, case).await;
    // The client has its answers (or gave up): whatever the proxy forwarded is in.
    let got = upstream.take();
    (verdict(case, &client, &got), client, got)
}

const VIP: &str = "10.96.0.10:80";

#[tokio::test]
async fn desync_attempts_are_rejected_or_forwarded_well_framed_at_least_as_strictly_as_hyper() {
    let cases = cases();
    assert!(cases.len() >= 30);
    let (ours, theirs) = (Upstream::start().await, Upstream::start().await);
    let proxy = support::Proxy::start(support::model(&ours.catalog()));
    let sluice = proxy.outbound(VIP).await;
    let hyper = reference::start(theirs.addr).await;

    let mut failures = Vec::new();
    println!("{:<32} {:<12} {:<28} hyper", "case", "allowed", "sluice");
    for case in &cases {
        let ((v, client, got), (h, _, _)) =
            tokio::join!(run(sluice, &ours, case), run(hyper, &theirs, case));
        println!(
            "{:<32} {:<12} {:<28} {h}",
            case.name,
            format!("{:?}", case.want),
            v.to_string()
        );
        if !case.want.allows(&v) || v.strictness() < h.strictness() {
            failures.push(format!(
                "{}: allowed {:?}, sluice {v}, hyper {h}\n  sent {:?}\n  client got {:?}\n  upstream got {:?}",
                case.name,
                case.want,
                String::from_utf8_lossy(&case.send),
                String::from_utf8_lossy(&client.bytes),
                got.raw
                    .values()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
