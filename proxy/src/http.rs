//! HTTP: serving client connections (HTTP/1.1 and HTTP/2 on one port),
//! routing each request, and forwarding it over pooled upstream connections
//! with faults, retries, timeouts and mirrors.

mod cors;
mod forward;
mod headers;
mod inbound;
mod mirror;
mod outbound;
mod pool;
mod record;
mod respond;
mod retry;
pub mod route;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

pub use inbound::Inbound;
pub use mirror::Mirrors;
pub use outbound::Outbound;
pub use pool::{Dial, Pool, Upstream, Version};

use crate::drain;

/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every request and response the proxy sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A received body as a [`Body`].
fn incoming(body: Incoming) -> Body {
    body.map_err(Into::into).boxed_unsync()
}

/// Serves one client connection, HTTP/1.1 or HTTP/2 (prior knowledge), with
/// upgrades; when draining starts, finishes in-flight requests and closes.
pub async fn serve<I, S, F>(io: I, service: S, drain: &drain::Watch)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let f = service(req);
        async move { Ok::<_, Infallible>(f.await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer bounds how long a client may take to send request headers.
    builder.http1().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = drain.signaled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection: {e}");
    }
}
