//! Route tables: per host, the VirtualService rules compiled for the request path.

mod binding;
mod cors;
mod delegate;
mod http_rule;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

pub use binding::Binding;
pub use cors::Cors;
pub use delegate::Delegates;
pub use http_rule::{
    Fault, HeaderOps, HttpAction, HttpRule, Mirror, Redirect, RequestInfo, RequestMatch, RetryOn,
    RetryPolicy, Rewrite,
};

use super::Workload;
use super::registry::{Registry, ServiceId};
use super::weighted::{Buckets, Schedule};
use crate::istio::VirtualService;
use crate::istio::virtual_service::{
    Destination, L4MatchAttributes, RouteDestination, TlsMatchAttributes,
};
use crate::net::parse_cidr;
use crate::resource::{Resource, Spec};

/// The routing of one host, from the VirtualService that claims it.
#[derive(Debug, Serialize)]
pub struct VirtualHost {
    /// `namespace/name` of the VirtualService.
    pub name: String,
    /// HTTP rules in order.
    pub http: Vec<HttpRule>,
    /// TCP rules in order.
    pub tcp: Vec<L4Rule>,
    /// TLS rules in order.
    pub tls: Vec<L4Rule>,
}

/// The subset a destination names, resolved against the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SubsetRef {
    /// No subset: all endpoints of the service.
    All,
    /// Index into the service's subsets.
    Found(usize),
    /// A subset no DestinationRule defines; requests get 503 naming it.
    Missing,
}

/// A resolved destination.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// The host as configured, fully qualified.
    pub host: String,
    /// The service, when the registry has the host.
    pub service: Option<ServiceId>,
    /// The subset name as configured.
    pub subset_name: Option<String>,
    /// The subset, resolved.
    pub subset: SubsetRef,
    /// The service port, when the destination names one.
    pub port: Option<u16>,
}

impl Target {
    /// Resolves a configured destination; short hosts expand against `namespace`.
    pub fn resolve(d: &Destination, namespace: &str, registry: &Registry) -> Target {
        let host = registry.fqdn(&d.host, namespace);
        let service = registry.by_host(&host);
        let subset = match (&d.subset, service) {
            (None, _) => SubsetRef::All,
            (Some(name), Some(id)) => registry
                .get(id)
                .subset(name)
                .map_or(SubsetRef::Missing, SubsetRef::Found),
            (Some(_), None) => SubsetRef::Missing,
        };
        let port = d.port.and_then(|p| u16::try_from(p.number).ok());
        Target {
            host,
            service,
            subset_name: d.subset.clone(),
            subset,
            port,
        }
    }

    /// `host` or `host/subset`, for logs and errors.
    pub fn label(&self) -> String {
        match &self.subset_name {
            Some(s) => format!("{}/{s}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Weighted destinations with their pick schedule.
#[derive(Debug, Serialize)]
pub struct WeightedTargets {
    /// The destinations, each with per-destination header changes.
    pub targets: Vec<(Target, u32, HeaderOps)>,
    schedule: Option<Schedule>,
    buckets: Option<Buckets>,
}

impl WeightedTargets {
    fn new(targets: Vec<(Target, u32, HeaderOps)>) -> WeightedTargets {
        let weights: Vec<u32> = targets.iter().map(|(_, w, _)| *w).collect();
        WeightedTargets {
            schedule: Schedule::new(&weights),
            buckets: Buckets::new(&weights),
            targets,
        }
    }

    /// Picks the next destination by weight; `None` when all weights are zero.
    pub fn pick(&self) -> Option<&(Target, u32, HeaderOps)> {
        self.schedule.as_ref().map(|s| &self.targets[s.pick()])
    }

    /// The destination whose bucket range holds a sticky user's `bucket`; `None` when
    /// all weights are zero.
    pub fn pick_bucket(&self, bucket: u16) -> Option<&(Target, u32, HeaderOps)> {
        self.buckets.as_ref().map(|b| &self.targets[b.pick(bucket)])
    }
}

/// The largest sum of weights a pick schedule is built for; larger weights
/// (Istio's are relative, of any size) are scaled down to it.
const MAX_TOTAL_WEIGHT: u64 = 10_000;

/// Weights as Istio reads them: relative shares, a lone destination gets 100.
fn weights<T>(routes: &[T], weight: impl Fn(&T) -> Option<i32>) -> Vec<u32> {
    if routes.len() == 1 {
        return vec![
            weight(&routes[0])
                .filter(|w| *w > 0)
                .map_or(100, |w| w as u32),
        ];
    }
    let raw: Vec<u64> = routes
        .iter()
        .map(|r| weight(r).unwrap_or(0).max(0) as u64)
        .collect();
    let total: u64 = raw.iter().sum();
    if total <= MAX_TOTAL_WEIGHT {
        return raw.into_iter().map(|w| w as u32).collect();
    }
    raw.into_iter()
        .map(|w| match w {
            0 => 0,
            w => (w * MAX_TOTAL_WEIGHT / total).max(1) as u32,
        })
        .collect()
}

/// A TCP or TLS rule.
#[derive(Debug, Serialize)]
pub struct L4Rule {
    /// Match blocks (OR); empty matches all.
    pub matches: Vec<L4Match>,
    /// Where matching connections go.
    pub route: WeightedTargets,
}

/// Conditions on a connection.
#[derive(Debug, Default, Serialize)]
pub struct L4Match {
    /// Destination port.
    pub port: Option<u16>,
    /// Destination subnets.
    pub subnets: Vec<IpNet>,
    /// SNI names (TLS rules).
    pub sni_hosts: Vec<String>,
}

impl L4Match {
    /// True when a connection to `ip:port` with this SNI matches.
    pub fn matches(&self, ip: IpAddr, port: u16, sni: Option<&str>) -> bool {
        self.port.is_none_or(|p| p == port)
            && (self.subnets.is_empty() || self.subnets.iter().any(|n| n.contains(&ip)))
            && (self.sni_hosts.is_empty()
                || sni.is_some_and(|s| self.sni_hosts.iter().any(|h| crate::host::matches(h, s))))
    }
}

impl L4Rule {
    /// True when any match block matches (or there are none).
    pub fn matches(&self, ip: IpAddr, port: u16, sni: Option<&str>) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(ip, port, sni))
    }
}

/// Route tables by host.
#[derive(Debug, Default, Serialize)]
pub struct RouteTables {
    hosts: HashMap<String, Arc<VirtualHost>>,
    wildcards: Vec<(String, Arc<VirtualHost>)>,
}

impl RouteTables {
    /// Compiles the VirtualServices that apply to sidecars (gateways empty or
    /// `mesh`) for the workload, their `delegate` rules from `delegates`; the
    /// first VirtualService for a host wins.
    pub fn build<'a>(
        resources: &'a [Resource],
        delegates: &Delegates<'a>,
        registry: &Registry,
        workload: &Workload,
    ) -> RouteTables {
        RouteTables::build_bound(resources, delegates, registry, workload, Binding::Mesh)
    }

    /// Compiles the VirtualServices (and their rules) that `binding` admits, as
    /// [`RouteTables::build`] does for sidecars.
    pub fn build_bound<'a>(
        resources: &'a [Resource],
        delegates: &Delegates<'a>,
        registry: &Registry,
        workload: &Workload,
        binding: Binding<'_>,
    ) -> RouteTables {
        let mut tables = RouteTables::default();
        for r in resources {
            let Spec::VirtualService(vs) = &r.spec else {
                continue;
            };
            let ns = r.meta.namespace();
            if !binding.admits(&vs.gateways, ns) {
                continue;
            }
            let scope = Scope {
                ns,
                workload,
                binding,
            };
            let vhost = Arc::new(compile_vs(
                vs,
                format!("{ns}/{}", r.meta.name),
                scope,
                delegates,
                registry,
            ));
            for host in &vs.hosts {
                let host = registry.fqdn(host, ns);
                if host.starts_with('*') {
                    if !tables.wildcards.iter().any(|(h, _)| *h == host) {
                        tables.wildcards.push((host, vhost.clone()));
                    }
                } else {
                    tables.hosts.entry(host).or_insert_with(|| vhost.clone());
                }
            }
        }
        tables
            .wildcards
            .sort_by_key(|(h, _)| std::cmp::Reverse(h.len()));
        tables
    }

    /// The routing of a fully qualified host: an exact host first, then the
    /// most specific wildcard.
    pub fn lookup(&self, host: &str) -> Option<&Arc<VirtualHost>> {
        self.hosts.get(host).or_else(|| {
            self.wildcards
                .iter()
                .find(|(p, _)| crate::host::matches(p, host))
                .map(|(_, v)| v)
        })
    }

    /// Number of hosts with routes.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.wildcards.len()
    }

    /// True when no host has routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What rules are compiled for: the namespace of the VirtualService they come from, the
/// workload, and the proxies the VirtualService is bound to.
#[derive(Clone, Copy)]
struct Scope<'s> {
    ns: &'s str,
    workload: &'s Workload,
    binding: Binding<'s>,
}

impl Scope<'_> {
    /// True when a match block's source conditions and gateways select this proxy.
    fn selects(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
        namespace: Option<&str>,
        gateways: &[String],
    ) -> bool {
        http_rule::selects(self.workload, labels, namespace)
            && (gateways.is_empty() || self.binding.admits(gateways, self.ns))
    }
}

fn compile_vs<'a>(
    vs: &'a VirtualService,
    name: String,
    scope: Scope<'a>,
    delegates: &Delegates<'a>,
    registry: &Registry,
) -> VirtualHost {
    let ns = scope.ns;
    let http = vs
        .http
        .iter()
        .flat_map(|r| delegates.expand(r, ns))
        .filter_map(|(r, ns)| HttpRule::compile(&r, Scope { ns, ..scope }, registry))
        .collect();
    let tcp = vs
        .tcp
        .iter()
        .filter_map(|r| l4_rule(&r.matches, &r.route, scope, registry))
        .collect();
    let tls = vs
        .tls
        .iter()
        .filter_map(|r| l4_rule(&r.matches, &r.route, scope, registry))
        .collect();
    VirtualHost {
        name,
        http,
        tcp,
        tls,
    }
}

/// The match attributes of a tcp or tls rule: what to compile, and which
/// callers they select.
trait L4Attributes {
    fn compile(&self) -> L4Match;
    fn selects(&self, scope: &Scope<'_>) -> bool;
}

impl L4Attributes for L4MatchAttributes {
    fn compile(&self) -> L4Match {
        l4_match(self.port, &self.destination_subnets, &[])
    }

    fn selects(&self, scope: &Scope<'_>) -> bool {
        scope.selects(
            &self.source_labels,
            self.source_namespace.as_deref(),
            &self.gateways,
        )
    }
}

impl L4Attributes for TlsMatchAttributes {
    fn compile(&self) -> L4Match {
        l4_match(self.port, &self.destination_subnets, &self.sni_hosts)
    }

    fn selects(&self, scope: &Scope<'_>) -> bool {
        scope.selects(
            &self.source_labels,
            self.source_namespace.as_deref(),
            &self.gateways,
        )
    }
}

fn l4_rule<M: L4Attributes>(
    raw: &[M],
    route: &[RouteDestination],
    scope: Scope<'_>,
    registry: &Registry,
) -> Option<L4Rule> {
    let ns = scope.ns;
    let matches: Vec<L4Match> = raw
        .iter()
        .filter(|m| m.selects(&scope))
        .map(L4Attributes::compile)
        .collect();
    if matches.is_empty() && !raw.is_empty() {
        return None;
    }
    let weights = weights(route, |d| d.weight);
    let targets = route
        .iter()
        .zip(weights)
        .map(|(d, w)| {
            (
                Target::resolve(&d.destination, ns, registry),
                w,
                HeaderOps::default(),
            )
        })
        .collect();
    Some(L4Rule {
        matches,
        route: WeightedTargets::new(targets),
    })
}

fn l4_match(port: Option<u32>, subnets: &[String], sni_hosts: &[String]) -> L4Match {
    L4Match {
        port: port.and_then(|p| u16::try_from(p).ok()),
        subnets: subnets.iter().filter_map(|s| parse_cidr(s)).collect(),
        sni_hosts: sni_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::weights;

    #[test]
    fn weights_are_relative_and_large_ones_scaled_down() {
        let of = |w: &[Option<i32>]| weights(w, |w| *w);
        assert_eq!(of(&[None]), [100]);
        assert_eq!(of(&[Some(60), Some(30)]), [60, 30]);
        assert_eq!(of(&[Some(3), None]), [3, 0]);
        assert_eq!(
            of(&[Some(i32::MAX), Some(i32::MAX), Some(1), Some(0)]),
            [4999, 4999, 1, 0]
        );
    }
}
