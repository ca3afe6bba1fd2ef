//! Discovery's watchers: one kube-rs watcher per kind (Services, EndpointSlices, Pods,
//! Namespaces and the Istio kinds at the version the cluster serves), a debounced
//! rebuild of the whole mesh config, and a new [`ClusterConfig`](super::state::ClusterConfig)
//! version published when it changed.
//!
//! Nothing here blocks its caller: [`Discovery::start`] spawns the work and returns, so
//! the webhook serves whatever the API server is doing. Watch errors are logged with
//! their kind and retried with kube-rs' default backoff (relists after `410 Gone`,
//! paginated lists and bookmarks are kube-rs' `watcher`'s job); they are never fatal.

mod build;
mod client;
mod metrics;
mod reflect;
mod run;
pub mod served;
mod slim;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::reflector::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::state::Publisher;
use super::translate;

pub use client::{ClientConfigError, client_config};
pub use metrics::Metrics;

/// How discovery watches and rebuilds.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How Services are translated (the cluster domain).
    pub translate: translate::Settings,
    /// Quiet time after a change before the mesh config is rebuilt.
    pub debounce: Duration,
    /// The longest a change waits under constant churn.
    pub max_delay: Duration,
    /// How often API discovery runs again while a kind is missing (a CRD installed
    /// later is picked up).
    pub rediscover: Duration,
    /// The first wait after a failed API discovery; it doubles up to `rediscover`.
    pub retry: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            translate: translate::Settings::default(),
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            rediscover: Duration::from_secs(60),
            retry: Duration::from_secs(1),
        }
    }
}

/// The running watchers; dropping the handle stops them.
pub struct Discovery {
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
    client: kube::Client,
    workloads: Workloads,
}

/// The Namespaces and Pods discovery keeps (slimmed: names, labels, and a Pod's
/// `sluice.dev/status`), shared with the rest of the control plane so that no kind is
/// watched twice.
#[derive(Clone)]
pub struct Workloads {
    /// Every Namespace.
    pub namespaces: Store<Namespace>,
    /// Every Pod.
    pub pods: Store<Pod>,
    /// Marked changed whenever any watched object changes or a kind is (re)listed.
    pub changed: watch::Receiver<()>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("workloads", &self.workloads)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Workloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workloads")
            .field("namespaces", &self.namespaces.len())
            .field("pods", &self.pods.len())
            .finish()
    }
}

impl Discovery {
    /// Starts watching the cluster `config` points at, publishing each new version of the
    /// mesh config to `publisher` (version 1 once every watcher has listed its kind).
    /// Returns at once: an API server that is slow or unreachable only delays the first
    /// version. Fails only when `config` cannot make a client (its TLS settings).
    pub fn start(
        config: kube::Config,
        settings: Settings,
        publisher: Publisher,
    ) -> Result<Discovery, kube::Error> {
        let span = tracing::info_span!("discovery", api_server = %config.cluster_url);
        let client = kube::Client::try_from(config)?;
        let metrics = Arc::new(Metrics::default());
        let (workloads, run) = {
            let _entered = span.enter();
            run::run(client.clone(), settings, publisher, metrics.clone())
        };
        let task = tokio::spawn(run.instrument(span));
        Ok(Discovery {
            task,
            metrics,
            client,
            workloads,
        })
    }

    /// The client discovery watches with.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The Namespaces and Pods discovery keeps current.
    pub fn workloads(&self) -> Workloads {
        self.workloads.clone()
    }

    /// Discovery's metrics, for `GET /metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An error with its causes, `outer: inner: root`: kube-rs' client errors say what failed
/// only in their sources (`client error (Connect): ...: connection refused`).
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
