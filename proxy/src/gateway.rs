//! The edge gateway (`--mode gateway`): no capture; listens on the ports of the Gateways
//! that select its labels, opening and closing listeners as they change, and serves each
//! request through the sidecar's HTTP routing with the routes bound to those Gateways.
//!
//! [`listeners`] keeps the listening ports in step with the config, [`hosts`] picks the
//! server and VirtualService of a request, [`forwarded`] sets the edge's request headers,
//! [`tls`] terminates TLS by SNI and [`passthrough`] forwards it untouched.

mod forwarded;
mod hosts;
mod listeners;
mod passthrough;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;

pub use hosts::{Edge, NOT_FOUND};
pub use listeners::serve;

use crate::Sidecar;

/// Where mounted `credentialName` Secrets are found: `DIR/NAME/tls.crt`, `tls.key`, `ca.crt`.
pub const DEFAULT_CREDENTIALS_DIR: &str = "/etc/sluice/credentials";

/// Settings of the edge from flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// Proxies in front of the gateway whose `x-forwarded-for` entries are trusted
    /// (Istio's `numTrustedProxies`).
    pub trusted_proxies: u32,
    /// The directory holding one directory per `credentialName` (mounted Secrets).
    pub credentials_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trusted_proxies: 0,
            credentials_dir: DEFAULT_CREDENTIALS_DIR.into(),
        }
    }
}

/// What the gateway's connections share.
#[derive(Debug)]
struct Shared {
    sidecar: Arc<Sidecar>,
    options: Options,
    certs: tls::Certs,
}
