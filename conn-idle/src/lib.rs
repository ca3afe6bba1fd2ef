//! Whether a server connection has requests in flight, and since when it has had none, so a
//! server can close connections idle for longer than a limit: an HTTP/2 client answering
//! keep-alive pings is alive, but a connection nobody sends requests on still holds memory and
//! a descriptor. A request counts as in flight until its response body is done ([`Guarded`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's requests in flight, and since when it has had none.
#[derive(Debug)]
pub struct Idle {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

/// A request in flight on a connection, until dropped (with its response body).
#[derive(Debug)]
pub struct Busy(Arc<Idle>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
    }
}

impl Idle {
    /// A connection opened now, with nothing in flight.
    pub fn new() -> Arc<Idle> {
        Arc::new(Idle {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        })
    }

    /// A request starts; it is in flight until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let since = *self.since.lock().unwrap_or_else(PoisonError::into_inner);
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && since.elapsed() >= limit {
                return;
            }
            let next = if busy {
                Instant::now() + limit
            } else {
                since + limit
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// A response body that holds `G` (a [`Busy`], a place in a limit...) until it is done.
#[derive(Debug)]
pub struct Guarded<B, G> {
    inner: B,
    _guard: G,
}

impl<B, G> Guarded<B, G> {
    /// `inner`, holding `guard` until it is dropped.
    pub fn new(inner: B, guard: G) -> Self {
        Guarded {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin, G: Unpin> Body for Guarded<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_last_body_is_done_and_the_limit_passed() {
        let idle = Idle::new();
        let limit = Duration::from_secs(10);
        let body = Guarded::new(Full::new(Bytes::from_static(b"ok")), idle.start());
        tokio::time::advance(Duration::from_secs(30)).await;
        let waiting = tokio::time::timeout(Duration::from_secs(5), idle.idle_for(limit));
        assert!(waiting.await.is_err(), "busy while the body is held");
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ok");
        let started = tokio::time::Instant::now();
        idle.idle_for(limit).await;
        assert_eq!(
            started.elapsed(),
            limit,
            "idle a full limit after the body ended"
        );
    }
}
