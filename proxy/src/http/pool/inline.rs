//! HTTP/1.1 upstream connections driven inline, by the task of the request that uses them
//! (pingora's design): the request is written, the response read and its body streamed from
//! the request's own task, with no driver task and no wake-up of another task per request.
//! Idle in the pool, a connection is watched by the pool's [`Keeper`], which closes it when
//! the upstream closed it or when it is due (idle timeout, maximum duration).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http1};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::conn::{ConnState, Held};
use crate::cluster::Permit;
use crate::http::{Body, BoxError};
use crate::tls::Stream;

/// The connection half of an HTTP/1.1 client connection: reads and writes the socket when
/// polled, completing a protocol upgrade when one is answered.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One HTTP/1.1 upstream connection, polled by whoever holds it.
pub struct Inline {
    sender: http1::SendRequest<Body>,
    /// `None` once the connection ended.
    driver: Option<Driver>,
    state: Arc<ConnState>,
    permit: Option<Permit>,
    keeper: Arc<Keeper>,
}

impl fmt::Debug for Inline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline")
            .field("open", &self.driver.is_some())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Inline {
    /// A connection just handshaken, counted by `permit` in its destination's connections.
    pub fn new(
        sender: http1::SendRequest<Body>,
        conn: http1::Connection<TokioIo<Stream>, Body>,
        state: Arc<ConnState>,
        permit: Option<Permit>,
        keeper: Arc<Keeper>,
    ) -> Inline {
        Inline {
            sender,
            driver: Some(Box::pin(conn.with_upgrades())),
            state,
            permit,
            keeper,
        }
    }

    /// Its shared state.
    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// Makes progress on the socket; ready once the connection ended.
    fn poll_driver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(driver) = self.driver.as_mut() else {
            return Poll::Ready(());
        };
        let Poll::Ready(result) = driver.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        if let Err(e) = result {
            tracing::debug!("upstream connection: {e}");
        }
        self.driver = None;
        Poll::Ready(())
    }

    /// True when the connection ended or takes no more requests.
    pub fn is_done(&self) -> bool {
        self.driver.is_none() || self.sender.is_closed() || self.state.is_closed()
    }

    /// Sends `req` and reads the response head, driving the connection meanwhile. A request
    /// that never left comes back in the error.
    pub async fn send(
        &mut self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Body>>> {
        // Not ready (the upstream closed it while it was idle): hyper gives the request back.
        let ready = std::future::poll_fn(|cx| {
            let _ = self.poll_driver(cx);
            self.sender.poll_ready(cx)
        })
        .await;
        let response = self.sender.try_send_request(req);
        tokio::pin!(response);
        // The connection is driven first, so the answer is often there at the first look; a
        // connection that ended answers its request with why.
        let result = std::future::poll_fn(|cx| {
            let _ = self.poll_driver(cx);
            response.as_mut().poll(cx)
        })
        .await;
        if let Err(e) = ready {
            tracing::debug!("upstream connection not ready: {e}");
        }
        result
    }

    /// Goes back to its pool, idle, when it can serve another request; else closes.
    fn release(self) {
        self.state.retire_if_old();
        if self.is_done() || self.state.is_retired() {
            return;
        }
        let slot = self.state.slot().clone();
        let keeper = self.keeper.clone();
        let due = self.state.due_when_idle();
        slot.lock().h1.push(self);
        keeper.due(due);
    }

    /// Drives an upgraded connection (`101 Switching Protocols`) until hyper hands the socket
    /// over to the tunnel, on a task of its own.
    fn finish_upgrade(mut self) {
        tokio::spawn(async move { std::future::poll_fn(|cx| self.poll_driver(cx)).await });
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        tracing::trace!(served = self.state.served(), "closing upstream connection");
        self.state.end(self.permit.take());
    }
}

/// The response of a request sent on an [`Inline`] connection, the connection joined to its
/// body: polling the body drives the connection, which goes back to the pool once the body
/// ended (closed if the body is dropped before its end).
pub fn respond(resp: Response<Incoming>, conn: Inline, held: Held) -> Response<Body> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.finish_upgrade();
        return resp.map(|body| super::conn::HeldBody::wrap(body, held));
    }
    resp.map(|inner| {
        Body::new(InlineBody {
            inner,
            conn: Some(conn),
            held: Some(held),
        })
    })
}

/// A response body that drives its connection.
struct InlineBody {
    inner: Incoming,
    conn: Option<Inline>,
    held: Option<Held>,
}

impl InlineBody {
    /// The body ended: the connection goes back to the pool before the request's claim is
    /// released (which wakes the requests waiting for a connection).
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.release();
        }
        self.held = None;
    }
}

impl hyper::body::Body for InlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(conn) = this.conn.as_mut() {
            let _ = conn.poll_driver(cx);
        }
        let mut polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_pending()
            && let Some(conn) = this.conn.as_mut()
        {
            // Asking for more may have let the connection read on: once more.
            let _ = conn.poll_driver(cx);
            polled = Pin::new(&mut this.inner).poll_frame(cx);
        }
        match &polled {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => {
                this.conn = None;
                this.held = None;
            }
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for InlineBody {
    fn drop(&mut self) {
        // A body known empty is dropped without being polled: the connection is reusable.
        if self.conn.is_some() && self.inner.is_end_stream() {
            self.finish();
        }
    }
}

/// What a pool's keeper task shares with the connections it watches: its waker, and when it
/// looks next. The task itself is the pool's (see `Pool::keep`); it calls [`Inline::keep`] on
/// each idle connection.
#[derive(Debug)]
pub struct Keeper {
    waker: Mutex<Option<Waker>>,
    /// When it looks next, in ms since `epoch`.
    next_ms: AtomicU64,
    started: AtomicBool,
    epoch: Instant,
}

impl Default for Keeper {
    fn default() -> Keeper {
        Keeper {
            waker: Mutex::default(),
            next_ms: AtomicU64::new(u64::MAX),
            started: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }
}

impl Keeper {
    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// True the first time only: the caller starts the task.
    pub fn start(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }

    /// An idle connection is due at `at`: the keeper looks then, if it would not sooner.
    fn due(&self, at: Instant) {
        if self.ms(at) < self.next_ms.load(Ordering::Acquire)
            && let Some(waker) = self
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
        {
            waker.wake_by_ref();
        }
    }

    /// The keeper task is polled with `cx` and looks again at `next`.
    pub fn polled(&self, cx: &Context<'_>, next: Instant) {
        let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        self.next_ms.store(self.ms(next), Ordering::Release);
    }
}

impl Inline {
    /// The keeper's look at an idle connection, polled with the keeper's `cx` (so that the
    /// upstream closing it wakes the keeper): false when it is to close (ended, or due); else
    /// `next` becomes its next check when that is sooner.
    pub fn keep(&mut self, cx: &mut Context<'_>, next: &mut Instant) -> bool {
        if self.poll_driver(cx).is_ready() || self.sender.is_closed() {
            return false;
        }
        self.state.retire_if_old();
        if self.state.close_if_due() {
            return false;
        }
        if let Some(at) = self.state.next_check() {
            *next = (*next).min(at);
        }
        true
    }
}
