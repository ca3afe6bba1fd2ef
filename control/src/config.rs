//! The injector config: images, proxy ports and resources, capture defaults, sidecar mode,
//! and where proxies get their mesh config (the control plane's discovery, or a ConfigMap).
//!
//! One YAML file (`sluice-control --config`, `sluice inject --config`, the chart's ConfigMap);
//! every field has a default, unknown fields are errors that name the field.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_api::host::ClusterDomain;

use crate::inject::capture::{self, ListKind};
use crate::inject::resources;

/// Everything injection needs besides the pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InjectConfig {
    /// Proxy as a native sidecar (an init container with `restartPolicy: Always`, Kubernetes
    /// ≥ 1.28) instead of the first app container with a postStart hook.
    pub native_sidecar: bool,
    /// Container images and their pull policy.
    pub images: Images,
    /// The sluice-proxy container.
    pub proxy: ProxyConfig,
    /// The sluice-init container.
    pub init: InitConfig,
    /// Capture defaults; the `traffic.sluice.dev/*` annotations override them per pod.
    pub capture: CaptureConfig,
    /// Rewrite httpGet, tcpSocket and grpc probes on captured ports to go through the proxy's
    /// health port (see docs/injection.md).
    pub rewrite_probes: bool,
    /// Add `prometheus.io/{scrape,port,path}` for the proxy when the pod has no
    /// `prometheus.io/*` annotation of its own.
    pub prometheus_annotations: bool,
    /// The control plane's discovery stream: when set, injected proxies get their config from
    /// it; when absent, from the ConfigMap `sluice-mesh-config` of their namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryConfig>,
    /// The cluster's DNS domain, given to the proxies (`SLUICE_CLUSTER_DOMAIN`) when it is
    /// not `cluster.local`: short host names expand in it.
    #[serde(skip_serializing_if = "is_default_domain")]
    pub cluster_domain: ClusterDomain,
}

fn is_default_domain(domain: &ClusterDomain) -> bool {
    *domain == ClusterDomain::default()
}

/// Where injected proxies reach the control plane's discovery stream, and how they trust it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// `HOST:PORT` of the stream, e.g. `sluice-control.sluice-system.svc:15012`; the host is
    /// a name of the control plane's certificate.
    pub address: String,
    /// The ConfigMap in each injected pod's namespace whose `ca.crt` holds the CA that signed
    /// the control plane's certificate (as Istio's `istio-ca-root-cert`). A pod cannot start
    /// until it exists.
    pub ca_config_map: String,
    /// Plain text (`http://`) without a CA: local tests only, never on a real cluster.
    pub insecure: bool,
}

/// Images of the injected containers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Images {
    pub init: String,
    pub proxy: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub pull_policy: String,
}

/// The proxy's identity, ports, resources and log level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub uid: i64,
    pub gid: i64,
    pub log_level: String,
    pub ports: Ports,
    pub resources: Resources,
    /// Classic mode: how long the postStart hook holds the app for the proxy to become ready.
    pub ready_timeout_seconds: u32,
}

/// The proxy's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Ports {
    pub outbound: u16,
    pub inbound: u16,
    pub admin: u16,
    pub health: u16,
    pub metrics: u16,
}

/// Requests and limits; an absent value is left unset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resources {
    pub requests: CpuMemory,
    pub limits: CpuMemory,
}

/// A CPU and a memory quantity (`100m`, `64Mi`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CpuMemory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// The sluice-init container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InitConfig {
    pub resources: Resources,
}

/// Capture defaults, in the syntax of sluice-init's flags (comma-separated lists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// `redirect` or `tproxy` (the proxy then gets NET_ADMIN for IP_TRANSPARENT).
    pub mode: String,
    /// `auto`, `on` or `off`.
    pub ipv6: String,
    /// `auto`, `legacy` or `nft`.
    pub backend: String,
    /// `*`, a list, or empty; replaced by `traffic.sluice.dev/include-inbound-ports`.
    pub inbound_ports: String,
    /// Added to by `traffic.sluice.dev/exclude-inbound-ports`.
    pub exclude_inbound_ports: String,
    /// `*`, a list, or empty; replaced by `traffic.sluice.dev/include-outbound-cidrs`.
    pub outbound_cidrs: String,
    /// Added to by `traffic.sluice.dev/exclude-outbound-cidrs`.
    pub exclude_outbound_cidrs: String,
    /// Added to by `traffic.sluice.dev/exclude-outbound-ports`.
    pub exclude_outbound_ports: String,
    pub include_outbound_ports: String,
    pub exclude_interfaces: String,
}

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            native_sidecar: true,
            images: Images::default(),
            proxy: ProxyConfig::default(),
            init: InitConfig::default(),
            capture: CaptureConfig::default(),
            rewrite_probes: true,
            prometheus_annotations: true,
            discovery: None,
            cluster_domain: ClusterDomain::default(),
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            address: String::new(),
            ca_config_map: DEFAULT_CA_CONFIG_MAP.into(),
            insecure: false,
        }
    }
}

/// The ConfigMap of the control plane's CA in each injected namespace, by default.
pub const DEFAULT_CA_CONFIG_MAP: &str = "sluice-ca-root-cert";

impl Default for Images {
    fn default() -> Self {
        let version = env!("CARGO_PKG_VERSION");
        Self {
            init: format!("ghcr.io/sluice-mesh/sluice-init:{version}"),
            proxy: format!("ghcr.io/sluice-mesh/sluice-proxy:{version}"),
            pull_policy: "IfNotPresent".into(),
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            uid: 1337,
            gid: 1337,
            log_level: "info".into(),
            ports: Ports::default(),
            resources: Resources {
                requests: CpuMemory::new("100m", "64Mi"),
                limits: CpuMemory {
                    cpu: None,
                    memory: Some("256Mi".into()),
                },
            },
            ready_timeout_seconds: 60,
        }
    }
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            outbound: 15001,
            inbound: 15006,
            admin: 15000,
            health: 15021,
            metrics: 15090,
        }
    }
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            resources: Resources {
                requests: CpuMemory::new("10m", "16Mi"),
                limits: CpuMemory::new("100m", "64Mi"),
            },
        }
    }
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            mode: "redirect".into(),
            ipv6: "auto".into(),
            backend: "auto".into(),
            inbound_ports: "*".into(),
            exclude_inbound_ports: String::new(),
            outbound_cidrs: "*".into(),
            exclude_outbound_cidrs: String::new(),
            exclude_outbound_ports: String::new(),
            include_outbound_ports: String::new(),
            exclude_interfaces: String::new(),
        }
    }
}

impl CpuMemory {
    fn new(cpu: &str, memory: &str) -> Self {
        Self {
            cpu: Some(cpu.into()),
            memory: Some(memory.into()),
        }
    }
}

impl Ports {
    /// The ports with their names, in a fixed order.
    pub fn named(&self) -> [(&'static str, u16); 5] {
        [
            ("outbound", self.outbound),
            ("inbound", self.inbound),
            ("admin", self.admin),
            ("health", self.health),
            ("metrics", self.metrics),
        ]
    }
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the injector config: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: injector config: {reason}")]
    Invalid { path: String, reason: String },
}

impl InjectConfig {
    /// Reads and checks a YAML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|reason| ConfigError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses and checks YAML text; the error names the field. The text is laid over the
    /// defaults field by field (`proxy.resources.requests.cpu` alone keeps the default memory
    /// request and limits); `null` removes an optional default.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let given: serde_json::Value =
            serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let mut merged = serde_json::to_value(Self::default()).map_err(|e| e.to_string())?;
        match given {
            serde_json::Value::Null => {}
            serde_json::Value::Object(_) => overlay(&mut merged, given),
            _ => return Err("expected a mapping of settings".into()),
        }
        let config: Self = serde_path_to_error::deserialize(&merged).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }
        })?;
        config.check()?;
        Ok(config)
    }

    /// Reports every bad value at once.
    pub fn check(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        let checks = [
            (
                !self.images.init.is_empty(),
                "images.init: must not be empty".to_string(),
            ),
            (
                !self.images.proxy.is_empty(),
                "images.proxy: must not be empty".to_string(),
            ),
            (
                ["Always", "IfNotPresent", "Never"].contains(&self.images.pull_policy.as_str()),
                format!(
                    "images.pullPolicy: {:?} is not Always, IfNotPresent or Never",
                    self.images.pull_policy
                ),
            ),
            (
                (1..=i64::from(i32::MAX)).contains(&self.proxy.uid),
                format!(
                    "proxy.uid: {} must be a non-root uid (1..2147483647)",
                    self.proxy.uid
                ),
            ),
            (
                (0..=i64::from(i32::MAX)).contains(&self.proxy.gid),
                format!("proxy.gid: {} is out of range", self.proxy.gid),
            ),
        ];
        errors.extend(checks.into_iter().filter(|(ok, _)| !ok).map(|(_, e)| e));
        if let Err(e) = crate::inject::check_log_level(&self.proxy.log_level) {
            errors.push(format!("proxy.logLevel: {e}"));
        }
        let ports = self.proxy.ports.named();
        for (i, (name, port)) in ports.iter().enumerate() {
            if *port == 0 {
                errors.push(format!("proxy.ports.{name}: must not be 0"));
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                errors.push(format!(
                    "proxy.ports.{name}: {port} is also proxy.ports.{other}"
                ));
            }
        }
        for (field, res) in [
            ("proxy", &self.proxy.resources),
            ("init", &self.init.resources),
        ] {
            if let Err(e) = resources::check(res, &format!("{field}.resources")) {
                errors.push(e);
            }
        }
        errors.extend(self.capture.check());
        if let Some(discovery) = &self.discovery {
            errors.extend(discovery.check());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl CaptureConfig {
    fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let one_of = |field: &str, value: &str, allowed: &[&str]| {
            (!allowed.contains(&value)).then(|| {
                format!(
                    "capture.{field}: {value:?} is not one of {}",
                    allowed.join(", ")
                )
            })
        };
        errors.extend(one_of("mode", &self.mode, &["redirect", "tproxy"]));
        errors.extend(one_of("ipv6", &self.ipv6, &["auto", "on", "off"]));
        errors.extend(one_of("backend", &self.backend, &["auto", "legacy", "nft"]));
        let lists = [
            ("inboundPorts", &self.inbound_ports, ListKind::PortsOrAll),
            (
                "excludeInboundPorts",
                &self.exclude_inbound_ports,
                ListKind::Ports,
            ),
            ("outboundCidrs", &self.outbound_cidrs, ListKind::CidrsOrAll),
            (
                "excludeOutboundCidrs",
                &self.exclude_outbound_cidrs,
                ListKind::Cidrs,
            ),
            (
                "excludeOutboundPorts",
                &self.exclude_outbound_ports,
                ListKind::Ports,
            ),
            (
                "includeOutboundPorts",
                &self.include_outbound_ports,
                ListKind::Ports,
            ),
        ];
        for (field, value, kind) in lists {
            if let Err(e) = capture::parse_list(value, kind, &|_| None) {
                errors.push(format!("capture.{field}: {e}"));
            }
        }
        if self
            .exclude_interfaces
            .split(',')
            .any(|i| i.trim().contains(char::is_whitespace))
        {
            errors.push("capture.excludeInterfaces: interface names have no spaces".into());
        }
        errors
    }
}

impl DiscoveryConfig {
    fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        match self.address.rsplit_once(':') {
            _ if self.address.contains("://") => errors.push(format!(
                "discovery.address: {:?} is HOST:PORT, without a scheme (https:// is added, \
                 http:// with insecure: true)",
                self.address
            )),
            Some((host, port))
                if !host.is_empty()
                    && !host.contains(char::is_whitespace)
                    && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
            _ => errors.push(format!(
                "discovery.address: {:?} is not HOST:PORT (e.g. \
                 sluice-control.sluice-system.svc:15012)",
                self.address
            )),
        }
        if !self.insecure && !is_object_name(&self.ca_config_map) {
            errors.push(format!(
                "discovery.caConfigMap: {:?} is not a ConfigMap name (lower-case letters, \
                 digits, '-' and '.', at most 253)",
                self.ca_config_map
            ));
        }
        errors
    }

    /// The proxy's `--discovery` URL.
    pub fn url(&self) -> String {
        let scheme = if self.insecure { "http" } else { "https" };
        format!("{scheme}://{}", self.address)
    }
}

/// A Kubernetes object name (DNS subdomain: RFC 1123 labels joined by dots).
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Lays `given` over `base`: objects field by field, anything else replaces.
fn overlay(base: &mut serde_json::Value, given: serde_json::Value) {
    match (base, given) {
        (serde_json::Value::Object(base), serde_json::Value::Object(given)) => {
            for (key, value) in given {
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, given) => *slot = given,
    }
}

#[cfg(test)]
mod tests;
