//! The proxy's own HTTP/1.1 upstream connections: a pooled socket and its reused buffers,
//! checked out by a request's own task, which writes the request and reads the response on
//! it directly (no driver task, no channel per request). The request head is written from
//! the `http` request in one write with the start of its body; the response head is parsed
//! with httparse ([`decode`]); the response body reads the same socket with strict framing
//! and gives the connection back to the pool when it ends cleanly on a connection that may
//! be kept. Upgrades, CONNECT and requests with a Transfer-Encoding of their own keep using
//! hyper's client ([`takes`]).

mod body;
mod decode;
mod encode;
mod write;

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::header::{TRANSFER_ENCODING, UPGRADE};
use http::{Method, Request, Response};
use hyper::body::Body as _;
use tokio::io::{AsyncRead, ReadBuf};

pub use self::body::Receiving;
use self::write::Sending;
use super::conn::{self, ConnState, Slot};
use crate::cluster::{ConnectionPolicy, Permit};
use crate::http::{Body, BoxError, retry};
use crate::tls::Stream;

/// Bytes the read buffer is given room for before a read.
const READ_SIZE: usize = 8 * 1024;

/// True when the proxy's own path sends `req`: HTTP/1.1, neither CONNECT nor an upgrade,
/// and no Transfer-Encoding set by the request's own header operations.
pub fn takes(req: &Request<Body>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.method() != Method::CONNECT
        && !req.headers().contains_key(UPGRADE)
        && !req.headers().contains_key(TRANSFER_ENCODING)
}

/// A pooled upstream connection of the proxy's own path. Dropped, it is closed and no longer
/// counts for its endpoint and destination.
#[derive(Debug)]
pub struct Conn {
    io: Stream,
    /// The read buffer, kept from one response to the next.
    buf: BytesMut,
    /// The write buffer (request heads and body framing), kept likewise.
    out: Vec<u8>,
    /// Scratch space for parsing response heads, kept likewise.
    spans: decode::Spans,
    /// It carried a request before.
    reused: bool,
    state: Arc<ConnState>,
    /// Its place in the destination's connection count.
    _permit: Option<Permit>,
}

impl Conn {
    /// A connection over `io` whose life `state` tracks, counted by `permit` (boxed once, so
    /// that taking it and giving it back moves a pointer).
    pub fn new(io: Stream, state: Arc<ConnState>, permit: Option<Permit>) -> Box<Conn> {
        Box::new(Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            spans: decode::Spans::new(),
            reused: false,
            state,
            _permit: permit,
        })
    }

    /// A connection opened now over `io` in `slot`, counted by `permit`, with its keeper
    /// ([`conn::keep`]) started.
    pub fn open(
        io: Stream,
        policy: ConnectionPolicy,
        slot: &Arc<Slot>,
        permit: Permit,
    ) -> Box<Conn> {
        let state = ConnState::own(policy, slot.clone());
        tokio::spawn(conn::keep(state.clone()));
        Conn::new(io, state, Some(permit))
    }

    /// What the connection's users and its keeper share.
    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// True when an idle connection can take a request: the server has neither closed it
    /// nor sent anything unasked (a read that would block, tried without waiting).
    pub fn is_usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut read = ReadBuf::new(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut read)
            .is_pending()
    }

    /// Reads more of the response into the buffer: the bytes read, 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.state.closed();
    }
}

/// A request that failed, with the request itself when it may be sent again on another
/// connection (see [`send`]).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: BoxError,
    /// The request, untouched.
    pub request: Option<Request<Body>>,
}

/// What went wrong in an exchange.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing to or reading from the upstream.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The response is malformed.
    #[error(transparent)]
    Response(#[from] decode::Error),
    /// The request body failed (the client's side).
    #[error("request body: {0}")]
    Body(BoxError),
    /// The request body did not match its Content-Length.
    #[error("request body does not match its Content-Length")]
    BodyLength,
}

/// Sends `req` on `conn` and reads the response head; the response's body reads the rest
/// from the same connection ([`Receiving::into_body`]). When a connection that served
/// requests before fails without a byte of response, and the request is idempotent or
/// nothing of it was written, and its body was not read, the request comes back in the
/// [`Failure`] to be sent on a fresh connection (the server may have closed the idle
/// connection as the request went out).
pub async fn send(mut conn: Box<Conn>, req: Request<Body>) -> Result<Response<Receiving>, Failure> {
    let (parts, body) = req.into_parts();
    let known = if body.is_end_stream() {
        encode::Known::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => encode::Known::Length(n),
            None => encode::Known::Unknown,
        }
    };
    let framing = encode::head(&parts, known, &mut conn.out);
    let mut sending = Sending::new(framing, body);
    let mut answered = false;
    let mut write_error = None;
    let got = poll_fn(|cx| {
        exchange(
            &mut conn,
            &mut sending,
            &parts.method,
            (&mut answered, &mut write_error),
            cx,
        )
    })
    .await;
    match got {
        Ok(head) => Ok(body::receive(conn, head, sending)),
        Err(error) => {
            // The write's error says more than the read's that followed it.
            let error = write_error.unwrap_or(error);
            let again = conn.reused
                && !answered
                && (retry::is_idempotent(&parts.method) || sending.written() == 0)
                && !matches!(error, Error::Body(_));
            let request = again
                .then(|| sending.unread_body())
                .flatten()
                .map(|body| Request::from_parts(parts, body));
            Err(Failure {
                error: error.into(),
                request,
            })
        }
    }
}

/// Drives the request out and reads until the response head is in. `answered` turns true
/// with the first byte of response; a write that fails on the socket stops the sending and
/// is kept in `write_error`, and the response is still read (a server may answer early and
/// stop reading).
fn exchange(
    conn: &mut Conn,
    sending: &mut Sending,
    method: &Method,
    (answered, write_error): (&mut bool, &mut Option<Error>),
    cx: &mut Context<'_>,
) -> Poll<Result<decode::Head, Error>> {
    if !sending.is_done() {
        let Conn { io, out, .. } = conn;
        match sending.poll(io, out, cx) {
            Poll::Ready(Err(e @ Error::Io(_))) if sending.head_written() => {
                sending.stop();
                *write_error = Some(e);
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            _ if !sending.head_written() => return Poll::Pending,
            _ => {}
        }
    }
    loop {
        if !conn.buf.is_empty()
            && let Some(head) = decode::head(&mut conn.buf, method, &mut conn.spans)?
        {
            return Poll::Ready(Ok(head));
        }
        match conn.poll_fill(cx) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(decode::Error::Incomplete.into())),
            Poll::Ready(Ok(_)) => *answered = true,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => return Poll::Pending,
        }
    }
}
