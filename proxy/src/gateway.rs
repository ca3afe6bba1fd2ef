//! The edge gateway (`--mode gateway`): no capture; listens on the ports of the Gateways
//! that select its labels, opening and closing listeners as they change, and serves each
//! request through the sidecar's HTTP routing with the routes bound to those Gateways.
//!
//! [`listeners`] keeps the listening ports in step with the config, [`hosts`] picks the
//! server and VirtualService of a request, [`forwarded`] sets the edge's request headers.

mod forwarded;
mod hosts;
mod listeners;

use std::sync::Arc;

pub use hosts::Edge;
pub use listeners::serve;

/// Settings of the edge from flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Proxies in front of the gateway whose `x-forwarded-for` entries are trusted
    /// (Istio's `numTrustedProxies`).
    pub trusted_proxies: u32,
}

/// The edge side of one accepted connection, shared by its requests.
fn edge(port: u16, options: Options) -> Arc<Edge> {
    Arc::new(Edge::plain(port, options.trusted_proxies))
}
