//! Sidecar injection: one pure function from a pod (or pod template) and the injector config
//! to the injected pod, shared by the webhook and `sluice inject`; and its exact inverse.
//!
//! The pod stays JSON (`serde_json::Value`) so fields this crate does not know survive
//! untouched; it is read through the typed `PodSpec` of k8s-openapi, and only the parts
//! injection owns are written.

pub mod capture;
mod containers;
mod policy;
mod probes;
pub mod resources;
mod run;
mod status;
mod uninject;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::{Map, Value};

use crate::config::InjectConfig;
use capture::Capture;
pub use policy::{SYSTEM_NAMESPACES, Skip};
pub use run::{PodRuntime, Process, RunSpec, run_spec};
pub use status::{Mode, Status};
pub use uninject::uninject;

/// Name of the init container that programs iptables.
pub const INIT_CONTAINER: &str = "sluice-init";
/// Name of the proxy container.
pub const PROXY_CONTAINER: &str = "sluice-proxy";
/// Name of the projected volume mounted in the proxy: the pod's labels (downward API), and
/// the mesh config or the control plane's CA (see `containers::podinfo`).
pub const PODINFO_VOLUME: &str = "sluice-podinfo";
/// The ConfigMap (in the pod's namespace, optional) whose YAML files the proxy serves as
/// its mesh config: VirtualServices, DestinationRules, ServiceEntries, a MeshConfig.
pub const MESH_CONFIG_MAP: &str = "sluice-mesh-config";
/// Where the proxy finds the podinfo volume.
pub const PODINFO_PATH: &str = "/etc/sluice/podinfo";
/// The file of the podinfo volume (and the key of the CA ConfigMap) with the CA the proxy
/// trusts the control plane's discovery stream by.
pub const CA_FILE: &str = "ca.crt";

/// Labels and annotations sluice reads or writes.
pub mod annotation {
    /// Namespace label: `enabled` or `disabled`.
    pub const NAMESPACE_INJECTION: &str = "sluice-injection";
    /// Pod label: `"true"` or `"false"`, overrides the namespace.
    pub const POD_INJECT: &str = "sluice.dev/inject";
    /// What injection added (JSON, see [`super::Status`]).
    pub const STATUS: &str = "sluice.dev/status";
    pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sluice.dev/exclude-outbound-ports";
    pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sluice.dev/exclude-inbound-ports";
    pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sluice.dev/include-inbound-ports";
    pub const INCLUDE_OUTBOUND_CIDRS: &str = "traffic.sluice.dev/include-outbound-cidrs";
    pub const EXCLUDE_OUTBOUND_CIDRS: &str = "traffic.sluice.dev/exclude-outbound-cidrs";
    /// Inbound ports (numbers or container port names) the proxy delivers to the app on
    /// 127.0.0.1 instead of the pod IP, for apps that listen on loopback only; no other port
    /// reaches loopback (the proxy's `--app-loopback-ports`).
    pub const APP_LOOPBACK_PORTS: &str = "traffic.sluice.dev/app-loopback-ports";
    /// `"false"`: sluice-init (and a native proxy) go after the app's init containers, which
    /// then run without capture.
    pub const CAPTURE_INIT_CONTAINERS: &str = "traffic.sluice.dev/capture-init-containers";
    pub const PROXY_CPU: &str = "proxy.sluice.dev/cpu";
    pub const PROXY_MEMORY: &str = "proxy.sluice.dev/memory";
    pub const PROXY_CPU_LIMIT: &str = "proxy.sluice.dev/cpu-limit";
    pub const PROXY_MEMORY_LIMIT: &str = "proxy.sluice.dev/memory-limit";
    pub const PROXY_LOG_LEVEL: &str = "proxy.sluice.dev/log-level";
    /// Set in classic mode so `kubectl logs/exec` default to the app, not the proxy.
    pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
    pub const PROMETHEUS_PREFIX: &str = "prometheus.io/";
}

/// Why a pod could not be injected. Messages name the field or annotation and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// The pod is not shaped like a pod.
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    /// A sluice annotation has a value it cannot use.
    #[error("annotation {key}: {value:?}: {reason}")]
    Annotation {
        key: String,
        value: String,
        reason: String,
    },
    /// The pod and the sidecar cannot live together as configured.
    #[error("{0}")]
    Conflict(String),
    /// `sluice.dev/status` cannot be read back (uninject).
    #[error("annotation sluice.dev/status: {0}")]
    Status(String),
}

/// The namespace a pod is created in.
#[derive(Clone, Copy, Debug)]
pub struct Namespace<'a> {
    pub name: &'a str,
    /// The namespace's labels; `None` when unknown (the webhook's namespaceSelector already
    /// chose, or the user injects by hand), which counts as enabled.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

/// What injection did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The injected pod, and anything the user should know (e.g. a probe left as it was).
    Injected { pod: Value, warnings: Vec<String> },
    /// Left unchanged, and why.
    Skipped(Skip),
}

/// Injects sluice-init and sluice-proxy into a pod or pod template (`{metadata, spec}`).
pub fn inject(
    pod: &Value,
    config: &InjectConfig,
    namespace: &Namespace,
) -> Result<Outcome, InjectError> {
    let source = PodSource::read(pod)?;
    if source.annotations.contains_key(annotation::STATUS) {
        return Ok(Outcome::Skipped(Skip::AlreadyInjected));
    }
    if let Some(skip) = policy::decide(&source.labels, &source.spec, namespace)? {
        return Ok(Outcome::Skipped(skip));
    }
    let plan = Plan::new(&source, config)?;
    let mut out = pod.clone();
    let warnings = plan.apply(&mut out, &source, config)?;
    Ok(Outcome::Injected { pod: out, warnings })
}

/// Checks a proxy log level (`trace`, `debug`, `info`, `warn`, `error`, `off`).
pub fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(format!("{level:?} is not one of {}", LEVELS.join(", ")))
    }
}

/// The parts of the input pod injection reads.
struct PodSource {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: PodSpec,
}

impl PodSource {
    fn read(pod: &Value) -> Result<Self, InjectError> {
        let Some(object) = pod.as_object() else {
            return Err(malformed("", "a pod must be a JSON/YAML object"));
        };
        let metadata = object.get("metadata").filter(|m| !m.is_null());
        let string_map = |field: &str| -> Result<BTreeMap<String, String>, InjectError> {
            match metadata.and_then(|m| m.get(field)).filter(|v| !v.is_null()) {
                None => Ok(BTreeMap::new()),
                Some(v) => typed(v, &format!("metadata.{field}")),
            }
        };
        let labels = string_map("labels")?;
        let annotations = string_map("annotations")?;
        let spec = match object.get("spec") {
            Some(spec) => typed(spec, "spec")?,
            None => return Err(malformed("spec", "missing: a pod needs a spec")),
        };
        Ok(Self {
            labels,
            annotations,
            spec,
        })
    }

    /// Ports by name across the pod, for `traffic.sluice.dev/*` lists.
    fn port_by_name(&self, name: &str) -> Option<u16> {
        let init = self.spec.init_containers.iter().flatten();
        init.chain(&self.spec.containers)
            .find_map(|c| container_port(c, name))
    }
}

fn container_port(container: &Container, name: &str) -> Option<u16> {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value, path: &str) -> Result<T, InjectError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            path.to_string()
        } else {
            format!("{path}.{inner}")
        };
        malformed(&path, &e.into_inner().to_string())
    })
}

fn malformed(path: &str, reason: &str) -> InjectError {
    InjectError::Malformed {
        path: path.into(),
        reason: reason.into(),
    }
}

/// What will be added to one pod, decided before anything is written.
struct Plan {
    capture: Capture,
    native: bool,
    init_first: bool,
    log_level: String,
    proxy_resources: k8s_openapi::api::core::v1::ResourceRequirements,
}

impl Plan {
    fn new(source: &PodSource, config: &InjectConfig) -> Result<Self, InjectError> {
        let annotations = &source.annotations;
        let capture = Capture::resolve(&config.capture, annotations, &|name| {
            source.port_by_name(name)
        })?;
        let init_first = match annotations.get(annotation::CAPTURE_INIT_CONTAINERS) {
            None => true,
            Some(v) => parse_bool(annotation::CAPTURE_INIT_CONTAINERS, v)?,
        };
        let log_level = match annotations.get(annotation::PROXY_LOG_LEVEL) {
            None => config.proxy.log_level.clone(),
            Some(v) => {
                check_log_level(v.trim()).map_err(|reason| InjectError::Annotation {
                    key: annotation::PROXY_LOG_LEVEL.into(),
                    value: v.clone(),
                    reason,
                })?;
                v.trim().to_string()
            }
        };
        let proxy_resources = resources::proxy(&config.proxy.resources, annotations)?;
        check_conflicts(&source.spec, config)?;
        Ok(Self {
            capture,
            native: config.native_sidecar,
            init_first,
            log_level,
            proxy_resources,
        })
    }

    fn apply(
        self,
        pod: &mut Value,
        source: &PodSource,
        config: &InjectConfig,
    ) -> Result<Vec<String>, InjectError> {
        let object = pod
            .as_object_mut()
            .ok_or_else(|| malformed("", "not an object"))?;
        let mut status = Status::new(self.native, config);
        let spec = object.get_mut("spec").and_then(Value::as_object_mut);
        let spec = spec.ok_or_else(|| malformed("spec", "must be an object"))?;

        let rewrite = config
            .rewrite_probes
            .then(|| probes::rewrite(spec, &|port| self.capture.captures_inbound(port), config));
        let (app_probes, warnings) = match rewrite {
            Some(r) => {
                status.probes = r.originals;
                (r.app_probes, r.warnings)
            }
            None => (BTreeMap::new(), Vec::new()),
        };

        let init = containers::init(config, &self.capture);
        let settings = containers::ProxySettings {
            log_level: &self.log_level,
            resources: self.proxy_resources.clone(),
            app_probes: &app_probes,
            app_loopback_ports: self.capture.app_loopback_ports(),
        };
        let proxy = containers::proxy(config, settings);
        let inits = ensure_array(spec, "initContainers", "spec.initContainers", &mut status);
        let at = if self.init_first { 0 } else { inits.len() };
        if self.native {
            inits.splice(at..at, [init, proxy]);
            status.init_containers = vec![INIT_CONTAINER.into(), PROXY_CONTAINER.into()];
        } else {
            inits.insert(at, init);
            status.init_containers = vec![INIT_CONTAINER.into()];
            let app = ensure_array(spec, "containers", "spec.containers", &mut status);
            app.insert(0, proxy);
            status.containers = vec![PROXY_CONTAINER.into()];
        }
        ensure_array(spec, "volumes", "spec.volumes", &mut status)
            .push(containers::podinfo(config));
        status.volumes = vec![PODINFO_VOLUME.into()];

        self.annotate(object, source, config, status)?;
        Ok(warnings)
    }

    fn annotate(
        &self,
        pod: &mut Map<String, Value>,
        source: &PodSource,
        config: &InjectConfig,
        mut status: Status,
    ) -> Result<(), InjectError> {
        let existing = &source.annotations;
        let mut added: Vec<(&str, String)> = Vec::new();
        let has_prometheus = existing
            .keys()
            .any(|k| k.starts_with(annotation::PROMETHEUS_PREFIX));
        if config.prometheus_annotations && !has_prometheus {
            added.push(("prometheus.io/scrape", "true".into()));
            added.push(("prometheus.io/port", config.proxy.ports.metrics.to_string()));
            added.push(("prometheus.io/path", "/metrics".into()));
        }
        if !self.native
            && !existing.contains_key(annotation::DEFAULT_CONTAINER)
            && let Some(app) = source.spec.containers.first()
        {
            added.push((annotation::DEFAULT_CONTAINER, app.name.clone()));
        }
        status.annotations = added.iter().map(|(k, _)| k.to_string()).collect();
        if !pod.get("metadata").is_some_and(Value::is_object) {
            pod.insert("metadata".into(), Value::Object(Map::new()));
            status.created.push("metadata".into());
        }
        let metadata = pod.get_mut("metadata").and_then(Value::as_object_mut);
        let metadata = metadata.ok_or_else(|| malformed("metadata", "must be an object"))?;
        let annotations = ensure_map(metadata, "annotations", "metadata.annotations", &mut status);
        for (key, value) in added {
            annotations.insert(key.into(), Value::String(value));
        }
        annotations.insert(
            annotation::STATUS.into(),
            Value::String(status.to_annotation()),
        );
        Ok(())
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, InjectError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(InjectError::Annotation {
            key: key.into(),
            value: value.into(),
            reason: "must be \"true\" or \"false\"".into(),
        }),
    }
}

/// The app must not use the proxy's ports or the names injection adds.
fn check_conflicts(spec: &PodSpec, config: &InjectConfig) -> Result<(), InjectError> {
    let ports = config.proxy.ports.named();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in all {
        for port in container.ports.iter().flatten() {
            let tcp = port.protocol.as_deref().is_none_or(|p| p == "TCP");
            if let Some((what, _)) = ports
                .iter()
                .find(|(_, p)| i32::from(*p) == port.container_port)
                && tcp
            {
                return Err(InjectError::Conflict(format!(
                    "container {:?} uses port {}, which is sluice-proxy's {what} port; move \
                     the app, or change proxy.ports.{what} in the injector config",
                    container.name, port.container_port
                )));
            }
        }
    }
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == PODINFO_VOLUME)
    {
        return Err(InjectError::Conflict(format!(
            "the pod already has a volume named {PODINFO_VOLUME:?}, which injection adds; \
             rename it"
        )));
    }
    Ok(())
}

/// The array at `key`, created (and recorded in the status) when absent.
fn ensure_array<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
    status: &mut Status,
) -> &'a mut Vec<Value> {
    if !object.get(key).is_some_and(Value::is_array) {
        if object.get(key).is_none_or(Value::is_null) {
            status.created.push(path.into());
        }
        object.insert(key.into(), Value::Array(Vec::new()));
    }
    match object.get_mut(key) {
        Some(Value::Array(array)) => array,
        _ => unreachable!("inserted above"),
    }
}

/// The object at `key`, created (and recorded in the status) when absent.
fn ensure_map<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
    status: &mut Status,
) -> &'a mut Map<String, Value> {
    if !object.get(key).is_some_and(Value::is_object) {
        if object.get(key).is_none_or(Value::is_null) {
            status.created.push(path.into());
        }
        object.insert(key.into(), Value::Object(Map::new()));
    }
    match object.get_mut(key) {
        Some(Value::Object(map)) => map,
        _ => unreachable!("inserted above"),
    }
}

#[cfg(test)]
mod tests;
