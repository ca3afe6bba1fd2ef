//! Sending a request on the proxy's own HTTP/1.1 connection: the head already in the
//! connection's write buffer, then the body's frames as they come, framed as the head says
//! (small frames gathered with the head into one write, large ones written as they are).

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use hyper::body::Body as _;
use tokio::io::AsyncWrite;

use super::Error;
use super::encode::{self, Framing};
use crate::http::Body;
use crate::tls::Stream;

/// Frames up to this size are copied into the write buffer (so a small body goes with the
/// head in one write); larger ones are written from their own bytes.
const COPY_UP_TO: usize = 8 * 1024;
/// No more frames are gathered while this much is waiting to be written.
const HIGH_WATER: usize = 64 * 1024;

/// A request on its way out.
pub struct Sending {
    framing: Framing,
    /// The body, until it ended (`None` from the start when the framing sends none).
    body: Option<Body>,
    /// The body was polled (it can no longer be sent again as it is).
    polled: bool,
    /// All of the body is in the write buffer or written.
    ended: bool,
    /// Bytes of the write buffer already written.
    pos: usize,
    /// A large frame to write after the write buffer.
    pending: Bytes,
    /// Bytes written in all.
    written: usize,
    /// The head's length (it is the start of the write buffer).
    head: usize,
    done: bool,
    /// Given up after a failed write: the connection cannot carry another request.
    stopped: bool,
}

impl Sending {
    /// The sending of `body` framed as `framing`, after the head in the write buffer.
    pub fn new(framing: Framing, body: Body) -> Sending {
        let sends_body = framing != Framing::Length(0);
        Sending {
            framing,
            ended: !sends_body,
            body: Some(body),
            polled: false,
            pos: 0,
            pending: Bytes::new(),
            written: 0,
            head: usize::MAX,
            done: false,
            stopped: false,
        }
    }

    /// True once everything is written and flushed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Gives up sending (a write failed): done, and the connection is not to be reused.
    pub fn stop(&mut self) {
        self.done = true;
        self.stopped = true;
    }

    /// True when sending was given up.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// True once the head is written.
    pub fn head_written(&self) -> bool {
        self.written >= self.head
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The body, when it was never read.
    pub fn unread_body(&mut self) -> Option<Body> {
        if self.polled { None } else { self.body.take() }
    }

    /// Writes the head and as much of the body as is available; ready once all is written.
    pub fn poll(
        &mut self,
        io: &mut Stream,
        out: &mut Vec<u8>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if self.head == usize::MAX {
            self.head = out.len();
        }
        loop {
            while !self.ended && self.pending.is_empty() && out.len() - self.pos < HIGH_WATER {
                let Some(body) = self.body.as_mut() else {
                    break;
                };
                self.polled = true;
                match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => self.data(data, out)?,
                        Err(frame) => self.end(frame.trailers_ref(), out)?,
                    },
                    Poll::Ready(None) => self.end(None, out)?,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Error::Body(e))),
                }
            }
            let queued = &out[self.pos..];
            if queued.is_empty() && self.pending.is_empty() {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                if self.ended {
                    // A body never read stays: the request may be sent again with it.
                    if self.polled {
                        self.body = None;
                    }
                    self.done = true;
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            }
            let n = if self.pending.is_empty() {
                ready!(Pin::new(&mut *io).poll_write(cx, queued))?
            } else if queued.is_empty() {
                ready!(Pin::new(&mut *io).poll_write(cx, &self.pending))?
            } else {
                let slices = [IoSlice::new(queued), IoSlice::new(&self.pending)];
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?
            };
            if n == 0 {
                return Poll::Ready(Err(
                    std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                ));
            }
            self.written += n;
            let from_out = n.min(queued.len());
            self.pos += from_out;
            self.pending.advance(n - from_out);
            if self.pos == out.len() {
                out.clear();
                self.pos = 0;
            }
        }
    }

    /// Queues a data frame.
    fn data(&mut self, data: Bytes, out: &mut Vec<u8>) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.framing {
            Framing::Length(left) => {
                *left = left
                    .checked_sub(data.len() as u64)
                    .ok_or(Error::BodyLength)?;
                if data.len() <= COPY_UP_TO {
                    out.extend_from_slice(&data);
                } else {
                    self.pending = data;
                }
            }
            Framing::Chunked(_) => encode::chunk(&data, out),
        }
        Ok(())
    }

    /// Queues the end of the body, with its trailers when chunked.
    fn end(&mut self, trailers: Option<&http::HeaderMap>, out: &mut Vec<u8>) -> Result<(), Error> {
        match &self.framing {
            Framing::Length(0) => {}
            Framing::Length(_) => return Err(Error::BodyLength),
            Framing::Chunked(announced) => encode::last_chunk(trailers, announced, out),
        }
        self.ended = true;
        Ok(())
    }
}
