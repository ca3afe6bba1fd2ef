//! One pooled upstream connection's life: the requests it carries now and in
//! all, and the task that drives it and closes it when it has been idle for
//! the idle timeout, has served its last request, or has outlived its
//! maximum duration (then once its requests are done).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::super::{Body, BoxError};
use super::h1;
use crate::cluster::{ConnectionPolicy, Permit};

/// `active` of a connection that is closed or closing.
const CLOSED: u32 = u32::MAX;
/// The shortest pause of a keeper ([`keep`]) between looks at a busy connection.
const BUSY_RECHECK: Duration = Duration::from_millis(50);

/// The connections of one endpoint, cluster and HTTP version, and the
/// requests waiting for one of them.
#[derive(Debug, Default)]
pub struct Slot {
    /// Connections open or being opened.
    pub open: AtomicU32,
    /// Woken when a connection becomes free, closes or is opened.
    pub freed: Notify,
    /// Pooled connections.
    pub conns: Mutex<Conns>,
}

/// The senders of a slot's connections.
#[derive(Debug, Default)]
pub struct Conns {
    /// HTTP/1.1 connections not sending a request (some still reading a response).
    pub h1: Vec<(http1::SendRequest<Body>, Arc<ConnState>)>,
    /// The HTTP/2 connections, multiplexed: a request goes on the first with a stream free
    /// (by the server's `SETTINGS_MAX_CONCURRENT_STREAMS`), another is opened when all are full.
    pub h2: Vec<(H2Sender, Arc<ConnState>)>,
    /// An HTTP/2 connection is being opened: wait for it rather than open another.
    pub h2_connecting: bool,
    /// The proxy's own HTTP/1.1 connections that are idle.
    #[expect(
        clippy::vec_box,
        reason = "a connection moves between this list and its requests: boxed once, a pointer moves"
    )]
    pub own: Vec<Box<h1::Conn>>,
}

/// The sender of an HTTP/2 connection, and how many streams its server takes at once now
/// (`SETTINGS_MAX_CONCURRENT_STREAMS`, as the connection last heard).
#[derive(Clone)]
pub struct H2Sender {
    /// Sends requests.
    pub send: http2::SendRequest<Body>,
    /// The server's stream limit.
    pub streams: Arc<dyn Fn() -> u32 + Send + Sync>,
}

impl std::fmt::Debug for H2Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Sender")
            .field("streams", &(self.streams)())
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Locks the senders.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, state: &Arc<ConnState>) {
        let mut conns = self.lock();
        conns.h1.retain(|(_, s)| !Arc::ptr_eq(s, state));
        conns.h2.retain(|(_, s)| !Arc::ptr_eq(s, state));
        conns.own.retain(|c| !Arc::ptr_eq(c.state(), state));
    }
}

/// What a connection's users and its driver share.
#[derive(Debug)]
pub struct ConnState {
    /// Requests in flight (until their response body ends), or [`CLOSED`].
    active: AtomicU32,
    /// Requests started on it.
    served: AtomicU32,
    /// Takes no new requests.
    retired: AtomicBool,
    /// When it last became idle, in ms since it opened.
    idle_since: AtomicU64,
    /// Woken when the last request in flight ends.
    idle: Notify,
    opened: Instant,
    policy: ConnectionPolicy,
    slot: Arc<Slot>,
    /// A driver task waits for the connection to become idle ([`drive`]); the keeper of
    /// one of the proxy's own connections ([`keep`]) does not.
    driven: bool,
}

impl ConnState {
    /// The state of a connection opened now in `slot`.
    pub fn new(policy: ConnectionPolicy, slot: Arc<Slot>) -> Arc<ConnState> {
        ConnState::with_driver(policy, slot, true)
    }

    /// The state of one of the proxy's own HTTP/1.1 connections opened now in `slot`
    /// (watched by [`keep`]).
    pub fn own(policy: ConnectionPolicy, slot: Arc<Slot>) -> Arc<ConnState> {
        ConnState::with_driver(policy, slot, false)
    }

    fn with_driver(policy: ConnectionPolicy, slot: Arc<Slot>, driven: bool) -> Arc<ConnState> {
        Arc::new(ConnState {
            active: AtomicU32::new(0),
            served: AtomicU32::new(0),
            retired: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            idle: Notify::new(),
            opened: Instant::now(),
            policy,
            slot,
            driven,
        })
    }

    /// Takes the connection for one more request: alone (`exclusive`,
    /// HTTP/1.1) or beside others (HTTP/2). False when it is closed, retired,
    /// busy (exclusive) or has served its maximum.
    pub fn claim(&self, exclusive: bool) -> bool {
        self.claim_up_to(if exclusive { 1 } else { CLOSED - 1 })
    }

    /// Takes the connection for one more request when fewer than `max` are in flight on it
    /// (an HTTP/2 connection's streams); false as [`claim`](Self::claim) is, or when full.
    pub fn claim_up_to(&self, max: u32) -> bool {
        if self.retired.load(Ordering::Acquire) {
            return false;
        }
        let claimed = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| match a {
                CLOSED => None,
                a if a >= max => None,
                a => Some(a + 1),
            })
            .is_ok();
        if !claimed {
            return false;
        }
        let served = self.served.fetch_add(1, Ordering::AcqRel) + 1;
        match self.policy.max_requests {
            Some(max) if served > max => {
                self.release();
                false
            }
            Some(max) if served == max => {
                self.retired.store(true, Ordering::Release);
                true
            }
            _ => true,
        }
    }

    /// Ends one request (its response body ended or was dropped).
    pub fn release(&self) {
        let before = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| match a {
                CLOSED | 0 => None,
                a => Some(a - 1),
            });
        if before == Ok(1) {
            let ms = self.opened.elapsed().as_millis();
            self.idle_since
                .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
            if self.driven {
                self.idle.notify_one();
            }
            self.slot.freed.notify_waiters();
        }
    }

    /// True when it takes no new requests.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// True when it takes no new requests and none are in flight... or it is
    /// closed.
    pub fn is_closed(&self) -> bool {
        self.active.load(Ordering::Acquire) == CLOSED
    }

    /// One of the proxy's own connections was closed (dropped): it no longer counts in its
    /// slot, waiting requests may open another, and its keeper ends.
    pub fn closed(&self) {
        self.active.store(CLOSED, Ordering::Release);
        self.slot.open.fetch_sub(1, Ordering::AcqRel);
        self.slot.freed.notify_waiters();
        self.idle.notify_one();
    }

    /// Retires it once it has outlived its maximum duration; then closes it if idle and due:
    /// retired, or idle for the idle timeout. True when it closed it.
    fn close_if_due(&self) -> bool {
        if self
            .policy
            .max_duration
            .is_some_and(|d| self.opened.elapsed() >= d)
        {
            self.retired.store(true, Ordering::Release);
        }
        let idle_for = self.opened.elapsed().saturating_sub(Duration::from_millis(
            self.idle_since.load(Ordering::Acquire),
        ));
        let due = self.is_retired() || idle_for >= self.policy.idle_timeout;
        let closed = due
            && self
                .active
                .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if closed {
            tracing::debug!(
                served = self.served.load(Ordering::Relaxed),
                "closing upstream connection"
            );
        }
        closed
    }

    /// When the driver should look again, besides when the connection
    /// becomes idle: when an idle one times out, or an old one is due.
    fn next_check(&self) -> Option<Instant> {
        let idle = self.active.load(Ordering::Acquire) == 0;
        let idle_at = idle.then(|| {
            self.opened
                + Duration::from_millis(self.idle_since.load(Ordering::Acquire))
                + self.policy.idle_timeout
        });
        let old_at = self
            .policy
            .max_duration
            .filter(|_| !self.is_retired())
            .map(|d| self.opened + d);
        match (idle_at, old_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Drives a connection until it ends or is closed for being idle, worn out
/// or too old; holds its place in the destination's connection count.
pub async fn drive<F, E>(conn: F, state: Arc<ConnState>, permit: Option<Permit>)
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    loop {
        let idle = state.idle.notified();
        let check = state.next_check();
        let due = async {
            match check {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    tracing::debug!("upstream connection: {e}");
                }
                break;
            }
            () = idle => {}
            () = due => {}
        }
        if state.close_if_due() {
            break;
        }
    }
    state.active.store(CLOSED, Ordering::Release);
    state.slot.forget(&state);
    drop(permit);
    state.slot.open.fetch_sub(1, Ordering::AcqRel);
    state.slot.freed.notify_waiters();
}

/// Watches one of the proxy's own HTTP/1.1 connections: closes it (takes it out of the idle
/// list, which drops it) when it has been idle for the idle timeout or, once idle, has served
/// its last request or outlived its maximum duration; ends when the connection is closed.
/// Unlike [`drive`] it is not woken per request: while the connection is busy it looks again
/// after an idle timeout.
pub async fn keep(state: Arc<ConnState>) {
    loop {
        let closed = state.idle.notified();
        let now = Instant::now();
        // While busy it looks again an idle timeout later (not sooner than BUSY_RECHECK).
        let busy_until = now.checked_add(state.policy.idle_timeout.max(BUSY_RECHECK));
        let at = match state.next_check() {
            Some(at) if state.active.load(Ordering::Acquire) == 0 => Some(at),
            Some(old) => busy_until.map_or(Some(old), |b| Some(b.min(old))),
            None => busy_until,
        };
        tokio::select! {
            () = closed => {}
            () = async {
                match at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        if state.is_closed() {
            return;
        }
        if state.close_if_due() {
            state.slot.forget(&state);
            return;
        }
    }
}

/// A request's claim on its connection, and its place in the destination's
/// count of requests: held by the response body until it ends, released
/// when dropped (also when the request is given up before an answer).
#[derive(Debug)]
pub struct Held {
    state: Arc<ConnState>,
    request: Option<Permit>,
}

impl Held {
    /// The claim of a request that [`ConnState::claim`]ed `state`.
    pub fn claimed(state: Arc<ConnState>) -> Held {
        Held {
            state,
            request: None,
        }
    }

    /// The connection claimed.
    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// Ends the request and gives its connection (one of the proxy's own) back to the idle
    /// list, unless it is retired (then it is closed).
    pub fn give_back(self, conn: Box<h1::Conn>) {
        if self.state.is_retired() {
            drop(conn);
        } else {
            self.state.slot.lock().own.push(conn);
        }
    }

    /// Holds the request's permit too.
    pub fn with_request(mut self, permit: Permit) -> Held {
        self.request = Some(permit);
        self
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.state.release();
    }
}

/// A response body that lets go of its [`Held`] when it ends or is dropped.
pub struct HeldBody {
    inner: Incoming,
    held: Option<Held>,
}

impl HeldBody {
    /// Wraps a response body.
    pub fn wrap(inner: Incoming, held: Held) -> Body {
        Body::new(HeldBody {
            inner,
            held: Some(held),
        })
    }
}

impl hyper::body::Body for HeldBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.held = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_requests: Option<u32>) -> Arc<ConnState> {
        let policy = ConnectionPolicy {
            max_requests,
            ..ConnectionPolicy::default()
        };
        ConnState::new(policy, Arc::default())
    }

    #[test]
    fn claims_by_version_and_request_count() {
        // (max requests, exclusive, claims tried without release, claims that succeed)
        let cases = [
            (None, true, 3, 1),
            (None, false, 3, 3),
            (Some(2), false, 3, 2),
            (Some(1), true, 1, 1),
        ];
        for (max, exclusive, tries, ok) in cases {
            let s = state(max);
            let got = (0..tries).filter(|_| s.claim(exclusive)).count();
            assert_eq!(got, ok, "{max:?} {exclusive}");
        }
        let s = state(Some(2));
        assert!(s.claim(true));
        s.release();
        assert!(
            s.claim(true) && s.is_retired(),
            "the last request retires it"
        );
        s.release();
        assert!(!s.claim(true));
    }

    #[tokio::test]
    async fn an_idle_connection_closes_after_the_idle_timeout() {
        let slot = Arc::new(Slot::default());
        slot.open.fetch_add(1, Ordering::AcqRel);
        let policy = ConnectionPolicy {
            idle_timeout: Duration::from_millis(50),
            ..ConnectionPolicy::default()
        };
        let s = ConnState::new(policy, slot.clone());
        assert!(s.claim(true));
        let driver = tokio::spawn(drive(
            std::future::pending::<Result<(), String>>(),
            s.clone(),
            None,
        ));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(!driver.is_finished(), "busy connections stay");
        s.release();
        tokio::time::timeout(Duration::from_secs(5), driver)
            .await
            .expect("closed once idle")
            .unwrap();
        assert!(s.is_closed() && !s.claim(false));
        assert_eq!(slot.open.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_keeper_closes_an_idle_own_connection_after_the_idle_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (client, _server) = (client.unwrap(), server.unwrap());
        let slot = Arc::new(Slot::default());
        slot.open.fetch_add(1, Ordering::AcqRel);
        let policy = ConnectionPolicy {
            idle_timeout: Duration::from_millis(50),
            ..ConnectionPolicy::default()
        };
        let s = ConnState::own(policy, slot.clone());
        let keeper = tokio::spawn(keep(s.clone()));
        let conn = h1::Conn::new(crate::tls::Stream::Plain(client), s.clone(), None);
        slot.lock().own.push(conn);
        tokio::time::timeout(Duration::from_secs(5), keeper)
            .await
            .expect("closed once idle")
            .unwrap();
        assert!(slot.lock().own.is_empty() && s.is_closed());
        assert_eq!(slot.open.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn an_old_connection_closes_once_its_requests_end() {
        let slot = Arc::new(Slot::default());
        slot.open.fetch_add(1, Ordering::AcqRel);
        let policy = ConnectionPolicy {
            max_duration: Some(Duration::from_millis(30)),
            ..ConnectionPolicy::default()
        };
        let s = ConnState::new(policy, slot);
        assert!(s.claim(false));
        let driver = tokio::spawn(drive(
            std::future::pending::<Result<(), String>>(),
            s.clone(),
            None,
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(s.is_retired() && !driver.is_finished());
        assert!(!s.claim(false), "no new requests on a retired connection");
        s.release();
        tokio::time::timeout(Duration::from_secs(5), driver)
            .await
            .expect("closed once its request ended")
            .unwrap();
    }
}
