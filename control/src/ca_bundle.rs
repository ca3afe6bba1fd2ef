//! The CA bundle ConfigMap (`sluice-ca-root-cert`, as Istio's `istio-ca-root-cert`): the
//! CA of the control plane's certificate (key `ca.crt`) in every namespace whose pods get
//! the proxy, which mounts it to trust the discovery stream.
//!
//! A namespace needs it when it is labelled `sluice-injection=enabled`, or holds a pod
//! labelled `sluice.dev/inject: "true"` or already injected (`sluice.dev/status`); the
//! system namespaces never do. The ConfigMap is created when missing, put back when
//! edited or deleted, and re-written when the CA file changes (the certificate rotated).
//! It is never deleted: a namespace taken out of the mesh keeps it until removed by hand.
//! Writes are a POST of a new object or a PUT of the watched one (its resourceVersion
//! guards against a concurrent edit); replicas writing the same content at once see a
//! conflict, which the next watch event settles.

mod metrics;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use notify::{EventKind, RecursiveMode, Watcher};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tracing::Instrument;

use crate::discovery::watch::{Workloads, with_causes};
use crate::inject::{CA_FILE, SYSTEM_NAMESPACES, annotation};
pub use metrics::Metrics;

/// The label marking the ConfigMaps the control plane keeps.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sluice-control");

/// What to keep where, and how often to look again.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The ConfigMap's name (the injector config's `discovery.caConfigMap`).
    pub name: String,
    /// The CA (PEM certificates), re-read when its directory changes.
    pub ca_file: PathBuf,
    /// Quiet time after a change before the ConfigMaps are looked at.
    pub debounce: Duration,
    /// How often everything is looked at anyway; the longest wait after a failed write.
    pub resync: Duration,
    /// The first wait after a failed write; it doubles up to `resync`.
    pub retry: Duration,
}

impl Settings {
    /// The defaults for the ConfigMap `name` with the CA in `ca_file`.
    pub fn new(name: String, ca_file: PathBuf) -> Settings {
        Settings {
            name,
            ca_file,
            debounce: Duration::from_millis(200),
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(1),
        }
    }
}

/// The running keeper of the ConfigMaps; dropping it stops it.
#[derive(Debug)]
pub struct CaBundle {
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
    _files: notify::RecommendedWatcher,
}

impl CaBundle {
    /// Starts keeping the ConfigMaps with `client`, for the namespaces `workloads` tells
    /// of. Fails only when the CA file's directory cannot be watched.
    pub fn start(
        client: Client,
        workloads: Workloads,
        settings: Settings,
    ) -> notify::Result<CaBundle> {
        let (file_changed, file_events) = watch::channel(());
        let files = watch_file(&settings.ca_file, file_changed)?;
        let metrics = Arc::new(Metrics::default());
        let span = tracing::info_span!("ca_bundle", configmap = %settings.name);
        let run = run(client, workloads, settings, metrics.clone(), file_events);
        let task = tokio::spawn(run.instrument(span));
        Ok(CaBundle {
            task,
            metrics,
            _files: files,
        })
    }

    /// The metrics, for `GET /metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

impl Drop for CaBundle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Marks `changed` whenever something in the directory of `file` changes (the kubelet
/// swaps a mounted Secret's files by renaming a directory beside them).
fn watch_file(
    file: &Path,
    changed: watch::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
        {
            changed.send_replace(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Watches the ConfigMaps of that name in every namespace and keeps them right, until the
/// task is aborted.
async fn run(
    client: Client,
    workloads: Workloads,
    settings: Settings,
    metrics: Arc<Metrics>,
    file_events: watch::Receiver<()>,
) {
    let (maps, writer) = reflector::store();
    let (map_changed, map_events) = watch::channel(());
    let config = watcher::Config::default().fields(&format!("metadata.name={}", settings.name));
    let watch = watcher::watcher(Api::all(client.clone()), config);
    let watch_metrics = metrics.clone();
    let follow = async move {
        let stream = reflector::reflector(writer, watch).default_backoff();
        let mut stream = pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    map_changed.send_replace(());
                }
                Err(error) => {
                    watch_metrics.watch_error();
                    tracing::warn!(error = %with_causes(&error), "watching the CA bundle ConfigMaps failed; retrying with backoff");
                }
            }
        }
    };
    let keeper = Keeper {
        client,
        settings: &settings,
        metrics: &metrics,
        maps,
        workloads,
        pem: None,
    };
    tokio::select! {
        () = follow => {}
        () = keeper.run(map_events, file_events) => {}
    }
}

/// The state of the passes that make the ConfigMaps right.
struct Keeper<'a> {
    client: Client,
    settings: &'a Settings,
    metrics: &'a Metrics,
    /// The watched ConfigMaps of that name.
    maps: Store<ConfigMap>,
    workloads: Workloads,
    /// The last CA read that held certificates.
    pem: Option<String>,
}

impl Keeper<'_> {
    /// Once every store is listed, passes after each change (debounced), after a failed
    /// write's backoff, and every `resync`.
    async fn run(
        mut self,
        mut map_events: watch::Receiver<()>,
        mut file_events: watch::Receiver<()>,
    ) {
        let _ = self.maps.wait_until_ready().await;
        let _ = self.workloads.namespaces.wait_until_ready().await;
        let _ = self.workloads.pods.wait_until_ready().await;
        let mut failures = 0;
        loop {
            let wait = if self.pass().await {
                failures = 0;
                self.settings.resync
            } else {
                failures += 1;
                retry_delay(self.settings, failures)
            };
            tokio::select! {
                changed = self.workloads.changed.changed() => if changed.is_err() {
                    return; // discovery is gone
                },
                _ = map_events.changed() => {}
                _ = file_events.changed() => {}
                () = sleep(wait) => {}
            }
            sleep(self.settings.debounce).await;
        }
    }

    /// Reads the CA and makes every ConfigMap right; false when the CA cannot be read or
    /// a write failed (to be tried again).
    async fn pass(&mut self) -> bool {
        self.reload_ca();
        let Some(pem) = self.pem.clone() else {
            return false;
        };
        let wanted = namespaces(
            &self.workloads.namespaces.state(),
            &self.workloads.pods.state(),
        );
        self.metrics.namespaces(wanted.len());
        let mut ok = true;
        for namespace in &wanted {
            let key = ObjectRef::new(&self.settings.name).within(namespace);
            let stored = self.maps.get(&key);
            if let Some(write) = plan(&self.settings.name, namespace, stored.as_deref(), &pem) {
                ok &= self.write(namespace, write).await;
            }
        }
        ok
    }

    /// Re-reads the CA file; one that cannot be read or holds no certificate is logged
    /// (once per problem) and the last good CA stays.
    fn reload_ca(&mut self) {
        match read_ca(&self.settings.ca_file) {
            Ok(pem) => {
                if self.pem.as_ref().is_some_and(|old| *old != pem) {
                    tracing::info!(file = %self.settings.ca_file.display(), "the CA changed: re-writing the ConfigMaps");
                }
                self.pem = Some(pem);
            }
            Err(reason) => {
                self.metrics.ca_error();
                tracing::warn!(
                    file = %self.settings.ca_file.display(),
                    "{reason}; {}",
                    if self.pem.is_some() { "keeping the CA read before" } else { "no ConfigMap is written until it can be read" }
                );
            }
        }
    }

    /// Sends one write; true when it succeeded or lost a race the watch settles (409).
    async fn write(&self, namespace: &str, write: Write) -> bool {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let params = PostParams {
            field_manager: Some(MANAGED_BY.1.to_string()),
            ..PostParams::default()
        };
        let (action, result) = match &write {
            Write::Create(map) => ("create", api.create(&params, map).await),
            Write::Replace(map) => (
                "update",
                api.replace(&self.settings.name, &params, map).await,
            ),
        };
        match result {
            Ok(_) => {
                self.metrics.write(action, "ok");
                tracing::info!(namespace, action, "wrote the CA bundle ConfigMap");
                true
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.metrics.write(action, "conflict");
                tracing::debug!(namespace, action, reason = %status.message, "the ConfigMap changed meanwhile; looking again after the watch event");
                true
            }
            Err(error) => {
                self.metrics.write(action, "error");
                let forbidden = matches!(&error, kube::Error::Api(s) if s.code == 403);
                let hint = if forbidden {
                    " (RBAC: the control plane needs create and update on configmaps)"
                } else {
                    ""
                };
                tracing::warn!(namespace, action, error = %with_causes(&error), "cannot write the CA bundle ConfigMap{hint}; retrying with backoff");
                false
            }
        }
    }
}

/// A ConfigMap to send.
#[derive(Debug, PartialEq)]
enum Write {
    /// POST: none there yet.
    Create(ConfigMap),
    /// PUT: the stored one, with the right CA (and the stored resourceVersion).
    Replace(ConfigMap),
}

/// What makes the ConfigMap `name` of `namespace` hold `pem` (none: it does already).
fn plan(name: &str, namespace: &str, stored: Option<&ConfigMap>, pem: &str) -> Option<Write> {
    let Some(stored) = stored else {
        return Some(Write::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
                ..ObjectMeta::default()
            },
            data: Some([(CA_FILE.to_string(), pem.to_string())].into()),
            ..ConfigMap::default()
        }));
    };
    if stored
        .data
        .as_ref()
        .and_then(|d| d.get(CA_FILE))
        .map(String::as_str)
        == Some(pem)
    {
        return None;
    }
    let mut fixed = stored.clone();
    fixed
        .data
        .get_or_insert_default()
        .insert(CA_FILE.to_string(), pem.to_string());
    Some(Write::Replace(fixed))
}

/// The namespaces that need the ConfigMap: labelled for injection, or with a pod that is
/// or will be injected; known namespaces only, never the system ones.
fn namespaces(namespaces: &[Arc<Namespace>], pods: &[Arc<Pod>]) -> BTreeSet<String> {
    let known: BTreeSet<&str> = namespaces
        .iter()
        .filter_map(|ns| ns.metadata.name.as_deref())
        .collect();
    let labelled = namespaces.iter().filter(|ns| {
        label(&ns.metadata.labels, annotation::NAMESPACE_INJECTION) == Some("enabled")
    });
    let injected = pods.iter().filter(|pod| {
        label(&pod.metadata.labels, annotation::POD_INJECT) == Some("true")
            || pod
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(annotation::STATUS))
    });
    labelled
        .map(|ns| &ns.metadata)
        .chain(injected.map(|pod| &pod.metadata))
        .filter_map(|meta| match (&meta.namespace, &meta.name) {
            (Some(namespace), _) => Some(namespace.as_str()), // a pod's
            (None, Some(name)) => Some(name.as_str()),        // a namespace's own
            (None, None) => None,
        })
        .filter(|ns| known.contains(ns) && !SYSTEM_NAMESPACES.contains(ns))
        .map(str::to_string)
        .collect()
}

fn label<'a>(labels: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.as_ref()?.get(key).map(String::as_str)
}

/// The CA file's text, when it holds PEM certificates only.
fn read_ca(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the CA: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the CA holds no CERTIFICATE block".into());
    }
    Ok(text)
}

/// The wait after `failures` failed passes in a row: `retry`, doubling, at most `resync`.
fn retry_delay(settings: &Settings, failures: u32) -> Duration {
    settings
        .retry
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(settings.resync)
}
