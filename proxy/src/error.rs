//! What can go wrong on the request path; `http::respond` turns each into the
//! answer a client gets.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cluster::Overflow;

/// A request or connection the proxy could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The destination is outside the registry and the mesh is REGISTRY_ONLY.
    #[error(
        "destination {0} is not in the service registry and outboundTrafficPolicy.mode is REGISTRY_ONLY; \
         declare it with a ServiceEntry or set the mode to ALLOW_ANY"
    )]
    UnknownDestination(SocketAddr),
    /// No rule of the VirtualService matched.
    #[error(
        "no http route of VirtualService {vs} matches {method} {path}; add a rule without match as the last one"
    )]
    NoRoute {
        /// `namespace/name` of the VirtualService.
        vs: String,
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// A route names a subset no DestinationRule defines.
    #[error(
        "subset {subset:?} of {host} is not defined by any DestinationRule; define it or fix the route"
    )]
    MissingSubset {
        /// The destination host.
        host: String,
        /// The subset name.
        subset: String,
    },
    /// The destination has no endpoints.
    #[error("{0} has no endpoints (no ServiceEntry endpoint matches its labels)")]
    NoEndpoints(String),
    /// Every endpoint of the destination is ejected as an outlier.
    #[error(
        "no healthy upstream: every endpoint of {0} is ejected by outlier detection; they return after baseEjectionTime"
    )]
    NoHealthyEndpoints(String),
    /// The destination host is not in the registry.
    #[error("destination host {0} is not in the service registry; declare it with a ServiceEntry")]
    UnknownHost(String),
    /// A name could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        reason: String,
    },
    /// Connecting upstream failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The TLS handshake with the upstream failed.
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// The endpoint.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The destination's TLS settings cannot be used.
    #[error("cannot originate TLS towards {destination}: {reason}")]
    TlsUnavailable {
        /// The destination.
        destination: String,
        /// Why.
        reason: String,
    },
    /// The upstream failed while the request was in flight.
    #[error("upstream {addr} failed: {source}")]
    Upstream {
        /// The endpoint.
        addr: SocketAddr,
        /// The error.
        source: crate::http::BoxError,
    },
    /// The client's request body failed while it was sent upstream (a reset, the body-read
    /// timeout).
    #[error("reading the request body: {0}")]
    ClientBody(String),
    /// A circuit-breaker threshold of the destination is reached.
    #[error("upstream overflow: {0}; the request was not sent")]
    Overflow(Overflow),
    /// The route's timeout passed.
    #[error("upstream request timeout after {0:?}")]
    Timeout(Duration),
    /// The config is not loaded yet.
    #[error("no config loaded yet")]
    NotReady,
}
