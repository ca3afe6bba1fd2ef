//! The CA bundle's Prometheus metrics, under the `sluice_control` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::webhook::Exposed;

/// The namespaces that need the ConfigMap, the writes, and the errors.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    namespaces: Gauge,
    writes: Family<WriteLabels, Counter>,
    ca_errors: Counter,
    watch_errors: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    action: &'static str,
    result: &'static str,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("sluice_control_ca_bundle");
        let namespaces = Gauge::default();
        registry.register(
            "namespaces",
            "Namespaces that need the CA bundle ConfigMap (injected or labelled for injection)",
            namespaces.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "writes",
            "Writes of the CA bundle ConfigMap, by action (create, update) and result (ok, conflict, error)",
            writes.clone(),
        );
        let ca_errors = Counter::default();
        registry.register(
            "ca_errors",
            "Reads of the CA file that failed (the last good CA stays)",
            ca_errors.clone(),
        );
        let watch_errors = Counter::default();
        registry.register(
            "watch_errors",
            "Errors of the watch on the CA bundle ConfigMaps (each retried)",
            watch_errors.clone(),
        );
        Metrics {
            registry,
            namespaces,
            writes,
            ca_errors,
            watch_errors,
        }
    }
}

impl Metrics {
    pub(super) fn namespaces(&self, count: usize) {
        self.namespaces
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(super) fn write(&self, action: &'static str, result: &'static str) {
        self.writes
            .get_or_create(&WriteLabels { action, result })
            .inc();
    }

    pub(super) fn ca_error(&self) {
        self.ca_errors.inc();
    }

    pub(super) fn watch_error(&self) {
        self.watch_errors.inc();
    }
}

impl Exposed for Metrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }
}
