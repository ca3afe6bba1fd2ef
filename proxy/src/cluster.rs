//! Destinations as the upstream side sees them (Envoy's clusters): one per
//! service, subset and port, with the DestinationRule settings resolved for
//! it turned into circuit-breaker thresholds, a connection policy and TLS
//! origination. Built with each config version; the breaker counters are
//! kept across versions by destination name.

pub mod limits;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use sluice_api::model::policy::{Policy, Settings};
use sluice_api::model::routes::SubsetRef;
use sluice_api::model::{Model, Service, ServiceId};

pub use limits::{Breaker, Limit, Limits, Permit};

use crate::metrics::RequestSeries;
use crate::tls::Tls;

/// Idle upstream HTTP connections are closed after this long, unless
/// `http.idleTimeout` says otherwise. Shorter than Envoy's hour, so a
/// connection that a server's keep-alive timeout closed is seldom reused.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long an opaque TCP connection may carry nothing before it is closed,
/// unless `tcp.idleTimeout` says otherwise (Istio's default).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Which destination: service host, subset (empty for all endpoints), port
/// (0 for ports the service does not declare).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterName {
    /// The service host.
    pub service: String,
    /// The subset, or empty.
    pub subset: String,
    /// The service port.
    pub port: u16,
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.subset.as_str(), self.port) {
            ("", 0) => write!(f, "{}", self.service),
            ("", port) => write!(f, "{}:{port}", self.service),
            (subset, 0) => write!(f, "{}/{subset}", self.service),
            (subset, port) => write!(f, "{}/{subset}:{port}", self.service),
        }
    }
}

/// How long upstream HTTP connections live and how much they carry, and the
/// keepalive of every upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// Closed after this long without requests (`http.idleTimeout`).
    pub idle_timeout: Duration,
    /// Closed after this many requests (`http.maxRequestsPerConnection`).
    pub max_requests: Option<u32>,
    /// Closed, once idle, after this long (`tcp.maxConnectionDuration`).
    pub max_duration: Option<Duration>,
    /// TCP keepalive probes (`tcp.tcpKeepalive`), off when unset.
    pub keepalive: Option<Keepalive>,
    /// Opaque TCP connections are closed after this long without a byte
    /// either way (`tcp.idleTimeout`; `0s`: never).
    pub tcp_idle: Option<Duration>,
}

impl Default for ConnectionPolicy {
    fn default() -> Self {
        ConnectionPolicy {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_requests: None,
            max_duration: None,
            keepalive: None,
            tcp_idle: Some(DEFAULT_TCP_IDLE_TIMEOUT),
        }
    }
}

impl ConnectionPolicy {
    /// The policy a DestinationRule's settings give.
    pub fn of(settings: &Settings) -> ConnectionPolicy {
        let pool = settings.connection_pool.as_ref();
        let http = pool.and_then(|p| p.http.as_ref());
        let tcp = pool.and_then(|p| p.tcp.as_ref());
        ConnectionPolicy {
            idle_timeout: http
                .and_then(|h| h.idle_timeout)
                .map_or(DEFAULT_IDLE_TIMEOUT, |d| d.get()),
            max_requests: http
                .and_then(|h| h.max_requests_per_connection)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0),
            max_duration: tcp
                .and_then(|t| t.max_connection_duration)
                .map(|d| d.get())
                .filter(|d| !d.is_zero()),
            keepalive: tcp
                .and_then(|t| t.tcp_keepalive.as_ref())
                .map(|k| Keepalive {
                    time: k.time.map(|d| d.get()),
                    interval: k.interval.map(|d| d.get()),
                    probes: k.probes,
                }),
            tcp_idle: tcp
                .and_then(|t| t.idle_timeout)
                .map_or(Some(DEFAULT_TCP_IDLE_TIMEOUT), |d| {
                    Some(d.get()).filter(|d| !d.is_zero())
                }),
        }
    }
}

/// TCP keepalive probes on the connections to a destination's endpoints
/// (DestinationRule `connectionPool.tcp.tcpKeepalive`); a field left out keeps
/// the kernel's default (`net.ipv4.tcp_keepalive_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub time: Option<Duration>,
    /// Time between probes.
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped.
    pub probes: Option<u32>,
}

/// One destination's upstream settings and counters.
#[derive(Debug)]
pub struct Cluster {
    /// Which destination.
    pub name: ClusterName,
    /// Identifies the destination's connections in the pools (stays the same
    /// across config versions while the breaker does).
    pub id: u64,
    /// Counters of connections, waiting requests, requests and retries.
    pub breaker: Arc<Breaker>,
    /// The thresholds in force.
    pub limits: Limits,
    /// How upstream HTTP connections live.
    pub connection: ConnectionPolicy,
    /// TLS towards the endpoints.
    pub tls: Tls,
    /// The request metrics of the destination, made at its first request.
    pub series: OnceLock<Arc<RequestSeries>>,
}

impl Cluster {
    /// A destination without limits, named for errors and metrics (the
    /// original destination of passthrough traffic, tests).
    pub fn unlimited(name: ClusterName) -> Cluster {
        Cluster {
            name,
            id: 0,
            breaker: Arc::default(),
            limits: Limits::default(),
            connection: ConnectionPolicy::default(),
            tls: Tls::Plain,
            series: OnceLock::new(),
        }
    }

    /// Counts one more of `limit`, or says which threshold is reached.
    pub fn admit(&self, limit: Limit) -> Result<Permit, Overflow> {
        let max = self.limits.max(limit);
        self.breaker
            .try_acquire(limit, max)
            .ok_or_else(|| Overflow {
                cluster: self.name.clone(),
                limit,
                max,
            })
    }
}

/// A threshold a request ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    /// The destination.
    pub cluster: ClusterName,
    /// Which threshold.
    pub limit: Limit,
    /// Its value.
    pub max: u32,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is at its limit of {} {} (trafficPolicy.{})",
            self.cluster,
            self.max,
            self.limit,
            self.limit.field()
        )
    }
}

/// The breakers of every destination ever configured and still referenced,
/// by name: a new config version picks up the counters of the last.
#[derive(Debug, Default)]
pub struct Breakers {
    by_name: Mutex<HashMap<ClusterName, (u64, Weak<Breaker>)>>,
    next_id: AtomicU64,
}

impl Breakers {
    fn get(&self, name: &ClusterName) -> (u64, Arc<Breaker>) {
        let mut map = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((id, breaker)) = map.get(name).and_then(|(id, w)| Some((*id, w.upgrade()?))) {
            return (id, breaker);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let breaker = Arc::new(Breaker::default());
        map.insert(name.clone(), (id, Arc::downgrade(&breaker)));
        (id, breaker)
    }

    fn prune(&self) {
        let mut map = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, (_, w)| w.strong_count() > 0);
    }
}

/// The clusters of one config version: by service, then subset (all
/// endpoints first), then port.
#[derive(Debug, Default)]
pub struct Clusters {
    services: Vec<Vec<PortClusters>>,
    /// Why some destinations cannot be reached (TLS that cannot be originated).
    pub warnings: Vec<String>,
}

/// The clusters of one service or subset, by port (0: undeclared ports).
type PortClusters = Vec<(u16, Arc<Cluster>)>;

/// What building the clusters of one version shares: the breakers, and the
/// TLS settings built so far (many clusters share one DestinationRule's).
struct Build<'a> {
    breakers: &'a Breakers,
    tls: HashMap<String, Tls>,
    warnings: Vec<String>,
}

impl Clusters {
    /// One cluster per service port (and one for undeclared ports) of every
    /// service and subset of `model`, with the counters `breakers` keeps.
    pub fn build(model: &Model, breakers: &Breakers) -> Clusters {
        breakers.prune();
        let mut build = Build {
            breakers,
            tls: HashMap::new(),
            warnings: Vec::new(),
        };
        let services = model
            .registry
            .services
            .iter()
            .map(|svc| {
                let mut slots = vec![build.ports(svc, "", &svc.policy)];
                for s in &svc.subsets {
                    slots.push(build.ports(svc, &s.name, &s.policy));
                }
                slots
            })
            .collect();
        Clusters {
            services,
            warnings: build.warnings,
        }
    }

    /// The destinations with limits, a connection policy or TLS of their
    /// own, or with connections or requests counted, for the config dump.
    pub fn dump(&self) -> serde_json::Value {
        let clusters: Vec<serde_json::Value> = self
            .services
            .iter()
            .flatten()
            .flatten()
            .map(|(_, c)| c)
            .filter(|c| {
                c.limits != Limits::default()
                    || c.connection != ConnectionPolicy::default()
                    || !matches!(c.tls, Tls::Plain)
                    || c.breaker.counts().iter().any(|(_, n)| *n > 0)
            })
            .map(|c| {
                let tls = match &c.tls {
                    Tls::Plain => "plain".to_string(),
                    Tls::Originate(o) => format!("originated, server name {:?}", o.server_name()),
                    Tls::Unavailable(reason) => format!("unavailable: {reason}"),
                };
                serde_json::json!({
                    "name": c.name.to_string(),
                    "limits": c.limits.to_string(),
                    "counts": c.breaker.counts().into_iter().collect::<HashMap<_, _>>(),
                    "connection": format!("{:?}", c.connection),
                    "tls": tls,
                })
            })
            .collect();
        serde_json::Value::Array(clusters)
    }

    /// The cluster of a service's subset and port.
    pub fn get(&self, service: ServiceId, subset: SubsetRef, port: u16) -> Option<&Arc<Cluster>> {
        let slot = match subset {
            SubsetRef::All => 0,
            SubsetRef::Found(i) => i + 1,
            SubsetRef::Missing => return None,
        };
        let ports = self.services.get(service.0 as usize)?.get(slot)?;
        ports
            .iter()
            .find(|(p, _)| *p == port)
            .or_else(|| ports.iter().find(|(p, _)| *p == 0))
            .map(|(_, c)| c)
    }
}

impl Build<'_> {
    fn ports(&mut self, svc: &Service, subset: &str, policy: &Policy) -> PortClusters {
        svc.ports
            .iter()
            .map(|p| p.number)
            .chain([0])
            .map(|port| {
                let settings = if port == 0 {
                    &policy.default
                } else {
                    policy.for_port(port)
                };
                let name = ClusterName {
                    service: svc.host.clone(),
                    subset: subset.to_string(),
                    port,
                };
                let (id, breaker) = self.breakers.get(&name);
                let cluster = Cluster {
                    tls: self.tls(svc, settings),
                    name,
                    id,
                    breaker,
                    limits: Limits::of(settings),
                    connection: ConnectionPolicy::of(settings),
                    series: OnceLock::new(),
                };
                (port, Arc::new(cluster))
            })
            .collect()
    }

    fn tls(&mut self, svc: &Service, settings: &Settings) -> Tls {
        let Some(tls) = &settings.tls else {
            return Tls::Plain;
        };
        let key = format!("{tls:?} {}", svc.host);
        if let Some(built) = self.tls.get(&key) {
            return built.clone();
        }
        let built = Tls::of(Some(tls), &svc.host);
        if let Tls::Unavailable(reason) = &built {
            let rule = svc.destination_rule.as_deref().unwrap_or("?");
            let warning = format!(
                "DestinationRule {rule}: TLS towards {}: {reason}; requests to it are answered 503",
                svc.host
            );
            tracing::warn!("{warning}");
            self.warnings.push(warning);
        }
        self.tls.insert(key, built.clone());
        built
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::model::Workload;
    use sluice_api::{load_str, validate};

    use super::*;

    fn model(pool: &str) -> Model {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s}}\nspec:\n  hosts: [s]\n  ports: [{{number: 80, name: http}}, {{number: 81, name: http-admin}}]\n  resolution: STATIC\n  endpoints: [{{address: 10.0.0.1, labels: {{v: a}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s}}\nspec:\n  host: s\n  trafficPolicy:\n    connectionPool: {pool}\n    portLevelSettings:\n    - port: {{number: 81}}\n      connectionPool: {{tcp: {{maxConnections: 7}}}}\n  subsets: [{{name: a, labels: {{v: a}}}}]\n"
        );
        let mut set = load_str("t.yaml", &yaml);
        validate::validate(&mut set);
        assert!(!set.has_errors(), "{:?}", set.diagnostics);
        Model::compile(&set.resources, &Workload::default())
    }

    #[test]
    fn one_cluster_per_subset_and_port_with_its_settings() {
        let m = model(
            "{tcp: {maxConnections: 3, tcpKeepalive: {time: 7s, probes: 4}}, http: {maxRequestsPerConnection: 1, idleTimeout: 5s}}",
        );
        let clusters = Clusters::build(&m, &Breakers::default());
        let id = ServiceId(0);
        // (subset, port, name, max connections)
        let cases = [
            (SubsetRef::All, 80, "s.default.svc.cluster.local:80", 3),
            (SubsetRef::All, 81, "s.default.svc.cluster.local:81", 7),
            (
                SubsetRef::Found(0),
                80,
                "s.default.svc.cluster.local/a:80",
                3,
            ),
            (
                SubsetRef::Found(0),
                9999,
                "s.default.svc.cluster.local/a",
                3,
            ),
        ];
        for (subset, port, name, max) in cases {
            let c = clusters.get(id, subset, port).unwrap();
            assert_eq!(c.name.to_string(), name);
            assert_eq!(c.limits.max(Limit::Connections), max, "{name}");
        }
        let c = clusters.get(id, SubsetRef::All, 80).unwrap();
        assert_eq!(
            c.connection,
            ConnectionPolicy {
                idle_timeout: Duration::from_secs(5),
                max_requests: Some(1),
                max_duration: None,
                keepalive: Some(Keepalive {
                    time: Some(Duration::from_secs(7)),
                    interval: None,
                    probes: Some(4),
                }),
                tcp_idle: Some(DEFAULT_TCP_IDLE_TIMEOUT),
            }
        );
        assert!(clusters.get(id, SubsetRef::Missing, 80).is_none());
        let dump = clusters.dump().to_string();
        assert!(dump.contains("max_connections=7"), "{dump}");
    }

    #[test]
    fn counters_survive_a_new_config_version() {
        let breakers = Breakers::default();
        let old = Clusters::build(&model("{tcp: {maxConnections: 1}}"), &breakers);
        let c = old.get(ServiceId(0), SubsetRef::All, 80).unwrap().clone();
        let held = c.admit(Limit::Connections).unwrap();
        let new = Clusters::build(&model("{tcp: {maxConnections: 2}}"), &breakers);
        let n = new.get(ServiceId(0), SubsetRef::All, 80).unwrap();
        assert_eq!(n.id, c.id, "same destination, same pool identity");
        assert_eq!(n.breaker.count(Limit::Connections), 1);
        let second = n.admit(Limit::Connections).unwrap();
        let over = n.admit(Limit::Connections).unwrap_err();
        assert_eq!(
            over.to_string(),
            "s.default.svc.cluster.local:80 is at its limit of 2 connections (trafficPolicy.connectionPool.tcp.maxConnections)"
        );
        drop((held, second));
        assert_eq!(n.breaker.count(Limit::Connections), 0);
    }
}
