//! The compiled mesh model: one immutable value per config version, holding
//! the service registry and the route tables the proxy's request path reads.
//!
//! Compiling resolves everything the request path would otherwise look up:
//! short host names become FQDNs, destinations point at services and subsets
//! by index, regexes are compiled, weights become a smooth schedule, and
//! rules that can never apply to this workload are dropped.

pub mod edge;
pub mod policy;
pub mod registry;
pub mod release;
pub mod routes;
pub mod string_match;
pub mod weighted;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::host::ClusterDomain;
use crate::mesh_config::{MeshConfig, OutboundMode};
use crate::resource::{Resource, Spec};

pub use registry::{
    Endpoint, EndpointAddress, Protocol, Registry, Service, ServiceId, ServicePort, Subset,
};
pub use release::Releases;
pub use routes::{Delegates, RouteTables, VirtualHost};

/// The workload a model is compiled for: rules with `sourceLabels` or
/// `sourceNamespace` apply only when they select it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// The workload's namespace; short host names resolve against it.
    pub namespace: String,
    /// The cluster's DNS domain, which short host names resolve in.
    pub cluster_domain: ClusterDomain,
    /// The workload's labels.
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// True when `r` applies to this workload: its `exportTo` reaches the
    /// workload's namespace, and a DestinationRule with a `workloadSelector`
    /// is in that namespace and selects the workload's labels.
    pub fn sees(&self, r: &Resource) -> bool {
        if !r.visible_from(&self.namespace) {
            return false;
        }
        match &r.spec {
            Spec::DestinationRule(dr) => dr.workload_selector.as_ref().is_none_or(|s| {
                r.meta.namespace() == self.namespace
                    && s.match_labels
                        .iter()
                        .all(|(k, v)| self.labels.get(k) == Some(v))
            }),
            _ => true,
        }
    }
}

/// Mesh-wide settings with defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeshSettings {
    /// What happens to destinations outside the registry.
    pub outbound: OutboundMode,
    /// Suffix added to the authority of mirrored requests.
    pub mirror_authority_suffix: String,
    /// Wait for a client's first bytes on undeclared ports before treating the connection as TCP.
    pub protocol_detection_timeout: Duration,
    /// Connect timeout towards upstreams.
    pub connect_timeout: Duration,
    /// Header propagation across hops, when configured.
    pub propagation: Option<Propagation>,
}

/// Header propagation with defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Propagation {
    /// Headers carried (lowercase).
    pub headers: Vec<String>,
    /// Most requests remembered at once.
    pub max_entries: usize,
    /// How long a request is remembered.
    pub ttl: Duration,
}

impl MeshSettings {
    fn from_config(mc: Option<&MeshConfig>) -> MeshSettings {
        let mc = mc.cloned().unwrap_or_default();
        MeshSettings {
            outbound: mc.outbound_traffic_policy.mode,
            mirror_authority_suffix: mc
                .mirror_authority_suffix
                .unwrap_or_else(|| "-shadow".into()),
            protocol_detection_timeout: mc
                .protocol_detection_timeout
                .map_or(Duration::from_millis(100), |d| d.get()),
            connect_timeout: mc
                .connect_timeout
                .map_or(Duration::from_secs(10), |d| d.get()),
            propagation: mc.header_propagation.as_ref().map(|p| Propagation {
                headers: p.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
                max_entries: p.max_entries.map_or(10_000, |n| n as usize),
                ttl: p.ttl.map_or(Duration::from_secs(30), |d| d.get()),
            }),
        }
    }
}

/// One compiled config version.
#[derive(Debug, Serialize)]
pub struct Model {
    /// Mesh-wide settings.
    pub mesh: MeshSettings,
    /// Services, their ports, endpoints and subsets.
    pub registry: Registry,
    /// Routing rules by host.
    pub routes: RouteTables,
    /// ReleasePolicies by destination host.
    pub releases: Releases,
    /// The workload the model was compiled for.
    pub workload: Workload,
    /// What a gateway serves (empty for sidecars).
    pub edge: edge::Edge,
}

/// What a proxy is, which decides what its model holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Role {
    /// A sidecar: the mesh's routes.
    #[default]
    Sidecar,
    /// An edge gateway: also the Gateways that select it and the routes bound to them.
    Gateway,
}

impl Model {
    /// Compiles validated resources for a workload. Resources must have passed
    /// validation (the `validate` module) without errors; compiling does not fail.
    pub fn compile(resources: &[Resource], workload: &Workload) -> Model {
        Model::compile_as(resources, workload, Role::Sidecar)
    }

    /// Compiles validated resources for a workload in `role`.
    pub fn compile_as(resources: &[Resource], workload: &Workload, role: Role) -> Model {
        // A delegate's `exportTo` is about its root's namespace, not the workload's.
        let delegates = Delegates::index(resources);
        let hidden = |r: &Resource| !workload.sees(r);
        let visible: Cow<'_, [Resource]> = if resources.iter().any(hidden) {
            Cow::Owned(resources.iter().filter(|r| !hidden(r)).cloned().collect())
        } else {
            Cow::Borrowed(resources)
        };
        let resources = &*visible;
        let mesh = resources.iter().find_map(|r| match &r.spec {
            Spec::MeshConfig(mc) => Some(mc),
            _ => None,
        });
        let registry = Registry::build(resources, &workload.cluster_domain);
        let routes = RouteTables::build(resources, &delegates, &registry, workload);
        let edge = match role {
            Role::Sidecar => edge::Edge::default(),
            Role::Gateway => edge::Edge::build(resources, &delegates, &registry, workload),
        };
        let releases = Releases::build(resources, &registry);
        Model {
            edge,
            mesh: MeshSettings::from_config(mesh),
            registry,
            routes,
            releases,
            workload: workload.clone(),
        }
    }
}
