//! Kubernetes Services, with their EndpointSlices and the Pods these name, as the
//! ServiceEntries Istio's Kubernetes registry makes of them
//! (istio/istio `pilot/pkg/serviceregistry/kube/conversion.go`, `controller/endpointslice.go`).
//!
//! A Service becomes the host `NAME.NAMESPACE.svc.CLUSTER_DOMAIN` (MESH_INTERNAL):
//! - with a ClusterIP: its ClusterIPs (IPv4 and IPv6) are the addresses, resolution
//!   STATIC, the endpoints those of its EndpointSlices;
//! - headless (`clusterIP: None`): no address, resolution NONE (Istio's Passthrough),
//!   endpoints still listed so traffic to a Pod address is known as the Service's and
//!   subsets select by Pod labels;
//! - `type: ExternalName`: resolution DNS to `spec.externalName`, MESH_EXTERNAL, as
//!   Istio's registry models it (an alias of an outside name).
//!
//! Services without a selector are no different: their EndpointSlices are written by
//! hand, and are read the same way. The annotation `networking.istio.io/exportTo`
//! becomes the ServiceEntry's `exportTo`.
//!
//! The output is what `Model::compile` reads; `sluice_api::validate`'s ServiceEntry
//! rules, written for hand-made entries, reject two shapes Kubernetes produces: a
//! headless Service's endpoints under resolution NONE, and a Service with no ready
//! endpoint (STATIC without endpoints, which the proxy answers with 503 "no healthy
//! upstream", as Istio does). Translated Services are checked here instead.

mod endpoints;
mod protocol;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_api::diagnostic::{Diagnostic, Severity};
use sluice_api::host::ClusterDomain;
use sluice_api::istio::service_entry::{
    Location, Resolution, ServiceEntry, ServicePort, WorkloadEntry,
};
use sluice_api::load::ConfigSet;
use sluice_api::resource::DEFAULT_NAMESPACE;
use sluice_api::{Meta, Origin, Resource, Spec};

pub use protocol::{PortProtocol, port_protocol};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The Service annotation Istio reads as the namespaces the Service is exported to
/// (comma-separated).
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// Cluster-wide settings of the translation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The cluster's DNS domain (`cluster.local` by default).
    pub cluster_domain: ClusterDomain,
}

/// The Pods endpoints may name, by namespace and name.
#[derive(Debug, Default)]
pub struct Pods<'a> {
    by_name: HashMap<(&'a str, &'a str), &'a Pod>,
}

impl<'a> Pods<'a> {
    /// Indexes Pods by namespace and name (Pods without a name are left out).
    pub fn new(pods: impl IntoIterator<Item = &'a Pod>) -> Pods<'a> {
        let by_name = pods
            .into_iter()
            .filter_map(|pod| {
                let name = pod.metadata.name.as_deref()?;
                let namespace = pod
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or(DEFAULT_NAMESPACE);
                Some(((namespace, name), pod))
            })
            .collect();
        Pods { by_name }
    }

    /// The labels of the Pod `namespace/name`, when it is known.
    fn labels(&self, namespace: &str, name: &str) -> Option<&'a BTreeMap<String, String>> {
        self.by_name
            .get(&(namespace, name))
            .and_then(|pod| pod.metadata.labels.as_ref())
    }
}

/// Translates every Service, each with the EndpointSlices of its namespace labelled
/// with its name.
pub fn translate_all(
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &Pods<'_>,
    settings: &Settings,
) -> ConfigSet {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        if let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        {
            by_service
                .entry((namespace_of(&slice.metadata), service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let mut set = ConfigSet::default();
    for service in services {
        let key = (
            namespace_of(&service.metadata),
            service.metadata.name.as_deref().unwrap_or_default(),
        );
        let slices = by_service.get(&key).map_or(&[][..], Vec::as_slice);
        set.extend(translate(service, slices, pods, settings));
    }
    set
}

/// Translates one Service with its EndpointSlices into a ServiceEntry resource, or
/// reports why it is left out. Notes say what was skipped (UDP ports...).
pub fn translate(
    service: &Service,
    slices: &[&EndpointSlice],
    pods: &Pods<'_>,
    settings: &Settings,
) -> ConfigSet {
    let namespace = namespace_of(&service.metadata);
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report::new(namespace, name);
    if name.is_empty() {
        report.push(
            Severity::Error,
            "metadata.name",
            "required: a Service needs a name",
        );
        return report.finish(None);
    }
    let default_spec = ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&default_spec);
    let kind = kind(spec, &mut report);
    let mut ports = ports(spec, &mut report);
    let Some(kind) = kind.filter(|_| !report.has_errors()) else {
        return report.finish(None);
    };
    if ports.is_empty() {
        report.push(
            Severity::Warning,
            "spec.ports",
            "no TCP port: sluice routes by port, so the Service is left out; list the ports clients use",
        );
        return report.finish(None);
    }
    let mut entry = ServiceEntry {
        hosts: vec![format!(
            "{name}.{namespace}.svc.{}",
            settings.cluster_domain
        )],
        location: Some(Location::MeshInternal),
        export_to: export_to(&service.metadata),
        ..Default::default()
    };
    match kind {
        Kind::ClusterIp(addresses) => {
            entry.addresses = addresses;
            entry.resolution = Some(Resolution::Static);
            entry.endpoints = endpoints::collect(&mut ports, slices, pods, &mut report);
        }
        Kind::Headless => {
            entry.resolution = Some(Resolution::None);
            entry.endpoints = endpoints::collect(&mut ports, slices, pods, &mut report);
        }
        Kind::ExternalName(target) => {
            entry.location = Some(Location::MeshExternal);
            entry.resolution = Some(Resolution::Dns);
            entry.endpoints = vec![WorkloadEntry {
                address: target,
                ..Default::default()
            }];
        }
    }
    entry.ports = ports;
    let resource = Resource {
        meta: Meta {
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
            labels: service.metadata.labels.clone().unwrap_or_default(),
            ..Default::default()
        },
        spec: Spec::ServiceEntry(entry),
        origin: report.origin.clone(),
    };
    report.finish(Some(resource))
}

/// How a Service is reached.
enum Kind {
    /// Through its ClusterIPs (none while the cluster has not assigned one).
    ClusterIp(Vec<String>),
    /// `clusterIP: None`: clients connect to Pod addresses.
    Headless,
    /// `type: ExternalName`: an alias of this DNS name.
    ExternalName(String),
}

fn kind(spec: &ServiceSpec, report: &mut Report) -> Option<Kind> {
    if spec.type_.as_deref() == Some("ExternalName")
        && let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty())
    {
        return Some(Kind::ExternalName(target.to_string()));
    }
    // `clusterIPs` (dual-stack) when set, else `clusterIP`; each with its field path.
    let ips: Vec<(String, &str)> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips
            .iter()
            .enumerate()
            .map(|(i, ip)| (format!("spec.clusterIPs[{i}]"), ip.as_str()))
            .collect(),
        _ => spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .map(|ip| ("spec.clusterIP".to_string(), ip.as_str()))
            .collect(),
    };
    if spec.cluster_ip.as_deref() == Some("None") || ips.iter().any(|(_, ip)| *ip == "None") {
        return Some(Kind::Headless);
    }
    let mut addresses = Vec::new();
    for (path, ip) in ips {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            report.push(
                Severity::Error,
                &path,
                format!("\"{ip}\" is not an IP address (nor \"None\" for a headless Service); the Service is left out"),
            );
            return None;
        };
        addresses.push(ip.to_string());
    }
    Some(Kind::ClusterIp(addresses))
}

/// The TCP ports of the Service, with the protocol Istio gives them.
fn ports(spec: &ServiceSpec, report: &mut Report) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for (i, port) in spec.ports.iter().flatten().enumerate() {
        let path = format!("spec.ports[{i}]");
        let transport = port.protocol.as_deref().unwrap_or("TCP");
        if transport != "TCP" {
            report.push(
                Severity::Note,
                &format!("{path}.protocol"),
                format!(
                    "{transport} port {} skipped: sluice proxies TCP only",
                    port.port
                ),
            );
            continue;
        }
        let Some(number) = u32::try_from(port.port)
            .ok()
            .filter(|n| (1..=65535).contains(n))
        else {
            report.push(
                Severity::Error,
                &format!("{path}.port"),
                format!("port {} is out of range 1..65535", port.port),
            );
            continue;
        };
        let protocol = match port_protocol(
            port.port,
            port.name.as_deref(),
            port.app_protocol.as_deref(),
        ) {
            PortProtocol::Declared(p) => Some(p.to_string()),
            PortProtocol::Detect => None,
            PortProtocol::Udp => {
                report.push(
                    Severity::Note,
                    &path,
                    format!("port {number} skipped: its appProtocol or name says UDP, which Istio builds no listener for and sluice does not proxy"),
                );
                continue;
            }
        };
        out.push(ServicePort {
            number,
            name: port.name.clone().filter(|n| !n.is_empty()),
            protocol,
            ..Default::default()
        });
    }
    out
}

fn export_to(meta: &ObjectMeta) -> Vec<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(EXPORT_TO_ANNOTATION))
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|ns| !ns.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
}

/// The findings about one Service.
struct Report {
    origin: Origin,
    subject: String,
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    fn new(namespace: &str, name: &str) -> Report {
        let name = if name.is_empty() { "<unnamed>" } else { name };
        Report {
            origin: super::origin("Service", namespace, name),
            subject: format!("Service {namespace}/{name}"),
            diagnostics: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        self.diagnostics.push(
            Diagnostic::new(severity, &self.origin, message)
                .subject(self.subject.clone())
                .at(path),
        );
    }

    fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    fn finish(self, resource: Option<Resource>) -> ConfigSet {
        ConfigSet {
            resources: resource.into_iter().collect(),
            diagnostics: self.diagnostics,
        }
    }
}
