//! The discovery stream's Prometheus metrics, under the `sluice_discovery` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Connected proxies, updates pushed, versions rejected.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Proxies connected now.
    pub connected: Gauge,
    pushes: Family<PushLabels, Counter>,
    /// Versions proxies rejected.
    pub nacks: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    /// `full` or `delta`.
    kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sluice_discovery");
        let connected = Gauge::default();
        registry.register(
            "connected_proxies",
            "Proxies connected to the discovery stream",
            connected.clone(),
        );
        let pushes = Family::<PushLabels, Counter>::default();
        registry.register(
            "pushes",
            "Updates sent to proxies: full states and deltas",
            pushes.clone(),
        );
        let nacks = Counter::default();
        registry.register(
            "nacks",
            "Versions proxies rejected (they keep their last good config)",
            nacks.clone(),
        );
        Self {
            registry,
            connected,
            pushes,
            nacks,
        }
    }
}

impl Metrics {
    /// Records one update sent.
    pub fn pushed(&self, full: bool) {
        let kind = if full { "full" } else { "delta" };
        self.pushes.get_or_create(&PushLabels { kind }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            Ok(()) => out,
            Err(_) => String::new(),
        }
    }
}

impl crate::webhook::Exposed for Metrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }
}
