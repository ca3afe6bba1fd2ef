//! The body-read timeout: a request body whose next piece takes longer than the limit ends
//! with an error, whether it is streamed upstream or buffered first (for retries and
//! mirrors), so a client trickling a body cannot hold a request open forever.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::BoxError;

/// The body-read timeout of a client connection, lent to each request as an extension by
/// [`super::serve_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

/// A request body that fails once its next frame is late by the body-read timeout.
#[derive(Debug)]
pub struct Timed {
    inner: Incoming,
    limit: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timed {
    /// `body` under `limit` (none: no timeout).
    pub fn new(body: Incoming, limit: Option<BodyTimeout>) -> Timed {
        let limit = limit.map(|BodyTimeout(d)| d);
        Timed {
            inner: body,
            sleep: limit.map(|d| Box::pin(tokio::time::sleep(d))),
            limit,
        }
    }
}

impl hyper::body::Body for Timed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let (Some(sleep), Some(limit)) = (&mut this.sleep, this.limit) {
                    sleep.as_mut().reset(Instant::now() + limit);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let late = this
                    .sleep
                    .as_mut()
                    .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
                if !late {
                    return Poll::Pending;
                }
                let limit = this.limit.unwrap_or_default();
                Poll::Ready(Some(Err(format!(
                    "request body: nothing received for {limit:?} (body-read timeout)"
                )
                .into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
