//! The service registry: services by host, by VIP:port and by endpoint
//! address, with their ports, endpoints and DestinationRule subsets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::policy::Policy;
use crate::host::{ClusterDomain, fqdn_in, matches};
use crate::istio::destination_rule::DestinationRule;
use crate::istio::service_entry::{Labels, Location, Ports, Resolution, ServiceEntry, SharedMaps};
use crate::net::parse_cidr;
use crate::resource::{Resource, Spec};

/// Index of a service in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceId(pub u32);

/// The protocol of a port, declared or left to detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2 with prior knowledge, detected).
    Http,
    /// HTTP/2.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// TLS, forwarded as is and routed by SNI.
    Tls,
    /// Opaque TCP.
    Tcp,
    /// Not declared: detected from the first bytes.
    Detect,
}

impl Protocol {
    /// The protocol a port declares: by its `protocol` field (ServiceEntry) or
    /// appProtocol, else by its name's prefix (`http-web`, `grpc`, `tcp-db`...).
    pub fn declared(protocol: Option<&str>, name: Option<&str>) -> Protocol {
        let from = |p: &str| match p.to_ascii_lowercase().as_str() {
            "http" | "http1" | "http/1.1" => Some(Protocol::Http),
            "http2" | "h2c" | "kubernetes.io/h2c" => Some(Protocol::Http2),
            "grpc" | "grpc-web" => Some(Protocol::Grpc),
            "https" | "tls" => Some(Protocol::Tls),
            "tcp" | "mongo" | "redis" | "mysql" => Some(Protocol::Tcp),
            _ => None,
        };
        if let Some(p) = protocol.and_then(from) {
            return p;
        }
        let prefix = name.map(|n| n.split_once('-').map_or(n, |(p, _)| p));
        prefix.and_then(from).unwrap_or(Protocol::Detect)
    }

    /// True for protocols routed with `http` rules.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// A port of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    /// The port clients connect to.
    pub number: u16,
    /// Its name (endpoints may map names to other ports).
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The port on the endpoints, when it differs.
    pub target_port: Option<u16>,
}

/// How to reach an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum EndpointAddress {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name, resolved when connecting.
    Dns(String),
}

/// One instance of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Where it is.
    pub address: EndpointAddress,
    /// Port name → port on this endpoint; endpoints with the same ports share one map
    /// (the ServiceEntry's, see [`SharedMaps`]).
    pub ports: Ports,
    /// Its labels (subsets select on them); endpoints with the same labels share one map
    /// (a Deployment's Pods, see [`SharedMaps`]), so a registry of many endpoints holds few
    /// maps.
    pub labels: Labels,
    /// Load-balancing weight (default 1).
    pub weight: u32,
}

/// A subset: the endpoints a DestinationRule subset selects, and its policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subset {
    /// Subset name.
    pub name: String,
    /// Indices into the service's endpoints.
    pub endpoints: Vec<u32>,
    /// The policy in force for the subset.
    pub policy: Arc<Policy>,
}

/// A service in the registry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Service {
    /// Its fully qualified host name.
    pub host: String,
    /// The namespace of the resource that declared it.
    pub namespace: String,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
    /// How endpoints are found.
    pub resolution: Resolution,
    /// Outside the mesh.
    pub external: bool,
    /// Subsets defined by the DestinationRule for the host.
    pub subsets: Vec<Subset>,
    /// Policy for traffic to the whole service.
    pub policy: Arc<Policy>,
    /// The DestinationRule in force, as `namespace/name`.
    pub destination_rule: Option<String>,
}

impl Service {
    /// The port with this number.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// The subset with this name.
    pub fn subset(&self, name: &str) -> Option<usize> {
        self.subsets.iter().position(|s| s.name == name)
    }

    /// The port to connect to on an endpoint for a service port.
    pub fn endpoint_port(&self, endpoint: &Endpoint, port: &ServicePort) -> u16 {
        endpoint
            .ports
            .get(&port.name)
            .and_then(|number| u16::try_from(*number).ok())
            .or(port.target_port)
            .unwrap_or(port.number)
    }
}

/// All services, indexed for the request path.
#[derive(Debug, Default, Serialize)]
pub struct Registry {
    /// The services; a [`ServiceId`] indexes this.
    pub services: Vec<Service>,
    #[serde(skip)]
    by_host: HashMap<String, ServiceId>,
    #[serde(skip)]
    by_vip: HashMap<SocketAddr, ServiceId>,
    #[serde(skip)]
    by_cidr: Vec<(IpNet, u16, ServiceId)>,
    #[serde(skip)]
    by_endpoint: HashMap<SocketAddr, ServiceId>,
    /// The cluster's DNS domain short host names expand in.
    #[serde(skip)]
    domain: ClusterDomain,
}

impl Registry {
    /// A configured host, short names expanded against `namespace` in the cluster's domain.
    pub fn fqdn(&self, host: &str, namespace: &str) -> String {
        fqdn_in(host, namespace, &self.domain)
    }

    /// The cluster's DNS domain.
    pub fn cluster_domain(&self) -> &ClusterDomain {
        &self.domain
    }

    /// Builds the registry from ServiceEntries, with subsets and policies from
    /// DestinationRules: for each host the first rule, one with a
    /// `workloadSelector` (the caller keeps only those selecting the workload)
    /// before one for all workloads, as in Istio.
    pub fn build(resources: &[Resource], domain: &ClusterDomain) -> Registry {
        let mut reg = Registry {
            domain: domain.clone(),
            ..Registry::default()
        };
        let mut shared = SharedMaps::default();
        for r in resources {
            if let Spec::ServiceEntry(se) = &r.spec {
                reg.add_entry(se, r.meta.namespace(), &mut shared);
            }
        }
        let mut exact: HashMap<String, (&Resource, &DestinationRule)> = HashMap::new();
        let mut wildcard: Vec<(String, &Resource, &DestinationRule)> = Vec::new();
        let mut rules: Vec<(&Resource, &DestinationRule)> = resources
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::DestinationRule(dr) => Some((r, &**dr)),
                _ => None,
            })
            .collect();
        rules.sort_by_key(|(_, dr)| dr.workload_selector.is_none());
        for (r, dr) in rules {
            let host = reg.fqdn(&dr.host, r.meta.namespace());
            if host.starts_with('*') {
                wildcard.push((host, r, dr));
            } else {
                exact.entry(host).or_insert((r, dr));
            }
        }
        for svc in &mut reg.services {
            let rule = exact.get(&svc.host).copied().or_else(|| {
                wildcard
                    .iter()
                    .find(|(host, _, _)| matches(host, &svc.host))
                    .map(|(_, r, dr)| (*r, *dr))
            });
            if let Some((r, dr)) = rule {
                apply_rule(svc, dr, format!("{}/{}", r.meta.namespace(), r.meta.name));
            }
        }
        reg
    }

    fn add_entry(&mut self, se: &ServiceEntry, namespace: &str, shared: &mut SharedMaps) {
        let resolution = se.resolution.unwrap_or(Resolution::None);
        let ports: Vec<ServicePort> = se
            .ports
            .iter()
            .filter_map(|p| {
                Some(ServicePort {
                    number: u16::try_from(p.number).ok()?,
                    name: p.name.clone().unwrap_or_default(),
                    protocol: Protocol::declared(p.protocol.as_deref(), p.name.as_deref()),
                    target_port: p.target_port.and_then(|t| u16::try_from(t).ok()),
                })
            })
            .collect();
        for host in &se.hosts {
            let host = self.fqdn(host, namespace);
            let endpoints = endpoints(se, resolution, &host, shared);
            let id = ServiceId(self.services.len() as u32);
            for addr in &se.addresses {
                let Some(net) = parse_cidr(addr) else {
                    continue;
                };
                for p in &ports {
                    if net.prefix_len() == net.max_prefix_len() {
                        self.by_vip
                            .entry(SocketAddr::new(net.addr(), p.number))
                            .or_insert(id);
                    } else {
                        self.by_cidr.push((net, p.number, id));
                    }
                }
            }
            let svc = Service {
                host: host.clone(),
                namespace: namespace.to_string(),
                ports: ports.clone(),
                endpoints,
                resolution,
                external: se.location != Some(Location::MeshInternal),
                subsets: Vec::new(),
                policy: Arc::default(),
                destination_rule: None,
            };
            for ep in &svc.endpoints {
                if let EndpointAddress::Ip(ip) = ep.address {
                    for p in &svc.ports {
                        self.by_endpoint
                            .entry(SocketAddr::new(ip, svc.endpoint_port(ep, p)))
                            .or_insert(id);
                    }
                }
            }
            self.by_host.entry(host).or_insert(id);
            self.services.push(svc);
        }
    }

    /// The service with this id.
    pub fn get(&self, id: ServiceId) -> &Service {
        &self.services[id.0 as usize]
    }

    /// The service with this FQDN.
    pub fn by_host(&self, host: &str) -> Option<ServiceId> {
        self.by_host.get(host).copied()
    }

    /// The service an original destination belongs to: a VIP:port, an
    /// address range of a ServiceEntry, or one of its endpoints.
    pub fn by_destination(&self, dst: SocketAddr) -> Option<ServiceId> {
        let dst = SocketAddr::new(dst.ip().to_canonical(), dst.port());
        self.by_vip
            .get(&dst)
            .or_else(|| {
                self.by_cidr
                    .iter()
                    .find(|(net, port, _)| *port == dst.port() && net.contains(&dst.ip()))
                    .map(|(_, _, id)| id)
            })
            .or_else(|| self.by_endpoint.get(&dst))
            .copied()
    }
}

fn endpoints(
    se: &ServiceEntry,
    resolution: Resolution,
    host: &str,
    shared: &mut SharedMaps,
) -> Vec<Endpoint> {
    let mut eps: Vec<Endpoint> = se
        .endpoints
        .iter()
        .map(|e| {
            let (ports, labels) = shared.maps(e);
            Endpoint {
                address: match e.address.parse::<IpAddr>() {
                    Ok(ip) => EndpointAddress::Ip(ip),
                    Err(_) => EndpointAddress::Dns(e.address.clone()),
                },
                ports,
                labels,
                weight: e.weight.unwrap_or(1).max(1),
            }
        })
        .collect();
    if eps.is_empty() && matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin) {
        eps.push(Endpoint {
            address: EndpointAddress::Dns(host.to_string()),
            ports: Arc::default(),
            labels: Arc::default(),
            weight: 1,
        });
    }
    eps
}

fn apply_rule(svc: &mut Service, dr: &DestinationRule, name: String) {
    svc.policy = Arc::new(Policy::resolve(dr.traffic_policy.as_ref(), None));
    svc.subsets = dr
        .subsets
        .iter()
        .map(|s| Subset {
            name: s.name.clone(),
            endpoints: svc
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, e)| s.labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
                .map(|(i, _)| i as u32)
                .collect(),
            policy: Arc::new(Policy::resolve(
                dr.traffic_policy.as_ref(),
                s.traffic_policy.as_ref(),
            )),
        })
        .collect();
    svc.destination_rule = Some(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_protocols() {
        let cases = [
            (Some("HTTP"), None, Protocol::Http),
            (None, Some("http-web"), Protocol::Http),
            (None, Some("http2"), Protocol::Http2),
            (None, Some("grpc-api"), Protocol::Grpc),
            (Some("HTTPS"), Some("https"), Protocol::Tls),
            (None, Some("tcp-db"), Protocol::Tcp),
            (Some("MONGO"), None, Protocol::Tcp),
            (None, Some("web"), Protocol::Detect),
            (None, None, Protocol::Detect),
        ];
        for (proto, name, expected) in cases {
            assert_eq!(
                Protocol::declared(proto, name),
                expected,
                "{proto:?} {name:?}"
            );
        }
    }
}
