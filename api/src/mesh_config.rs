//! `sluice.dev/v1alpha1` `MeshConfig`: mesh-wide settings.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::duration::Duration;

/// The spec of a MeshConfig. At most one applies to a proxy.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshConfig {
    /// What happens to traffic for destinations outside the registry.
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Suffix added to the authority of mirrored requests (default `-shadow`,
    /// as in Istio; some remote gateways route on the authority and need another).
    pub mirror_authority_suffix: Option<String>,
    /// How long the proxy waits for a client's first bytes before it treats a
    /// connection on an undeclared port as opaque TCP (default 100ms).
    pub protocol_detection_timeout: Option<Duration>,
    /// Default connect timeout towards upstreams (default 10s).
    pub connect_timeout: Option<Duration>,
    /// Headers carried from a request entering a pod to the requests its app sends while
    /// serving it.
    pub header_propagation: Option<HeaderPropagation>,
}

/// Header propagation across hops: a listed header seen on an inbound request is added to
/// the app's outbound requests that carry the same trace context (`traceparent`,
/// `x-request-id` or b3), through a bounded table whose entries expire.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderPropagation {
    /// The headers carried (`x-swimlane`, `baggage`).
    pub headers: Vec<String>,
    /// Most requests remembered at once (default 10000); the oldest go first.
    pub max_entries: Option<u32>,
    /// How long a request is remembered (default 30s).
    pub ttl: Option<Duration>,
}

/// The outbound traffic policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// `ALLOW_ANY` (default) or `REGISTRY_ONLY`.
    pub mode: OutboundMode,
}

/// Whether destinations outside the registry are reachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    /// Pass unknown destinations through to their original address.
    #[default]
    AllowAny,
    /// Refuse unknown destinations.
    RegistryOnly,
}
