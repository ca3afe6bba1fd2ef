//! From a route's destination (host, subset, port) to the address of one
//! endpoint: the step shared by HTTP and TCP routing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::istio::service_entry::Labels;
use sluice_api::istio::service_entry::Resolution;
use sluice_api::model::policy::{LoadBalancer, Outlier, Settings};
use sluice_api::model::routes::{SubsetRef, Target};
use sluice_api::model::{EndpointAddress, Protocol, Service};

use crate::Sidecar;
use crate::balance::{Balancer, Choice, HashInput, Outstanding};
use crate::cluster::Cluster;
use crate::config::Snapshot;
use crate::dns::Resolver;
use crate::error::ProxyError;

/// A destination resolved against the registry: where its endpoints are.
#[derive(Debug)]
pub struct Destination<'s> {
    /// The service.
    pub service: &'s Service,
    /// The service port requests go to.
    pub port: u16,
    /// The protocol that port declares.
    pub protocol: Protocol,
    /// The DestinationRule settings in force for that port.
    pub settings: &'s Settings,
    /// Upstream settings and counters of the service, subset and port.
    pub cluster: &'s Arc<Cluster>,
    balancer: &'s Balancer,
}

/// The endpoint chosen for one request or connection.
#[derive(Debug)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its labels (the registry's shared map: no copy per request), for the `version`
    /// label of metrics; none for an address the registry does not list.
    pub labels: Option<Labels>,
    /// Counts the request as outstanding while held.
    pub outstanding: Option<Outstanding>,
}

/// Resolves `target` for a request that was sent to `dst`.
pub fn resolve<'s>(
    snap: &'s Snapshot,
    target: &'s Target,
    dst: SocketAddr,
) -> Result<Destination<'s>, ProxyError> {
    let Some(id) = target.service else {
        return Err(ProxyError::UnknownHost(target.host.clone()));
    };
    let service = snap.model.registry.get(id);
    let missing = || ProxyError::MissingSubset {
        host: target.host.clone(),
        subset: target.subset_name.clone().unwrap_or_default(),
    };
    if target.subset == SubsetRef::Missing {
        return Err(missing());
    }
    let balancer = snap.balancers.get(id, target.subset).ok_or_else(missing)?;
    let port = target
        .port
        .or_else(|| service.port(dst.port()).map(|p| p.number))
        .or_else(|| (service.ports.len() == 1).then(|| service.ports[0].number))
        .unwrap_or(dst.port());
    let protocol = service.port(port).map_or(Protocol::Detect, |p| p.protocol);
    if balancer.is_empty() && !passes_through(service) {
        return Err(ProxyError::NoEndpoints(target.label()));
    }
    let settings = balancer.policy().for_port(port);
    let cluster = snap
        .clusters
        .get(id, target.subset, port)
        .ok_or_else(missing)?;
    Ok(Destination {
        service,
        port,
        protocol,
        settings,
        cluster,
        balancer,
    })
}

/// True for a service whose traffic goes where the app sent it: resolution NONE, as
/// Istio's ORIGINAL_DST clusters. Its endpoints, when listed (a headless Service's Pods),
/// say which service and subset an address belongs to, not where to send.
fn passes_through(service: &Service) -> bool {
    service.resolution == Resolution::None
}

impl Destination<'_> {
    /// The connect timeout: the DestinationRule's, else the mesh's.
    pub fn connect_timeout(&self, snap: &Snapshot) -> Duration {
        self.settings
            .connect_timeout()
            .unwrap_or(snap.model.mesh.connect_timeout)
    }

    /// Chooses an endpoint; `dst` stands in when the service passes traffic
    /// through (resolution NONE, or a PASSTHROUGH balancer).
    pub async fn pick(
        &self,
        sidecar: &Sidecar,
        dst: SocketAddr,
        input: &HashInput<'_>,
    ) -> Result<Endpoint, ProxyError> {
        let original = Endpoint {
            addr: dst,
            labels: None,
            outstanding: None,
        };
        if passes_through(self.service) {
            return Ok(self.original(dst));
        }
        if self.balancer.is_empty() {
            return Ok(original);
        }
        let endpoint = match self.balancer.pick(self.port, input) {
            Some(Choice::Endpoint(i, guard)) => self.endpoint(&sidecar.dns, i, guard).await?,
            Some(Choice::OriginalDestination) => return Ok(original),
            None => return Err(ProxyError::NoEndpoints(self.service.host.clone())),
        };
        match &self.settings.outlier {
            Some(policy) if sidecar.outliers.is_ejected(endpoint.addr) => {
                self.instead_of_ejected(sidecar, endpoint, policy).await
            }
            _ => Ok(endpoint),
        }
    }

    /// Another endpoint for a request the balancer sent to an ejected one:
    /// the next healthy one for consistent hashing (so keys move little),
    /// else a random healthy one. Below `minHealthPercent` healthy
    /// endpoints, ejections are ignored (Envoy's panic threshold).
    async fn instead_of_ejected(
        &self,
        sidecar: &Sidecar,
        ejected: Endpoint,
        policy: &Outlier,
    ) -> Result<Endpoint, ProxyError> {
        let positions = self.balancer.endpoints();
        let n = positions.len();
        let healthy: Vec<usize> = (0..n)
            .filter(|p| {
                self.static_addr(positions[*p])
                    .is_none_or(|a| !sidecar.outliers.is_ejected(a))
            })
            .collect();
        if healthy.len() * 100 < policy.min_health_percent as usize * n {
            return Ok(ejected);
        }
        let from = positions
            .iter()
            .position(|i| self.static_addr(*i) == Some(ejected.addr))
            .unwrap_or(0);
        let chosen = match &self.settings.load_balancer {
            _ if healthy.is_empty() => {
                return Err(ProxyError::NoHealthyEndpoints(self.service.host.clone()));
            }
            LoadBalancer::ConsistentHash(_) => healthy
                .iter()
                .copied()
                .find(|p| *p > from)
                .unwrap_or(healthy[0]),
            _ => healthy[fastrand::usize(..healthy.len())],
        };
        drop(ejected);
        match self.balancer.choose(chosen) {
            Choice::Endpoint(i, guard) => self.endpoint(&sidecar.dns, i, guard).await,
            Choice::OriginalDestination => Err(ProxyError::NoEndpoints(self.service.host.clone())),
        }
    }

    /// The original destination of a passthrough service, with the labels of the endpoint at
    /// that address when one is listed (a headless Service's Pod).
    fn original(&self, dst: SocketAddr) -> Endpoint {
        let listed = self.service.endpoints.iter().find(|e| match e.address {
            EndpointAddress::Ip(ip) => ip == dst.ip(),
            EndpointAddress::Dns(_) => false,
        });
        Endpoint {
            addr: dst,
            labels: listed.map(|e| e.labels.clone()),
            outstanding: None,
        }
    }

    /// Records how a request to an endpoint went, for outlier detection:
    /// its status, or `None` when the endpoint failed to answer.
    pub fn record(&self, sidecar: &Sidecar, addr: SocketAddr, status: Option<u16>) {
        if let Some(policy) = &self.settings.outlier {
            sidecar
                .outliers
                .record(addr, status, policy, || self.peers());
        }
    }

    /// True unless outlier detection has ejected every endpoint with a known address.
    pub fn has_healthy(&self, sidecar: &Sidecar) -> bool {
        let peers = self.peers();
        self.settings.outlier.is_none()
            || peers.is_empty()
            || peers.iter().any(|a| !sidecar.outliers.is_ejected(*a))
    }

    /// The addresses of the endpoints to choose from (those with IP addresses).
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.balancer
            .endpoints()
            .iter()
            .filter_map(|i| self.static_addr(*i))
            .collect()
    }

    /// The address of an endpoint with an IP address (DNS endpoints have none
    /// until resolved, and may change).
    fn static_addr(&self, index: u32) -> Option<SocketAddr> {
        let endpoint = &self.service.endpoints[index as usize];
        let EndpointAddress::Ip(ip) = endpoint.address else {
            return None;
        };
        let port = match self.service.port(self.port) {
            Some(sp) => self.service.endpoint_port(endpoint, sp),
            None => self.port,
        };
        Some(SocketAddr::new(ip, port))
    }

    async fn endpoint(
        &self,
        dns: &Resolver,
        index: u32,
        outstanding: Outstanding,
    ) -> Result<Endpoint, ProxyError> {
        let endpoint = &self.service.endpoints[index as usize];
        let port = match self.service.port(self.port) {
            Some(sp) => self.service.endpoint_port(endpoint, sp),
            None => self.port,
        };
        let ip = match &endpoint.address {
            EndpointAddress::Ip(ip) => *ip,
            EndpointAddress::Dns(name) => dns.resolve(name).await?,
        };
        Ok(Endpoint {
            addr: SocketAddr::new(ip, port),
            labels: Some(endpoint.labels.clone()),
            outstanding: Some(outstanding),
        })
    }
}
