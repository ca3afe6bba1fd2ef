//! Discovery's Prometheus metrics, under the `sluice_control` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::served::{ISTIO_KINDS, SLUICE_KINDS};
use crate::discovery::state::Rejection;

/// The mesh config's version, its rejected objects, and the watchers' errors.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    version: Gauge,
    rejected: Family<KindLabels, Gauge>,
    watch_errors: Family<KindLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("sluice_control");
        let version = Gauge::default();
        registry.register(
            "config_version",
            "The version of the mesh config last published (0: not synced yet)",
            version.clone(),
        );
        let rejected = Family::<KindLabels, Gauge>::default();
        registry.register(
            "rejected_resources",
            "Objects left out of the mesh config because they are invalid, by kind",
            rejected.clone(),
        );
        let watch_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Errors of the Kubernetes watches (each retried), by kind",
            watch_errors.clone(),
        );
        Metrics {
            registry,
            version,
            rejected,
            watch_errors,
        }
    }
}

impl Metrics {
    /// Records a published version and its rejected objects by kind (0 for the kinds
    /// that have none).
    pub(super) fn published(&self, version: u64, rejected: &[Rejection]) {
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
        let kinds = ["Service"]
            .into_iter()
            .chain(ISTIO_KINDS)
            .chain(SLUICE_KINDS);
        for kind in kinds {
            let count = rejected.iter().filter(|r| kind_of(r) == kind).count();
            self.rejected
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Records a failed list or watch of `kind`.
    pub(super) fn watch_error(&self, kind: &str) {
        self.watch_errors
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
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

/// The kind of a rejected object, from its `Kind namespace/name`.
fn kind_of(rejection: &Rejection) -> &str {
    rejection
        .object
        .split_once(' ')
        .map_or("", |(kind, _)| kind)
}

impl crate::webhook::Exposed for Metrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }
}
