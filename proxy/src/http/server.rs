//! One client connection served within the proxy's [`ClientLimits`]: header read timeout,
//! header size and count, HTTP/2 settings, the idle timeout, and load shedding (a fast 503
//! once the requests in flight reach their limit).

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sluice_conn_idle::{Guarded, Idle};
use tokio::io::{AsyncRead, AsyncWrite};

use super::host;
use super::timed::BodyTimeout;
use super::upgrade::Tunnels;
use super::{Body, respond};
use crate::drain;
use crate::limits::{ClientLimits, Gates};

/// Serves one client connection, HTTP/1.1 or HTTP/2 (prior knowledge), with WebSocket
/// upgrades, within `gates`; when draining starts, or once the connection has had no
/// request in flight for the idle timeout, finishes in-flight requests and closes.
pub async fn serve_with<I, S, F>(io: I, service: S, drain: &drain::Watch, gates: &Arc<Gates>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let limits = &gates.limits;
    let idle = Idle::new();
    let tunnels = Tunnels::new(drain.clone(), gates.clone());
    let (shed, busy) = (gates.clone(), idle.clone());
    let body_timeout = BodyTimeout(limits.body_read_timeout);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let refused = host::refusal(&req);
        let permit = shed.request();
        let guard = busy.start();
        req.extensions_mut().insert(tunnels.clone());
        req.extensions_mut().insert(body_timeout);
        // Boxed: hyper moves the request's future into place, and the handler's is large
        // (all the routing and forwarding state; moving it took ~20k instructions of memcpy
        // per request): a pointer is moved instead.
        let answer = (permit.is_some() && refused.is_none()).then(|| Box::pin(service(req)));
        async move {
            let (resp, permit) = match (refused, answer, permit) {
                (Some(why), _, _) => (bad_request(why), None),
                (None, Some(answer), Some(permit)) => (answer.await, Some(permit)),
                _ => (overloaded(), None),
            };
            let (parts, body) = resp.into_parts();
            let held = Guarded::new(body, (guard, permit));
            Ok::<_, Infallible>(Response::from_parts(parts, held.boxed_unsync()))
        }
    });
    let builder = builder(limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = drain.signaled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = idle.idle_for(limits.idle_timeout) => {
            tracing::debug!(timeout = ?limits.idle_timeout, "client connection idle: closing");
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection: {e}");
    }
}

/// The connection builder for `limits`.
fn builder(limits: &ClientLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // The read buffer bounds the request head (431 beyond it); hyper's least is 8 KiB.
        .max_buf_size((limits.max_header_bytes as usize).max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes)
        .initial_stream_window_size(limits.h2_stream_window)
        .initial_connection_window_size(limits.h2_connection_window);
    builder
}

/// The answer beyond the limit of requests in flight.
fn overloaded() -> Response<Body> {
    let mut resp = respond::text(503, "sluice: overloaded, try again\n");
    resp.headers_mut().insert(
        respond::ERROR_HEADER,
        http::HeaderValue::from_static("overloaded"),
    );
    resp
}
/// The answer to a request refused before routing; the connection closes after it.
fn bad_request(why: &'static str) -> Response<Body> {
    let mut resp = respond::text(400, format!("sluice: bad request: {why}\n"));
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}
