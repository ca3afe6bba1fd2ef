//! HTTP: serving client connections (HTTP/1.1 and HTTP/2 on one port),
//! routing each request, and forwarding it over pooled upstream connections
//! with faults, retries, timeouts and mirrors.

mod cors;
mod forward;
mod headers;
mod host;
mod inbound;
mod mirror;
mod outbound;
mod pool;
mod record;
mod respond;
mod retry;
pub mod route;
mod server;
mod timed;
pub mod upgrade;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;

pub use inbound::Inbound;
pub use mirror::Mirrors;
pub use outbound::Outbound;
pub use pool::{Dial, Pool, Upstream, Version};
pub use server::serve_with;

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

/// A received body as a [`Body`], under the connection's body-read timeout when it has one.
fn incoming(body: Incoming, timeout: Option<timed::BodyTimeout>) -> Body {
    timed::Timed::new(body, timeout).boxed_unsync()
}
