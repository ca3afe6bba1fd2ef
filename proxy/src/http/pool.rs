//! Upstream connections, pooled per endpoint address and destination (so
//! they outlive config versions and each destination's limits and policy
//! apply to its own connections): HTTP/1.1 connections reused one request at
//! a time, multiplexed HTTP/2 connections per endpoint (another opened when the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` are all in use). Requests beyond
//! the destination's circuit-breaker thresholds are refused or wait for a
//! connection, as in Envoy's connection pools. Connections to the app made
//! from a client's own address (tproxy mode) are pooled per client, as with
//! Envoy's `original_src`: never shared with another client.
//!
//! HTTP/1.1 requests go on the proxy's own connections ([`h1`]), written and read by the
//! request's task; upgrades and CONNECT on hyper's HTTP/1.1 client.

mod conn;
mod h1;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use self::conn::{ConnState, Conns, H2Sender, Held, HeldBody, Slot};
use super::Body;
use crate::cluster::{Cluster, Limit, Overflow, Permit};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::tcp::{self, OriginalSrc};
use crate::tls::{Alpn, Stream, Tls};

/// No limit on the streams of one HTTP/2 connection (beyond the server's own, which its
/// connection enforces by queueing).
const UNLIMITED_STREAMS: u32 = u32::MAX - 1;

/// HTTP/2 upstream connections, set explicitly rather than left to the library: the
/// flow-control window of each stream (as the client-facing side's default)...
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
/// ...and of each connection...
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// ...the largest frame accepted...
const H2_MAX_FRAME: u32 = 64 * 1024;
/// ...the largest response header list accepted...
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;
/// ...and the streams assumed until the server's SETTINGS say how many it takes.
const H2_INITIAL_STREAMS: usize = 100;

/// The HTTP version spoken upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// How the pool reaches an address.
#[derive(Clone, Copy, Debug)]
pub enum Dial {
    /// Connect to the address (outbound: endpoints of the mesh).
    Direct,
    /// Connect to the app in this pod (inbound): see [`tcp::connect_app`], from the client's
    /// address when a request gives one ([`Pool::send_from`]).
    App,
}

/// Where a request goes: the endpoint, the version spoken, and the
/// destination whose limits and connection policy apply.
#[derive(Clone, Copy, Debug)]
pub struct Upstream<'a> {
    /// The endpoint.
    pub addr: SocketAddr,
    /// HTTP/1.1 or HTTP/2.
    pub version: Version,
    /// Longest wait for a new connection.
    pub connect_timeout: Duration,
    /// The destination (service, subset, port).
    pub cluster: &'a Cluster,
}

/// A request that failed, with the request itself when it never left.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: ProxyError,
    /// The request, when it was not sent (safe to send elsewhere).
    pub request: Option<Request<Body>>,
}

/// The connections of one endpoint of one destination, per version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    addr: SocketAddr,
    from: Option<OriginalSrc>,
    cluster: u64,
    tls: u64,
    version: Version,
}

/// Pooled upstream connections.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dial: Dial,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    metrics: Arc<Metrics>,
}

/// A connection taken for one request.
enum Taken {
    H1(http1::SendRequest<Body>, Held),
    H2(http2::SendRequest<Body>, Held),
    Own(Box<h1::Conn>, Held),
}

/// Which of a slot's connections a request takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// hyper's HTTP/1.1 client (upgrades, CONNECT).
    H1,
    /// HTTP/2.
    H2,
    /// The proxy's own HTTP/1.1 connections.
    Own,
}

impl Kind {
    fn of(version: Version, req: &Request<Body>) -> Kind {
        match version {
            Version::Http1 if h1::takes(req) => Kind::Own,
            Version::Http1 => Kind::H1,
            Version::Http2 => Kind::H2,
        }
    }
}

/// A response head and what holds its connection.
enum Sent {
    Hyper(Response<hyper::body::Incoming>, Held),
    Own(Response<h1::Receiving>, Held),
}

impl Pool {
    /// An empty pool that reaches addresses with `dial` and counts overflows in `metrics`.
    pub fn new(dial: Dial, metrics: Arc<Metrics>) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                dial,
                slots: Mutex::default(),
                metrics,
            }),
        }
    }

    /// Sends a request on a pooled connection when one is free, else on a
    /// new one when the destination may open one, else when one is freed.
    pub async fn send(
        &self,
        to: &Upstream<'_>,
        req: Request<Body>,
    ) -> Result<Response<Body>, Box<Failed>> {
        self.send_from(to, None, req).await
    }

    /// [`send`](Self::send) for one client: with `from`, on connections opened from the
    /// client's own address, which serve no other client.
    pub async fn send_from(
        &self,
        to: &Upstream<'_>,
        from: Option<OriginalSrc>,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Box<Failed>> {
        let request = match self.admit(to.cluster, Limit::Requests) {
            Ok(p) => p,
            Err(o) => return Err(overflow(o, req)),
        };
        let slot = self.slot(to, from);
        let kind = Kind::of(to.version, &req);
        let mut pending: Option<Permit> = None;
        let mut queued = false;
        // A request that failed on a reused connection of the proxy's own goes once more, on
        // a fresh connection.
        let mut fresh = false;
        loop {
            let freed = slot.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(taken) = (!fresh).then(|| take(&slot, kind)).flatten() {
                match self.send_on(to, &slot, taken, req).await {
                    Ok(resp) => return Ok(with_held(resp, request)),
                    Err(failed) => match failed.request {
                        // A pooled connection went away before the request left: another.
                        Some(r) => {
                            fresh = kind == Kind::Own;
                            req = r;
                            continue;
                        }
                        None => return Err(failed),
                    },
                }
            }
            if pending.is_none() {
                match self.admit(to.cluster, Limit::PendingRequests) {
                    Ok(p) => pending = Some(p),
                    Err(o) => return Err(overflow(o, req)),
                }
            }
            if to.version == Version::Http2 && slot.lock().h2_connecting {
                freed.await;
                continue;
            }
            let permit = match to.cluster.admit(Limit::Connections) {
                Ok(p) => p,
                // An endpoint without connections always gets one (as in
                // Envoy), so its waiting requests are never stranded.
                Err(_) if slot.open.load(Ordering::Acquire) == 0 => {
                    to.cluster.breaker.acquire(Limit::Connections)
                }
                Err(o) => {
                    if !queued {
                        queued = true;
                        self.inner.metrics.overflow(&o.cluster, o.limit);
                    }
                    // No more connections: an HTTP/2 request queues for a stream of an open
                    // one (in its connection, until the server frees a stream).
                    let beyond = (to.version == Version::Http2)
                        .then(|| take_h2(&mut slot.lock(), |_| UNLIMITED_STREAMS))
                        .flatten();
                    if let Some(taken) = beyond {
                        drop(pending);
                        return self
                            .send_on(to, &slot, taken, req)
                            .await
                            .map(|resp| with_held(resp, request));
                    }
                    freed.await;
                    continue;
                }
            };
            let taken = match self.open(to, from, &slot, permit, kind).await {
                Ok(taken) => taken,
                Err(error) => {
                    return Err(Box::new(Failed {
                        error,
                        request: Some(req),
                    }));
                }
            };
            drop(pending);
            return self
                .send_on(to, &slot, taken, req)
                .await
                .map(|resp| with_held(resp, request));
        }
    }

    /// Takes over a connection made for another purpose (protocol detection)
    /// as a free pooled connection; `from` is the client it was opened from (see
    /// [`send_from`](Self::send_from)); `permit` counts it for its destination.
    pub async fn adopt(
        &self,
        to: &Upstream<'_>,
        from: Option<OriginalSrc>,
        stream: TcpStream,
        permit: Option<Permit>,
    ) {
        let slot = self.slot(to, from);
        let permit = permit.unwrap_or_else(|| to.cluster.breaker.acquire(Limit::Connections));
        slot.open.fetch_add(1, Ordering::AcqRel);
        match to.version {
            Version::Http1 => {
                let conn =
                    h1::Conn::open(Stream::Plain(stream), to.cluster.connection, &slot, permit);
                slot.lock().own.push(conn);
            }
            Version::Http2 => match handshake_h2(Stream::Plain(stream)).await {
                Ok((sender, conn)) => {
                    let state = ConnState::new(to.cluster.connection, slot.clone());
                    tokio::spawn(conn::drive(conn, state.clone(), Some(permit)));
                    slot.lock().h2.push((sender, state));
                }
                Err(e) => {
                    slot.open.fetch_sub(1, Ordering::AcqRel);
                    tracing::debug!("adopting an upstream connection: {e}");
                }
            },
        }
    }

    fn admit(&self, cluster: &Cluster, limit: Limit) -> Result<Permit, Overflow> {
        cluster.admit(limit).inspect_err(|o| {
            self.inner.metrics.overflow(&o.cluster, o.limit);
        })
    }

    fn slot(&self, to: &Upstream<'_>, from: Option<OriginalSrc>) -> Arc<Slot> {
        let key = Key {
            addr: to.addr,
            from,
            cluster: to.cluster.id,
            tls: to.cluster.tls.fingerprint(),
            version: to.version,
        };
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        // A new endpoint or client: first forget the slots that no connection
        // or request holds any more, so that departed ones do not pile up.
        slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        slots.entry(key).or_default().clone()
    }

    /// Opens a connection counted by `permit`, taken for one request.
    async fn open(
        &self,
        to: &Upstream<'_>,
        from: Option<OriginalSrc>,
        slot: &Arc<Slot>,
        permit: Permit,
        kind: Kind,
    ) -> Result<Taken, ProxyError> {
        let mut opening = Opening::start(slot, to.version);
        let opened = self.handshake(to, from, slot, permit, kind).await;
        opening.opened = opened.is_ok();
        opened
    }

    async fn handshake(
        &self,
        to: &Upstream<'_>,
        from: Option<OriginalSrc>,
        slot: &Arc<Slot>,
        permit: Permit,
        kind: Kind,
    ) -> Result<Taken, ProxyError> {
        let stream = self.dial(to, from).await?;
        let fail = |source: hyper::Error| ProxyError::Upstream {
            addr: to.addr,
            source: source.into(),
        };
        if kind == Kind::Own {
            let conn = h1::Conn::open(stream, to.cluster.connection, slot, permit);
            conn.state().claim(true);
            let held = Held::claimed(conn.state().clone());
            return Ok(Taken::Own(conn, held));
        }
        let state = ConnState::new(to.cluster.connection, slot.clone());
        match to.version {
            Version::Http1 => {
                let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(fail)?;
                tokio::spawn(conn::drive(
                    conn.with_upgrades(),
                    state.clone(),
                    Some(permit),
                ));
                state.claim(true);
                Ok(Taken::H1(sender, Held::claimed(state)))
            }
            Version::Http2 => {
                let (sender, conn) = handshake_h2(stream).await.map_err(fail)?;
                tokio::spawn(conn::drive(conn, state.clone(), Some(permit)));
                state.claim(false);
                if !state.is_retired() {
                    slot.lock().h2.push((sender.clone(), state.clone()));
                }
                Ok(Taken::H2(sender.send, Held::claimed(state)))
            }
        }
    }

    /// Sends on a taken connection; an HTTP/1.1 one goes back to the pool
    /// once the response head is in (it is free again when its body ends).
    async fn send_on(
        &self,
        to: &Upstream<'_>,
        slot: &Slot,
        taken: Taken,
        req: Request<Body>,
    ) -> Result<Sent, Box<Failed>> {
        let fail = |mut e: hyper::client::conn::TrySendError<Request<Body>>| {
            let request = e.take_message();
            Box::new(Failed {
                error: ProxyError::Upstream {
                    addr: to.addr,
                    source: e.into_error().into(),
                },
                request,
            })
        };
        match taken {
            Taken::Own(conn, held) => match h1::send(conn, req).await {
                Ok(resp) => Ok(Sent::Own(resp, held)),
                Err(failure) => Err(Box::new(Failed {
                    error: ProxyError::Upstream {
                        addr: to.addr,
                        source: failure.error,
                    },
                    request: failure.request,
                })),
            },
            Taken::H1(mut sender, held) => {
                if let Err(source) = sender.ready().await {
                    return Err(Box::new(Failed {
                        error: ProxyError::Upstream {
                            addr: to.addr,
                            source: source.into(),
                        },
                        request: Some(req),
                    }));
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        if !held.state().is_retired() {
                            slot.lock().h1.push((sender, held.state().clone()));
                        }
                        Ok(Sent::Hyper(resp, held))
                    }
                    Err(e) => Err(fail(e)),
                }
            }
            Taken::H2(mut sender, held) => match sender.try_send_request(req).await {
                Ok(resp) => Ok(Sent::Hyper(resp, held)),
                Err(e) => {
                    slot.lock()
                        .h2
                        .retain(|(_, s)| !Arc::ptr_eq(s, held.state()));
                    Err(fail(e))
                }
            },
        }
    }

    /// Connects to the endpoint, with TLS when the destination originates it.
    async fn dial(
        &self,
        to: &Upstream<'_>,
        from: Option<OriginalSrc>,
    ) -> Result<Stream, ProxyError> {
        if let Tls::Unavailable(reason) = &to.cluster.tls {
            return Err(ProxyError::TlsUnavailable {
                destination: to.cluster.name.to_string(),
                reason: reason.clone(),
            });
        }
        let (addr, timeout) = (to.addr, to.connect_timeout);
        let stream = match self.inner.dial {
            Dial::Direct => {
                tcp::connect_upstream(addr, timeout, to.cluster.connection.keepalive).await?
            }
            Dial::App => tcp::connect_app(addr, from, timeout).await?,
        };
        let Tls::Originate(tls) = &to.cluster.tls else {
            return Ok(Stream::Plain(stream));
        };
        let alpn = match to.version {
            Version::Http1 => Alpn::Http1,
            Version::Http2 => Alpn::Http2,
        };
        match tls.connect(stream, addr, alpn).await {
            Ok(s) => Ok(Stream::Tls(Box::new(s))),
            Err(source) => Err(ProxyError::Tls { addr, source }),
        }
    }
}

/// A connection being opened in a slot: counted as open, and for HTTP/2
/// the one others wait for. Dropped when done, or when the request gave up
/// (timeout), it uncounts a connection that did not open and wakes the waiters.
struct Opening<'a> {
    slot: &'a Slot,
    version: Version,
    opened: bool,
}

impl<'a> Opening<'a> {
    fn start(slot: &'a Slot, version: Version) -> Opening<'a> {
        slot.open.fetch_add(1, Ordering::AcqRel);
        if version == Version::Http2 {
            slot.lock().h2_connecting = true;
        }
        Opening {
            slot,
            version,
            opened: false,
        }
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if self.version == Version::Http2 {
            self.slot.lock().h2_connecting = false;
        }
        if !self.opened {
            self.slot.open.fetch_sub(1, Ordering::AcqRel);
        }
        self.slot.freed.notify_waiters();
    }
}

/// A free pooled connection of `slot`, taken for one request.
fn take(slot: &Slot, kind: Kind) -> Option<Taken> {
    match kind {
        Kind::Own => take_own(slot),
        Kind::H1 => take_h1(&mut slot.lock()),
        Kind::H2 => take_h2(&mut slot.lock(), |sender| (sender.streams)()),
    }
}

/// The most recently used of hyper's idle HTTP/1.1 connections (it is warm, and the others
/// can idle out); closed ones met on the way are dropped.
fn take_h1(conns: &mut Conns) -> Option<Taken> {
    let mut i = conns.h1.len();
    while i > 0 {
        i -= 1;
        let (sender, state) = &conns.h1[i];
        if sender.is_closed() || state.is_closed() {
            conns.h1.swap_remove(i);
        } else if state.claim(true) {
            let (sender, state) = conns.h1.swap_remove(i);
            return Some(Taken::H1(sender, Held::claimed(state)));
        }
    }
    None
}

/// The most recently used of the proxy's own idle connections of `slot` that the server has
/// not closed; closed ones met on the way are dropped.
fn take_own(slot: &Slot) -> Option<Taken> {
    loop {
        let mut conn = {
            let mut conns = slot.lock();
            let mut i = conns.own.len();
            loop {
                i = i.checked_sub(1)?;
                let state = conns.own[i].state();
                if state.is_closed() {
                    conns.own.swap_remove(i);
                } else if state.claim(true) {
                    break conns.own.swap_remove(i);
                }
            }
        };
        let held = Held::claimed(conn.state().clone());
        if conn.is_usable() {
            return Some(Taken::Own(conn, held));
        }
        drop(conn);
        drop(held);
    }
}

/// A stream on the first of `conns`' HTTP/2 connections with fewer than `max` of its
/// connection's streams in flight; closed and retired connections met on the way are dropped.
fn take_h2(conns: &mut Conns, max: impl Fn(&H2Sender) -> u32) -> Option<Taken> {
    let mut i = 0;
    while i < conns.h2.len() {
        let (sender, state) = &conns.h2[i];
        if sender.send.is_closed() || state.is_closed() || state.is_retired() {
            conns.h2.remove(i);
            continue;
        }
        if state.claim_up_to(max(sender).max(1)) {
            let taken = Taken::H2(sender.send.clone(), Held::claimed(state.clone()));
            if state.is_retired() {
                conns.h2.remove(i);
            }
            return Some(taken);
        }
        i += 1;
    }
    None
}

/// The response, its body holding the request's place until it ends.
fn with_held(sent: Sent, request: Permit) -> Response<Body> {
    match sent {
        Sent::Hyper(resp, held) => {
            resp.map(|body| HeldBody::wrap(body, held.with_request(request)))
        }
        Sent::Own(resp, held) => resp.map(|body| body.into_body(held.with_request(request))),
    }
}

fn overflow(o: Overflow, req: Request<Body>) -> Box<Failed> {
    Box::new(Failed {
        error: ProxyError::Overflow(o),
        request: Some(req),
    })
}

/// Opens an HTTP/2 connection with the pool's settings; the sender can tell the server's
/// current stream limit (the connection is shared with its driver for that).
async fn handshake_h2(
    stream: Stream,
) -> hyper::Result<(H2Sender, impl Future<Output = hyper::Result<()>>)> {
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_frame_size(H2_MAX_FRAME)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .initial_max_send_streams(H2_INITIAL_STREAMS)
        .handshake::<_, Body>(TokioIo::new(stream))
        .await?;
    let conn = Arc::new(Mutex::new(conn));
    let shared = conn.clone();
    let streams = move || {
        let conn = shared.lock().unwrap_or_else(PoisonError::into_inner);
        u32::try_from(conn.current_max_send_streams()).unwrap_or(u32::MAX)
    };
    let driven = std::future::poll_fn(move |cx| {
        Pin::new(&mut *conn.lock().unwrap_or_else(PoisonError::into_inner)).poll(cx)
    });
    let streams = Arc::new(streams);
    Ok((H2Sender { send, streams }, driven))
}
