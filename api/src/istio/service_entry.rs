//! `ServiceEntry`: adds services (and their endpoints) to the registry.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::WorkloadSelector;

/// The spec of a ServiceEntry.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Host names of the service.
    pub hosts: Vec<String>,
    /// Virtual IPs (or CIDRs) of the service.
    pub addresses: Vec<String>,
    /// Ports of the service.
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh.
    pub location: Option<Location>,
    /// How endpoints are found.
    pub resolution: Option<Resolution>,
    /// Static endpoints.
    pub endpoints: Vec<WorkloadEntry>,
    /// Workloads (by labels) that are the endpoints.
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the resource is visible to.
    pub export_to: Vec<String>,
    /// Accepted server names.
    pub subject_alt_names: Vec<String>,
}

/// A port of a service.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number.
    pub number: u32,
    /// Protocol: HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, MONGO...
    pub protocol: Option<String>,
    /// Port name.
    pub name: Option<String>,
    /// Port on the endpoints, if different.
    pub target_port: Option<u32>,
}

/// Whether a service is part of the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh.
    MeshExternal,
    /// Inside the mesh.
    MeshInternal,
}

/// How the endpoints of a ServiceEntry are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the original destination address.
    None,
    /// The given endpoint addresses.
    Static,
    /// Resolve the endpoint (or host) names with DNS.
    Dns,
    /// Resolve with DNS, use one address at a time.
    DnsRoundRobin,
    /// Resolve the name a request asks for (Host or SNI) under wildcard hosts.
    DynamicDns,
}

/// One endpoint of a ServiceEntry.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP address or DNS name.
    pub address: String,
    /// Port name → port number on this endpoint (shared: see [`SharedMaps`]).
    pub ports: Ports,
    /// Labels (subsets select on them; shared: see [`SharedMaps`]).
    pub labels: Labels,
    /// Network of the endpoint.
    pub network: Option<String>,
    /// Locality (`region/zone/subzone`).
    pub locality: Option<String>,
    /// Load-balancing weight.
    pub weight: Option<u32>,
    /// Service account.
    pub service_account: Option<String>,
}

/// An endpoint's port numbers by port name, shared with the endpoints that have the same.
pub type Ports = Arc<BTreeMap<String, u32>>;

/// An endpoint's labels, shared with the endpoints that have the same.
pub type Labels = Arc<BTreeMap<String, String>>;

/// Endpoints' port and label maps, each distinct map held once: a Deployment's Pods have
/// the same labels and ports, so the endpoints of a big registry share a few maps rather
/// than each holding its own (a small map costs ~0.5 KB however few its entries).
#[derive(Debug, Default)]
pub struct SharedMaps {
    ports: HashSet<Arc<BTreeMap<String, u32>>>,
    labels: HashSet<Arc<BTreeMap<String, String>>>,
}

impl SharedMaps {
    /// Makes the endpoints of `entry` hold the maps held here that equal theirs (and holds
    /// theirs when none does).
    pub fn share(&mut self, entry: &mut ServiceEntry) {
        for endpoint in &mut entry.endpoints {
            (endpoint.ports, endpoint.labels) = self.maps(endpoint);
        }
    }

    /// The ports and labels of `endpoint`: the maps held here that equal them (its own,
    /// held from now on, when none does).
    pub fn maps(&mut self, endpoint: &WorkloadEntry) -> (Ports, Labels) {
        (
            shared(&mut self.ports, &endpoint.ports),
            shared(&mut self.labels, &endpoint.labels),
        )
    }

    /// How many distinct port maps and label maps are held.
    pub fn counts(&self) -> (usize, usize) {
        (self.ports.len(), self.labels.len())
    }

    /// Lets go of the maps no endpoint holds any more.
    pub fn forget_unused(&mut self) {
        self.ports.retain(|map| Arc::strong_count(map) > 1);
        self.labels.retain(|map| Arc::strong_count(map) > 1);
    }
}

fn shared<V: Eq + Hash>(
    held: &mut HashSet<Arc<BTreeMap<String, V>>>,
    map: &Arc<BTreeMap<String, V>>,
) -> Arc<BTreeMap<String, V>> {
    match held.get(&**map) {
        Some(found) => found.clone(),
        None => {
            held.insert(map.clone());
            map.clone()
        }
    }
}
