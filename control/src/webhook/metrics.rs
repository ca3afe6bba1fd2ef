//! The webhook's Prometheus metrics, under the `sluice_control` prefix, and the one
//! exposition that serves them with the other parts' metrics.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Counters and the latency histogram; `encode` renders them for `GET /metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    duration: Histogram,
    reloads: Family<ReloadLabels, Counter>,
}

/// How a review ended: `injected`, `skipped`, `ignored` (not a pod creation), `denied`
/// (injection refused the pod) or `malformed` (HTTP 400); `reason` says why for skips.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    pub outcome: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    what: &'static str,
    result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sluice_control");
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register("reviews", "Admission reviews answered", reviews.clone());
        let duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "review_duration_seconds",
            "Time to answer an admission review, from body received to response built",
            duration.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads of the TLS certificate and the config",
            reloads.clone(),
        );
        Self {
            registry,
            reviews,
            duration,
            reloads,
        }
    }
}

impl Metrics {
    /// Records one answered review.
    pub fn review(&self, labels: ReviewLabels, took: Duration) {
        self.reviews.get_or_create(&labels).inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Records a reload of `what` (`certificate` or `config`).
    pub fn reload(&self, what: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&ReloadLabels { what, result })
            .inc();
    }

    /// The text exposition format: these metrics, then those of `others`, as one
    /// exposition (one `# EOF`).
    pub fn encode(&self, others: &[Arc<dyn Exposed>]) -> String {
        let registries = std::iter::once(&self.registry).chain(others.iter().map(|o| o.registry()));
        let mut out = String::new();
        let encoded = registries
            .into_iter()
            .try_for_each(|registry| text::encode_registry(&mut out, registry))
            .and_then(|()| text::encode_eof(&mut out));
        match encoded {
            Ok(()) => out,
            Err(_) => String::new(),
        }
    }
}

/// Metrics of another part of the process (discovery, the stream) served at the webhook's
/// `/metrics` beside its own; their names must not clash with the webhook's.
pub trait Exposed: std::fmt::Debug + Send + Sync {
    /// The registry holding them.
    fn registry(&self) -> &Registry;
}
