//! The containers and volume injection adds, built as typed Kubernetes objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, ContainerPort, DownwardAPIProjection,
    DownwardAPIVolumeFile, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, Probe, ProjectedVolumeSource, ResourceRequirements,
    SeccompProfile, SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use sluice_api::host::ClusterDomain;

use super::capture::Capture;
use super::resources;
use super::{
    CA_FILE, INIT_CONTAINER, MESH_CONFIG_MAP, PODINFO_PATH, PODINFO_VOLUME, PROXY_CONTAINER,
};
use crate::config::InjectConfig;

/// The health path of the proxy, 200 once its config is loaded.
pub const READY_PATH: &str = "/healthz/ready";

/// sluice-init: programs iptables, as root with NET_ADMIN and NET_RAW only, then exits.
pub fn init(config: &InjectConfig, capture: &Capture) -> Value {
    let container = Container {
        name: INIT_CONTAINER.into(),
        image: Some(config.images.init.clone()),
        image_pull_policy: Some(config.images.pull_policy.clone()),
        args: Some(capture.init_args(config)),
        resources: Some(resources::requirements(&config.init.resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            privileged: Some(false),
            // iptables-legacy takes its lock in /run.
            read_only_root_filesystem: Some(false),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    to_value(&container)
}

/// What varies per pod in the proxy container.
pub struct ProxySettings<'a> {
    pub log_level: &'a str,
    pub resources: ResourceRequirements,
    /// Rewritten probes the proxy answers for (see `probes`).
    pub app_probes: &'a BTreeMap<String, Value>,
    /// `--app-loopback-ports` (comma-separated), empty for none.
    pub app_loopback_ports: String,
}

/// sluice-proxy: uid/gid 1337, non-root, no capabilities (NET_ADMIN in tproxy mode, for
/// IP_TRANSPARENT), read-only root filesystem, configured by environment variables because
/// half of them come from the downward API.
pub fn proxy(config: &InjectConfig, settings: ProxySettings) -> Value {
    let ports = &config.proxy.ports;
    let tproxy = config.capture.mode == "tproxy";
    let ready = Probe {
        http_get: Some(HTTPGetAction {
            path: Some(READY_PATH.into()),
            port: IntOrString::Int(ports.health.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let native = config.native_sidecar;
    let container = Container {
        name: PROXY_CONTAINER.into(),
        image: Some(config.images.proxy.clone()),
        image_pull_policy: Some(config.images.pull_policy.clone()),
        env: Some(env(config, &settings)),
        ports: Some(vec![
            port("sluice-health", ports.health),
            port("sluice-metrics", ports.metrics),
        ]),
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(3),
            timeout_seconds: Some(1),
            ..ready.clone()
        }),
        // Native: the kubelet starts the app only once this succeeds.
        startup_probe: native.then(|| Probe {
            period_seconds: Some(1),
            failure_threshold: Some(config.proxy.ready_timeout_seconds.max(1) as i32),
            timeout_seconds: Some(1),
            ..ready
        }),
        // Classic: the kubelet starts the next container only once this hook returns.
        lifecycle: (!native).then(|| Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        PROXY_CONTAINER.into(),
                        "wait".into(),
                        format!("--timeout={}s", config.proxy.ready_timeout_seconds),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        restart_policy: native.then(|| "Always".into()),
        resources: Some(settings.resources),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: tproxy.then(|| vec!["NET_ADMIN".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_group: Some(config.proxy.gid),
            run_as_non_root: Some(true),
            run_as_user: Some(config.proxy.uid),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: PODINFO_VOLUME.into(),
            mount_path: PODINFO_PATH.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    to_value(&container)
}

fn env(config: &InjectConfig, settings: &ProxySettings) -> Vec<EnvVar> {
    let ports = &config.proxy.ports;
    let mut env = vec![
        field_env("SLUICE_POD_NAME", "metadata.name"),
        field_env("SLUICE_NAMESPACE", "metadata.namespace"),
        field_env("SLUICE_POD_IP", "status.podIP"),
        field_env("SLUICE_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        value_env("SLUICE_LABELS_FILE", format!("{PODINFO_PATH}/labels")),
    ];
    // Where the config comes from, then the settings.
    match &config.discovery {
        None => env.push(value_env("SLUICE_CONFIG", PODINFO_PATH.into())),
        Some(discovery) => {
            env.push(value_env("SLUICE_DISCOVERY", discovery.url()));
            if !discovery.insecure {
                let ca = format!("{PODINFO_PATH}/{CA_FILE}");
                env.push(value_env("SLUICE_DISCOVERY_CA", ca));
            }
        }
    }
    if config.cluster_domain != ClusterDomain::default() {
        let domain = config.cluster_domain.to_string();
        env.push(value_env("SLUICE_CLUSTER_DOMAIN", domain));
    }
    env.extend([
        value_env("SLUICE_LOG_LEVEL", settings.log_level.into()),
        value_env("SLUICE_OUTBOUND_PORT", ports.outbound.to_string()),
        value_env("SLUICE_INBOUND_PORT", ports.inbound.to_string()),
        value_env("SLUICE_ADMIN_PORT", ports.admin.to_string()),
        value_env("SLUICE_HEALTH_PORT", ports.health.to_string()),
        value_env("SLUICE_METRICS_PORT", ports.metrics.to_string()),
    ]);
    if config.capture.mode == "tproxy" {
        env.push(value_env("SLUICE_MODE", "tproxy".into()));
    }
    if !settings.app_loopback_ports.is_empty() {
        let ports = settings.app_loopback_ports.clone();
        env.push(value_env("SLUICE_APP_LOOPBACK_PORTS", ports));
    }
    if let Some(threads) = concurrency(&settings.resources) {
        env.push(value_env("SLUICE_CONCURRENCY", threads.to_string()));
    }
    if !settings.app_probes.is_empty() {
        let probes = serde_json::to_string(settings.app_probes).unwrap_or_default();
        env.push(value_env("SLUICE_APP_PROBES", probes));
    }
    env
}

/// Worker threads for the proxy's CPU limit, sized as Istio sizes them: the
/// limit in cores rounded up (1 gives the cheaper single-threaded runtime);
/// none without a limit, leaving the proxy's default of 2.
fn concurrency(resources: &ResourceRequirements) -> Option<u32> {
    let cpu = resources.limits.as_ref()?.get("cpu")?;
    let cores = resources::Quantity::parse(&cpu.0)?.value();
    Some(cores.ceil().clamp(1.0, 64.0) as u32)
}

/// The proxy's projected volume: the pod's labels from the downward API (`labels`, one
/// `key="value"` per line, kept up to date by the kubelet: labels as a whole are not available
/// as an environment variable), and where the proxy's config comes from:
///
/// - without `discovery` in the config: the YAML files of the ConfigMap [`MESH_CONFIG_MAP`]
///   of the pod's namespace (optional: without it the proxy starts with an empty registry
///   and passes traffic through), which the proxy reads as its `--config` directory and
///   watches;
/// - with `discovery`: the control plane's CA, `ca.crt` of the ConfigMap
///   `discovery.caConfigMap` of the pod's namespace, as [`CA_FILE`]. Not optional: without
///   it the kubelet does not start the pod and says why in its events, rather than starting
///   a proxy that cannot trust the control plane (an app that must not start outside the
///   mesh would then wait on a crash-looping sidecar). Nothing with `insecure: true`.
pub fn podinfo(config: &InjectConfig) -> Value {
    let labels = VolumeProjection {
        downward_api: Some(DownwardAPIProjection {
            items: Some(vec![DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    };
    let config_map = match &config.discovery {
        None => Some(ConfigMapProjection {
            name: MESH_CONFIG_MAP.into(),
            optional: Some(true),
            ..Default::default()
        }),
        Some(discovery) if discovery.insecure => None,
        Some(discovery) => Some(ConfigMapProjection {
            name: discovery.ca_config_map.clone(),
            items: Some(vec![KeyToPath {
                key: CA_FILE.into(),
                path: CA_FILE.into(),
                ..Default::default()
            }]),
            optional: Some(false),
        }),
    };
    let sources = std::iter::once(labels)
        .chain(config_map.map(|config_map| VolumeProjection {
            config_map: Some(config_map),
            ..Default::default()
        }))
        .collect();
    let volume = Volume {
        name: PODINFO_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            ..Default::default()
        }),
        ..Default::default()
    };
    to_value(&volume)
}

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port.into(),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn value_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// k8s-openapi types always serialize; `Null` would only mean a bug in this module.
fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}
