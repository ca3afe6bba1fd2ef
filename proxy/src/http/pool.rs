//! Upstream connections, pooled by endpoint address so they outlive config
//! versions: HTTP/1.1 connections reused one request at a time, one
//! multiplexed HTTP/2 connection per endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::Body;
use crate::error::ProxyError;
use crate::tcp;

/// Idle HTTP/1.1 connections kept per endpoint.
const MAX_IDLE: usize = 128;
/// Idle HTTP/1.1 connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP version spoken upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Connect to the app in this pod (inbound): see [`tcp::connect_app`].
    App,
}

/// A request that failed, with the request itself when it never left.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: ProxyError,
    /// The request, when it was not sent (safe to send elsewhere).
    pub request: Option<Request<Body>>,
}

/// An idle HTTP/1.1 connection and since when.
type Idle = (http1::SendRequest<Body>, Instant);

/// Pooled upstream connections.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dial: Dial,
    h1: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    h2: Mutex<HashMap<SocketAddr, http2::SendRequest<Body>>>,
}

impl Pool {
    /// An empty pool that reaches addresses with `dial`.
    pub fn new(dial: Dial) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                dial,
                h1: Mutex::default(),
                h2: Mutex::default(),
            }),
        }
    }

    /// Sends a request to `addr`, on a pooled connection when one is free.
    pub async fn send(
        &self,
        addr: SocketAddr,
        version: Version,
        req: Request<Body>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, Box<Failed>> {
        match version {
            Version::Http1 => self.send_h1(addr, req, connect_timeout).await,
            Version::Http2 => self.send_h2(addr, req, connect_timeout).await,
        }
    }

    /// Takes over a connection made for another purpose (protocol detection) as
    /// a fresh pooled connection to `addr`.
    pub async fn adopt(&self, addr: SocketAddr, version: Version, stream: TcpStream) {
        match version {
            Version::Http1 => {
                if let Ok(sender) = handshake_h1(stream).await {
                    self.checkin_h1(addr, sender);
                }
            }
            Version::Http2 => {
                if let Ok(sender) = handshake_h2(stream).await {
                    self.lock_h2().insert(addr, sender);
                }
            }
        }
    }

    async fn send_h1(
        &self,
        addr: SocketAddr,
        mut req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Box<Failed>> {
        loop {
            let (mut sender, reused) = match self.checkout_h1(addr) {
                Some(s) => (s, true),
                None => match self.dial(addr, timeout).await {
                    Ok(stream) => (
                        handshake_h1(stream)
                            .await
                            .map_err(|e| upstream(addr, e, None))?,
                        false,
                    ),
                    Err(error) => {
                        return Err(Box::new(Failed {
                            error,
                            request: Some(req),
                        }));
                    }
                },
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.checkin_h1(addr, sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // A reused connection closed under us before the request left: try another.
                    Some(r) if reused => req = r,
                    message => return Err(upstream(addr, e.into_error(), message)),
                },
            }
        }
    }

    async fn send_h2(
        &self,
        addr: SocketAddr,
        mut req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Box<Failed>> {
        loop {
            let pooled = self
                .lock_h2()
                .get(&addr)
                .filter(|s| !s.is_closed())
                .cloned();
            let (mut sender, reused) = match pooled {
                Some(s) => (s, true),
                None => match self.dial(addr, timeout).await {
                    Ok(stream) => {
                        let sender = handshake_h2(stream)
                            .await
                            .map_err(|e| upstream(addr, e, None))?;
                        self.lock_h2().insert(addr, sender.clone());
                        (sender, false)
                    }
                    Err(error) => {
                        return Err(Box::new(Failed {
                            error,
                            request: Some(req),
                        }));
                    }
                },
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => {
                        self.lock_h2().remove(&addr);
                        req = r;
                    }
                    message => return Err(upstream(addr, e.into_error(), message)),
                },
            }
        }
    }

    async fn dial(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProxyError> {
        match self.inner.dial {
            Dial::Direct => tcp::connect(addr, timeout).await,
            Dial::App => tcp::connect_app(addr, timeout).await,
        }
    }

    fn checkout_h1(&self, addr: SocketAddr) -> Option<http1::SendRequest<Body>> {
        let mut idle = self.inner.h1.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(&addr)?;
        list.retain(|(s, since)| !s.is_closed() && since.elapsed() < IDLE_TIMEOUT);
        let ready = list.iter().position(|(s, _)| s.is_ready())?;
        Some(list.swap_remove(ready).0)
    }

    /// Returns a connection; it becomes usable again once its response is read.
    fn checkin_h1(&self, addr: SocketAddr, sender: http1::SendRequest<Body>) {
        let mut idle = self.inner.h1.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push((sender, Instant::now()));
        }
    }

    fn lock_h2(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, http2::SendRequest<Body>>> {
        self.inner.h2.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn upstream(addr: SocketAddr, source: hyper::Error, request: Option<Request<Body>>) -> Box<Failed> {
    Box::new(Failed {
        error: ProxyError::Upstream { addr, source },
        request,
    })
}

async fn handshake_h1(stream: TcpStream) -> hyper::Result<http1::SendRequest<Body>> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upstream HTTP/1.1 connection: {e}");
        }
    });
    Ok(sender)
}

async fn handshake_h2(stream: TcpStream) -> hyper::Result<http2::SendRequest<Body>> {
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream HTTP/2 connection: {e}");
        }
    });
    Ok(sender)
}
