//! The response body of the proxy's own HTTP/1.1 connection: read from the connection's
//! socket with the framing of the response head (still sending the request body if the
//! server answered before it was all sent), and the connection given back to the pool the
//! moment the body ends cleanly on a connection that may be kept, else closed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use hyper::body::{Frame, SizeHint};

use super::decode::{self, Chunk, Chunked, Framing, Head};
use super::write::Sending;
use super::{Conn, Error};
use crate::http::pool::conn::Held;
use crate::http::{Body, BoxError, empty, full};

/// The body of a response being received, until it is given the request's hold on the
/// connection ([`Receiving::into_body`]).
pub struct Receiving {
    conn: Option<Box<Conn>>,
    /// The request body, when the server answered before it was all sent.
    sending: Option<Sending>,
    framing: Left,
    keep_alive: bool,
    held: Option<Held>,
}

/// What is left of the body.
enum Left {
    Length(u64),
    Chunked(Chunked),
    Close,
}

/// The response whose head is `head`, read on `conn`.
pub fn receive(conn: Box<Conn>, head: Head, sending: Sending) -> Response<Receiving> {
    let framing = match head.framing {
        Framing::Empty => Left::Length(0),
        Framing::Length(n) => Left::Length(n),
        Framing::Chunked => Left::Chunked(Chunked::default()),
        Framing::Close => Left::Close,
    };
    let receiving = Receiving {
        conn: Some(conn),
        keep_alive: head.keep_alive && !sending.stopped(),
        sending: (!sending.is_done()).then_some(sending),
        framing,
        held: None,
    };
    Response::from_parts(head.parts, receiving)
}

impl Receiving {
    /// The body as the proxy forwards it, holding `held` until it ends. A body already all
    /// in the read buffer is taken out at once, and the connection given back before the
    /// response is forwarded.
    pub fn into_body(mut self, held: Held) -> Body {
        self.held = Some(held);
        if self.sending.is_none()
            && let (Left::Length(n), Some(conn)) = (&self.framing, &mut self.conn)
        {
            let n = *n;
            if n == 0 {
                self.finish();
                return empty();
            }
            if conn.buf.len() as u64 >= n {
                let data = conn.buf.split_to(n as usize).freeze();
                self.framing = Left::Length(0);
                self.finish();
                return full(data);
            }
        }
        Body::new(self)
    }

    /// The body ended cleanly: the connection goes back to the pool when nothing is left
    /// over and it may be kept, else it is closed; the request's hold ends.
    fn finish(&mut self) {
        let conn = self.conn.take();
        let held = self.held.take();
        if let (Some(mut conn), Some(held)) = (conn, held) {
            if self.keep_alive && self.sending.is_none() && conn.buf.is_empty() {
                conn.reused = true;
                held.give_back(conn);
            } else {
                drop(conn);
                drop(held);
            }
        }
    }

    /// The body failed: the connection is closed.
    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.sending = None;
        self.held = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl hyper::body::Body for Receiving {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(sending) = &mut this.sending {
                let Conn { io, out, .. } = &mut **conn;
                match sending.poll(io, out, cx) {
                    Poll::Ready(Ok(())) => this.sending = None,
                    // The server stopped reading: its answer may still come whole.
                    Poll::Ready(Err(Error::Io(_))) => {
                        this.sending = None;
                        this.keep_alive = false;
                    }
                    Poll::Ready(Err(e)) => return this.fail(e),
                    Poll::Pending => {}
                }
            }
            let frame = match &mut this.framing {
                Left::Length(0) => None,
                Left::Length(left) => (!conn.buf.is_empty()).then(|| {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    *left -= n as u64;
                    Ok(Some(Frame::data(conn.buf.split_to(n).freeze())))
                }),
                Left::Chunked(chunked) => match chunked.decode(&mut conn.buf) {
                    Ok(Some(Chunk::Data(data))) => Some(Ok(Some(Frame::data(data)))),
                    Ok(Some(Chunk::Trailers(t))) => Some(Ok(Some(Frame::trailers(t)))),
                    Ok(Some(Chunk::End)) => Some(Ok(None)),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                },
                Left::Close => {
                    (!conn.buf.is_empty()).then(|| Ok(Some(Frame::data(conn.buf.split().freeze()))))
                }
            };
            let done = match &this.framing {
                Left::Length(left) => *left == 0,
                Left::Chunked(c) => c.is_done(),
                Left::Close => false,
            };
            match frame {
                Some(Ok(frame)) => {
                    if done {
                        this.finish();
                    }
                    return Poll::Ready(frame.map(Ok));
                }
                Some(Err(e)) => return this.fail(e),
                None if done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                None => {}
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) if matches!(this.framing, Left::Close) => {
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return this.fail(Error::from(decode::Error::Incomplete)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(Error::from(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.framing, Left::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Left::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
