//! The rebuild loop: starts the watchers, runs API discovery (again while a kind is
//! missing, or when one is gone), and once changes settle rebuilds the mesh config and
//! publishes a new version when it differs from the last.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use sluice_api::Resource;
use sluice_api::diagnostic::{Diagnostic, Severity};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;

use super::build::{Built, Objects, Translations, build};
use super::metrics::Metrics;
use super::reflect::{self, Kind, Signal};
use super::served::{self, Served};
use super::{Settings, Workloads, slim, with_causes};
use crate::discovery::state::{ClusterConfig, Publisher, Rejection};

/// The built-in kinds, watched from the start.
const CORE_KINDS: [&str; 4] = ["Service", "EndpointSlice", "Pod", "Namespace"];

/// Starts the watchers and returns their Namespaces and Pods, and the loop that runs
/// discovery until its task is aborted.
pub fn run(
    client: Client,
    settings: Settings,
    publisher: Publisher,
    metrics: Arc<Metrics>,
) -> (Workloads, impl Future<Output = ()>) {
    let (signals, received) = mpsc::unbounded_channel();
    let state = State::start(client, settings, publisher, metrics, signals);
    let workloads = Workloads {
        namespaces: state.namespaces.clone(),
        pods: state.pods.clone(),
        changed: state.changed.subscribe(),
    };
    (workloads, rebuild_loop(state, received))
}

async fn rebuild_loop(mut state: State, mut received: UnboundedReceiver<Signal>) {
    let mut discovering = JoinSet::new();
    // At most one rebuild at a time, on the blocking pool: changes that come meanwhile
    // wait for the next.
    let mut building = JoinSet::new();
    loop {
        let discover_at = state.discover_at.filter(|_| discovering.is_empty());
        let rebuild_at = state.rebuild_at().filter(|_| building.is_empty());
        tokio::select! {
            Some(signal) = received.recv() => state.signal(signal),
            Some(answer) = discovering.join_next() => state.discovered(answer),
            () = sleep_until(discover_at.unwrap_or_else(Instant::now)), if discover_at.is_some() => {
                state.discover_at = None;
                let discover = served::discover(state.watchers.client.clone());
                discovering.spawn(discover.in_current_span());
            }
            () = sleep_until(rebuild_at.unwrap_or_else(Instant::now)), if rebuild_at.is_some() => {
                if let Some(rebuild) = state.rebuild() {
                    building.spawn_blocking(rebuild);
                }
            }
            Some(rebuilt) = building.join_next() => match rebuilt {
                Ok(rebuilt) => state.publish(rebuilt),
                Err(e) => tracing::error!(error = %e, "rebuilding the mesh config failed"),
            },
            // Reaps the watchers of kinds that went away.
            Some(_) = state.watchers.tasks.join_next(), if !state.watchers.tasks.is_empty() => {}
        }
    }
}

/// A watched custom kind (an Istio kind or MeshConfig).
struct Custom {
    resource: ApiResource,
    store: Store<DynamicObject>,
    watcher: AbortHandle,
}

/// Changes not rebuilt yet: when the first and the last came.
#[derive(Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
}

/// What a rebuild made, and from how much.
struct Rebuilt {
    built: Built,
    /// The translations, for the next rebuild.
    translations: Translations,
    /// True when it equals the last version published.
    unchanged: bool,
    services: usize,
    pods: usize,
    took: Duration,
}

/// The stores, the watchers, and what is due.
struct State {
    settings: Settings,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    watchers: Watchers,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    custom: BTreeMap<String, Custom>,
    /// The kinds whose objects have been listed into their store.
    listed: HashSet<String>,
    /// The last answer of API discovery; none before the first.
    served: Option<Served>,
    /// When API discovery runs next, if it is due.
    discover_at: Option<Instant>,
    /// API discoveries failed in a row.
    failures: u32,
    pending: Option<Pending>,
    /// The Services' translations of the last rebuild; away while a rebuild runs.
    translations: Option<Translations>,
    /// Told of every change the watchers see (for [`Workloads::changed`]).
    changed: watch::Sender<()>,
    /// The diagnostics already logged (by text), so each is logged once.
    logged: HashSet<String>,
}

impl State {
    fn start(
        client: Client,
        settings: Settings,
        publisher: Publisher,
        metrics: Arc<Metrics>,
        signals: UnboundedSender<Signal>,
    ) -> State {
        let mut watchers = Watchers {
            tasks: JoinSet::new(),
            client,
            signals,
            metrics: metrics.clone(),
        };
        State {
            services: watchers.core("Service", slim::service),
            slices: watchers.core("EndpointSlice", slim::endpoint_slice),
            pods: watchers.core("Pod", slim::pod),
            namespaces: watchers.core("Namespace", slim::namespace),
            settings,
            publisher,
            metrics,
            watchers,
            custom: BTreeMap::new(),
            listed: HashSet::new(),
            served: None,
            discover_at: Some(Instant::now()),
            failures: 0,
            pending: None,
            translations: Some(Translations::default()),
            changed: watch::Sender::new(()),
            logged: HashSet::new(),
        }
    }

    fn signal(&mut self, signal: Signal) {
        self.changed.send_replace(());
        match signal {
            Signal::Changed => {}
            Signal::Listed(kind) => {
                self.listed.insert(kind);
            }
            Signal::NotFound(kind) => {
                if let Some(custom) = self.custom.remove(&kind) {
                    custom.watcher.abort();
                    self.listed.remove(&kind);
                    // Not at once: a kind discovery still lists but that answers 404
                    // (its CRD being deleted) would otherwise be retried in a hot loop.
                    self.discover_at = Some(Instant::now() + self.settings.retry);
                }
            }
        }
        self.changed();
    }

    fn changed(&mut self) {
        let now = Instant::now();
        let first = self.pending.map_or(now, |p| p.first);
        self.pending = Some(Pending { first, last: now });
    }

    /// When the pending changes are rebuilt: after a quiet `debounce`, or `max_delay`
    /// after the first under constant churn.
    fn rebuild_at(&self) -> Option<Instant> {
        self.pending
            .map(|p| (p.last + self.settings.debounce).min(p.first + self.settings.max_delay))
    }

    fn discovered(&mut self, answer: Result<Result<Served, kube::Error>, JoinError>) {
        let served = match answer {
            Ok(Ok(served)) => served,
            Ok(Err(error)) => return self.discovery_failed(&error),
            Err(error) => return self.discovery_failed(&error),
        };
        self.failures = 0;
        if self.served.as_ref() != Some(&served) {
            log_served(&served, self.settings.rediscover);
        }
        self.custom.retain(|kind, custom| {
            let kept = served.kinds.contains(&custom.resource);
            if !kept {
                custom.watcher.abort();
                self.listed.remove(kind);
            }
            kept
        });
        for resource in &served.kinds {
            if !self.custom.contains_key(&resource.kind) {
                self.listed.remove(&resource.kind);
                let custom = self.watchers.custom(resource.clone());
                self.custom.insert(resource.kind.clone(), custom);
            }
        }
        let missing = !served.missing().is_empty();
        self.discover_at = missing.then(|| Instant::now() + self.settings.rediscover);
        self.served = Some(served);
        self.changed();
    }

    fn discovery_failed(&mut self, error: &dyn std::error::Error) {
        let delay = retry_delay(&self.settings, self.failures);
        self.failures += 1;
        self.metrics.watch_error("APIDiscovery");
        tracing::warn!(error = %with_causes(error), retry_in = ?delay, "API discovery failed: cannot tell which Istio kinds the cluster serves; the mesh config waits for it");
        self.discover_at = Some(Instant::now() + delay);
    }

    /// Whether discovery has answered and every watched kind has been listed.
    fn synced(&self) -> bool {
        self.served.is_some()
            && CORE_KINDS.iter().all(|kind| self.listed.contains(*kind))
            && self.custom.keys().all(|kind| self.listed.contains(kind))
    }

    /// The rebuild of the pending changes, to run off the async threads; none before the
    /// first full sync.
    fn rebuild(&mut self) -> Option<impl FnOnce() -> Rebuilt + Send + 'static> {
        self.pending = None;
        if !self.synced() {
            return None;
        }
        let objects = Objects {
            services: self.services.state(),
            slices: self.slices.state(),
            pods: self.pods.state(),
            custom: self.custom.values().flat_map(|c| c.store.state()).collect(),
        };
        let settings = self.settings.translate.clone();
        // Only this loop publishes, one rebuild at a time: this stays the last version. A
        // rebuild that failed took the translations with it: the next starts afresh.
        let last = self.publisher.borrow().clone();
        let mut translations = self.translations.take().unwrap_or_default();
        Some(move || {
            let started = Instant::now();
            let built = build(&objects, &settings, &mut translations);
            let unchanged = last.synced()
                && same_resources(&last.resources, &built.resources)
                && last.rejected == built.rejected;
            Rebuilt {
                built,
                translations,
                unchanged,
                services: objects.services.len(),
                pods: objects.pods.len(),
                took: started.elapsed(),
            }
        })
    }

    /// Publishes what a rebuild made, as the next version, unless nothing changed.
    fn publish(&mut self, rebuilt: Rebuilt) {
        let Rebuilt {
            built,
            translations,
            unchanged,
            services,
            pods,
            took,
        } = rebuilt;
        let translated = translations.made();
        self.translations = Some(translations);
        self.log_diagnostics(&built.diagnostics);
        if unchanged {
            tracing::debug!("rebuilt the mesh config: no change");
            return;
        }
        let last = self.publisher.borrow().clone();
        for gone in rejected_objects(&last.rejected).difference(&rejected_objects(&built.rejected))
        {
            tracing::info!(object = %gone, "fixed: back in the mesh config");
        }
        let version = last.version + 1;
        self.metrics.published(version, &built.rejected);
        tracing::info!(
            version,
            resources = built.resources.len(),
            rejected = built.rejected.len(),
            services,
            pods,
            namespaces = self.namespaces.len(),
            translated,
            ?took,
            "published a new version of the mesh config"
        );
        self.publisher.send_replace(Arc::new(ClusterConfig {
            version,
            resources: built.resources,
            rejected: built.rejected,
        }));
    }

    /// Logs each diagnostic once, while it lasts: errors (objects left out) at warn,
    /// warnings at info, notes at debug.
    fn log_diagnostics(&mut self, diagnostics: &[Diagnostic]) {
        let mut now = HashSet::with_capacity(diagnostics.len());
        for d in diagnostics {
            let text = d.to_string();
            if !self.logged.contains(&text) {
                let object = d.subject.as_deref().unwrap_or_default();
                let field = d.path.as_deref().unwrap_or_default();
                match d.severity {
                    Severity::Error => {
                        tracing::warn!(object, field, "{}; left out of the mesh config", d.message)
                    }
                    Severity::Warning => tracing::info!(object, field, "{}", d.message),
                    Severity::Note => tracing::debug!(object, field, "{}", d.message),
                }
            }
            now.insert(text);
        }
        self.logged = now;
    }
}

/// The watcher tasks, and what each needs to start.
struct Watchers {
    tasks: JoinSet<()>,
    client: Client,
    signals: UnboundedSender<Signal>,
    metrics: Arc<Metrics>,
}

impl Watchers {
    /// Starts the watcher of a built-in kind; returns its store.
    fn core<K>(&mut self, name: &str, slim: fn(&mut K)) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug
            + PartialEq
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store();
        let kind = Kind {
            name: name.to_string(),
            api: Api::all(self.client.clone()),
            writer,
            dyntype: (),
            slim: Box::new(slim),
        };
        let follow = reflect::follow(kind, self.signals.clone(), self.metrics.clone());
        self.tasks.spawn(follow.in_current_span());
        store
    }

    /// Starts the watcher of a custom kind at the version discovery chose.
    fn custom(&mut self, resource: ApiResource) -> Custom {
        let writer = Writer::<DynamicObject>::new(resource.clone());
        let store = writer.as_reader();
        let slimmed = resource.clone();
        let kind = Kind {
            name: resource.kind.clone(),
            api: Api::all_with(self.client.clone(), &resource),
            writer,
            dyntype: resource.clone(),
            slim: Box::new(move |object| slim::custom(&slimmed, object)),
        };
        let follow = reflect::follow(kind, self.signals.clone(), self.metrics.clone());
        let watcher = self.tasks.spawn(follow.in_current_span());
        Custom {
            resource,
            store,
            watcher,
        }
    }
}

/// The wait after `failures` failed API discoveries in a row: `retry`, doubling, at
/// most `rediscover`.
fn retry_delay(settings: &Settings, failures: u32) -> Duration {
    settings
        .retry
        .saturating_mul(1 << failures.min(16))
        .min(settings.rediscover)
}

fn log_served(served: &Served, rediscover: Duration) {
    let watching: Vec<String> = served
        .kinds
        .iter()
        .map(|r| format!("{} {}", r.api_version, r.kind))
        .collect();
    let missing = served.missing();
    tracing::info!(?watching, not_served = ?missing, "API discovery");
    if !served.has_istio() {
        tracing::warn!(
            "the cluster does not serve networking.istio.io (no Istio CRDs installed): the mesh config has the Services only; looking again every {rediscover:?}"
        );
    }
}

/// True when both lists hold equal resources in the same order; most are the same `Arc`.
fn same_resources(a: &[Arc<Resource>], b: &[Arc<Resource>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
}

fn rejected_objects(rejected: &[Rejection]) -> BTreeSet<&str> {
    rejected.iter().map(|r| r.object.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_rediscovery_interval() {
        let settings = Settings {
            retry: Duration::from_secs(1),
            rediscover: Duration::from_secs(60),
            ..Settings::default()
        };
        let delays: Vec<u64> = (0..8)
            .map(|failures| retry_delay(&settings, failures).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_delay(&settings, u32::MAX), settings.rediscover);
    }
}
