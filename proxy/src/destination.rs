//! From a route's destination (host, subset, port) to the address of one
//! endpoint: the step shared by HTTP and TCP routing.

use std::net::SocketAddr;
use std::time::Duration;

use sluice_api::istio::service_entry::Resolution;
use sluice_api::model::policy::Settings;
use sluice_api::model::routes::{SubsetRef, Target};
use sluice_api::model::{EndpointAddress, Protocol, Service};

use crate::Sidecar;
use crate::balance::{Balancer, Choice, HashInput, Outstanding};
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
    balancer: &'s Balancer,
}

/// The endpoint chosen for one request or connection.
#[derive(Debug)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its `version` label, for metrics.
    pub version: Option<String>,
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
    let passthrough = service.resolution == Resolution::None && service.endpoints.is_empty();
    if balancer.is_empty() && !passthrough {
        return Err(ProxyError::NoEndpoints(target.label()));
    }
    let settings = balancer.policy().for_port(port);
    Ok(Destination {
        service,
        port,
        protocol,
        settings,
        balancer,
    })
}

impl Destination<'_> {
    /// The connect timeout: the DestinationRule's, else the mesh's.
    pub fn connect_timeout(&self, snap: &Snapshot) -> Duration {
        self.settings
            .connect_timeout()
            .unwrap_or(snap.model.mesh.connect_timeout)
    }

    /// Chooses an endpoint; `dst` stands in when the service passes traffic
    /// through (resolution NONE without endpoints, or a PASSTHROUGH balancer).
    pub async fn pick(
        &self,
        sidecar: &Sidecar,
        dst: SocketAddr,
        input: &HashInput<'_>,
    ) -> Result<Endpoint, ProxyError> {
        let original = Endpoint {
            addr: dst,
            version: None,
            outstanding: None,
        };
        if self.balancer.is_empty() {
            return Ok(original);
        }
        // Ejected outliers are passed over, but never all endpoints, and at
        // most the policy's share of them.
        let n = self.balancer.len();
        let skippable = self.settings.outlier.as_ref().map_or(0, |o| {
            (n * o.max_ejection_percent as usize / 100)
                .max(1)
                .min(n - 1)
        });
        let mut skipped = 0;
        loop {
            let endpoint = match self.balancer.pick(self.port, input) {
                Some(Choice::Endpoint(i, guard)) => self.endpoint(&sidecar.dns, i, guard).await?,
                Some(Choice::OriginalDestination) => return Ok(original),
                None => return Err(ProxyError::NoEndpoints(self.service.host.clone())),
            };
            if skipped < skippable && sidecar.outliers.is_ejected(endpoint.addr) {
                skipped += 1;
                continue;
            }
            return Ok(endpoint);
        }
    }

    /// Records how a request to an endpoint went, for outlier detection:
    /// its status, or `None` when the endpoint failed to answer.
    pub fn record(&self, sidecar: &Sidecar, addr: SocketAddr, status: Option<u16>) {
        if let Some(policy) = &self.settings.outlier {
            sidecar.outliers.record(addr, status, policy);
        }
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
            version: endpoint.labels.get("version").cloned(),
            outstanding: Some(outstanding),
        })
    }
}
