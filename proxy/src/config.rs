//! Config: load, validate and compile the YAML under `--config` (watching the files for
//! changes) or follow the control plane's [`discovery`] stream; publish each good version
//! atomically and keep the last good one when a change is bad.

pub mod discovery;
mod watch;

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use sluice_api::model::{Model, Role, Workload};
use sluice_api::{load_paths, validate};
use tokio::sync::watch as tokio_watch;

pub use watch::watch;

use crate::balance::Balancers;
use crate::cluster::{Breakers, Clusters};
use crate::gray_guard::EdgeGuards;
use crate::metrics::ConfigMetrics;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Validation found errors; the config was not applied.
    #[error("config under {path} rejected, the last good config stays in force:\n  {}", errors.join("\n  "))]
    Invalid {
        /// The `--config` path.
        path: PathBuf,
        /// Each error, naming file, document, resource and field.
        errors: Vec<String>,
    },
    /// A version from the control plane could not be loaded; it was nacked.
    #[error("version {version} from the control plane rejected, the last good config stays in force:\n  {}", errors.join("\n  "))]
    Discovery {
        /// The control plane's version.
        version: u64,
        /// Each error, naming the Kubernetes object, resource and field.
        errors: Vec<String>,
    },
}

/// One applied config version: the model and the run-time state built for it.
#[derive(Debug)]
pub struct Snapshot {
    /// Version number, counting good configs from 1.
    pub version: u64,
    /// The compiled model.
    pub model: Arc<Model>,
    /// Endpoint choice per service and subset.
    pub balancers: Balancers,
    /// Upstream settings and counters per service, subset and port.
    pub clusters: Clusters,
    /// Protected gray headers by Gateway (gateway mode).
    pub guards: EdgeGuards,
}

impl Snapshot {
    /// A snapshot of a model with fresh counters (tests build these directly).
    pub fn new(version: u64, model: Model) -> Snapshot {
        Snapshot::build(version, model, &Breakers::default())
    }

    /// A snapshot of a model that keeps the counters of the destinations it
    /// shares with earlier versions.
    pub fn build(version: u64, model: Model, breakers: &Breakers) -> Snapshot {
        let balancers = Balancers::build(&model);
        let clusters = Clusters::build(&model, breakers);
        let guards = EdgeGuards::build(&model);
        Snapshot {
            version,
            model: Arc::new(model),
            balancers,
            clusters,
            guards,
        }
    }
}

/// What the admin endpoint reports about config.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// Version in force (0 before the first good config).
    pub version: u64,
    /// The control plane's version in force (discovery mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_version: Option<u64>,
    /// When it was applied.
    pub applied_at: Option<SystemTime>,
    /// Warnings of the version in force.
    pub warnings: Vec<String>,
    /// The error of the last rejected change, if the last change was rejected.
    pub last_error: Option<String>,
    /// When that change was rejected.
    pub last_error_at: Option<SystemTime>,
}

/// The published config: read lock-free by the request path, swapped atomically.
#[derive(Debug)]
pub struct Store {
    current: ArcSwapOption<Snapshot>,
    status: Mutex<Status>,
    fingerprint: Mutex<Option<u64>>,
    ready: tokio_watch::Sender<bool>,
    metrics: ConfigMetrics,
    breakers: Breakers,
    role: Role,
}

impl Store {
    /// An empty store: not ready until the first good config.
    pub fn new(metrics: ConfigMetrics) -> Store {
        Store {
            current: ArcSwapOption::empty(),
            status: Mutex::default(),
            fingerprint: Mutex::default(),
            ready: tokio_watch::channel(false).0,
            metrics,
            breakers: Breakers::default(),
            role: Role::Sidecar,
        }
    }

    /// An empty store that compiles config for an edge gateway.
    pub fn gateway(metrics: ConfigMetrics) -> Store {
        Store {
            role: Role::Gateway,
            ..Store::new(metrics)
        }
    }

    /// What the config is compiled for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Changes each time a config version is put in force.
    pub fn changes(&self) -> tokio_watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// A store serving `model` at once (tests).
    pub fn with_model(model: Model, metrics: ConfigMetrics) -> Store {
        let store = Store::new(metrics);
        store.publish(model, Vec::new(), None);
        store
    }

    /// The config in force, if any.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Config status for the admin endpoint.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves once a good config is in force.
    pub async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        // The sender lives in self, so waiting cannot fail.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// True once a good config is in force.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Loads the config at `path` if its files changed since the last load,
    /// and applies it when it is valid.
    pub fn reload(&self, path: &Path, workload: &Workload) {
        let fingerprint = fingerprint(path);
        {
            let mut last = self
                .fingerprint
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *last == Some(fingerprint) {
                return;
            }
            *last = Some(fingerprint);
        }
        match load_as(path, workload, self.role) {
            Ok((model, warnings)) => self.publish(model, warnings, None),
            Err(err) => self.reject(&err),
        }
    }

    /// Puts `model` in force (`discovery_version`: the control plane's version of it).
    pub fn publish(&self, model: Model, mut warnings: Vec<String>, discovery_version: Option<u64>) {
        let version = self.status().version + 1;
        let services = model.registry.services.len();
        let hosts = model.routes.len();
        let snap = Snapshot::build(version, model, &self.breakers);
        warnings.extend(snap.clusters.warnings.iter().cloned());
        warnings.extend(snap.model.edge.warnings.iter().cloned());
        self.current.store(Some(Arc::new(snap)));
        {
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            *status = Status {
                version,
                discovery_version,
                applied_at: Some(SystemTime::now()),
                warnings,
                last_error: None,
                last_error_at: None,
            };
        }
        self.metrics.version.set(version as i64);
        self.ready.send_replace(true);
        tracing::info!(
            version,
            ?discovery_version,
            services,
            hosts,
            "config applied"
        );
    }

    /// Records a change that was not applied; the config in force stays.
    pub fn reject(&self, err: &ConfigError) {
        tracing::error!("{err}");
        self.metrics.reload_errors.inc();
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.last_error = Some(err.to_string());
        status.last_error_at = Some(SystemTime::now());
    }
}

/// Loads, validates and compiles the config at `path` for a workload; returns
/// the model and the warnings.
pub fn load(path: &Path, workload: &Workload) -> Result<(Model, Vec<String>), ConfigError> {
    load_as(path, workload, Role::Sidecar)
}

/// [`load`] for a proxy in `role`.
pub fn load_as(
    path: &Path,
    workload: &Workload,
    role: Role,
) -> Result<(Model, Vec<String>), ConfigError> {
    let mut set = load_paths(&[path]);
    validate::validate(&mut set);
    if set.has_errors() {
        let errors = set.errors().map(ToString::to_string).collect();
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            errors,
        });
    }
    let warnings = set.diagnostics.iter().map(ToString::to_string).collect();
    Ok((Model::compile_as(&set.resources, workload, role), warnings))
}

/// A hash of the config files' names and contents, to skip reloads that change nothing.
fn fingerprint(path: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    match sluice_api::load::config_files(path) {
        Ok(files) => {
            for file in files {
                file.hash(&mut h);
                std::fs::read(&file).ok().hash(&mut h);
            }
        }
        Err(e) => e.hash(&mut h),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n";
    const BAD: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.example.com]\n  ports: [{number: 99999, name: http}]\n";

    #[test]
    fn a_bad_change_keeps_the_last_good_config_and_reports_why() {
        let dir = std::env::temp_dir().join(format!("sluice-proxy-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mesh.yaml");
        let store = Store::new(ConfigMetrics::default());
        let workload = Workload::default();

        std::fs::write(&file, BAD).unwrap();
        store.reload(&dir, &workload);
        assert!(!store.is_ready(), "no good config yet");
        assert!(store.status().last_error.unwrap().contains("99999"));

        std::fs::write(&file, GOOD).unwrap();
        store.reload(&dir, &workload);
        assert!(store.is_ready());
        assert_eq!(store.current().unwrap().version, 1);
        assert_eq!(store.status().last_error, None);

        store.reload(&dir, &workload);
        assert_eq!(
            store.current().unwrap().version,
            1,
            "unchanged files are no new version"
        );

        std::fs::write(&file, BAD).unwrap();
        store.reload(&dir, &workload);
        let current = store.current().unwrap();
        assert_eq!(current.version, 1);
        assert_eq!(current.model.registry.services.len(), 1);
        let status = store.status();
        assert!(status.last_error.unwrap().contains("mesh.yaml"));
        assert_eq!(store.metrics.reload_errors.get(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
