//! Traffic policy (DestinationRule `trafficPolicy`) resolved for a service,
//! subset and port, with Istio's precedence: port-level settings over the
//! policy they sit in, a subset's policy over the rule's.

use std::time::Duration;

use serde::Serialize;

use crate::istio::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, H2UpgradePolicy, LoadBalancerSettings,
    OutlierDetection, SimpleLb, TrafficPolicy,
};

/// How an endpoint is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub enum LoadBalancer {
    /// Round robin (the default).
    #[default]
    RoundRobin,
    /// Random choice.
    Random,
    /// Fewest outstanding requests of two random picks (also `LEAST_CONN`).
    LeastRequest,
    /// Forward to the original destination.
    Passthrough,
    /// Consistent hashing on a request property.
    ConsistentHash(HashKey),
}

/// What consistent hashing hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum HashKey {
    /// A request header (lowercase name).
    Header(String),
    /// A cookie; generated with this path and lifetime when absent and a ttl is set.
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie path.
        path: Option<String>,
        /// Lifetime of a generated cookie.
        ttl: Option<Duration>,
        /// Extra attributes of a generated cookie (`name=value`, or `name` alone).
        attributes: Vec<(String, String)>,
    },
    /// The client's IP address.
    SourceIp,
    /// A query parameter.
    QueryParameter(String),
}

/// Outlier detection: when to eject an endpoint and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outlier {
    /// 5xx answers in a row before ejection (0 = off).
    pub consecutive_5xx: u32,
    /// 502/503/504 answers (and connect failures) in a row before ejection (0 = off).
    pub consecutive_gateway: u32,
    /// Time between ejection sweeps.
    pub interval: Duration,
    /// Base ejection time, multiplied by the number of ejections.
    pub base_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent.
    pub max_ejection_percent: u32,
    /// Below this share of healthy endpoints, ejection is suspended.
    pub min_health_percent: u32,
}

/// Settings in force for one port of one subset.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Settings {
    /// Load balancer.
    pub load_balancer: LoadBalancer,
    /// Connection pool limits.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    pub outlier: Option<Outlier>,
    /// TLS towards the upstream.
    pub tls: Option<ClientTlsSettings>,
}

impl Settings {
    /// Connect timeout, if the policy sets one.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connection_pool
            .as_ref()?
            .tcp
            .as_ref()?
            .connect_timeout
            .map(|d| d.get())
    }

    /// Whether HTTP/1.1 requests go upstream as HTTP/2.
    pub fn h2_upgrade(&self) -> bool {
        self.connection_pool
            .as_ref()
            .and_then(|p| p.http.as_ref())
            .and_then(|h| h.h2_upgrade_policy)
            .is_some_and(|p| p == H2UpgradePolicy::Upgrade)
    }

    /// Whether requests go upstream in the HTTP version the client spoke.
    pub fn use_client_protocol(&self) -> bool {
        self.connection_pool
            .as_ref()
            .and_then(|p| p.http.as_ref())
            .and_then(|h| h.use_client_protocol)
            .unwrap_or(false)
    }
}

/// A policy: settings for all ports, with per-port overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Policy {
    /// Settings for ports without an override.
    pub default: Settings,
    /// Overrides by port number.
    pub ports: Vec<(u16, Settings)>,
}

impl Policy {
    /// Resolves a rule's policy, overridden by a subset's where it sets fields.
    pub fn resolve(rule: Option<&TrafficPolicy>, subset: Option<&TrafficPolicy>) -> Policy {
        let merged = merge(rule, subset);
        let default = settings(&merged);
        let ports = merged
            .port_level_settings
            .iter()
            .filter_map(|pl| {
                let port = u16::try_from(pl.port?.number).ok()?;
                let over = TrafficPolicy {
                    load_balancer: pl.load_balancer.clone().or(merged.load_balancer.clone()),
                    connection_pool: pl
                        .connection_pool
                        .clone()
                        .or(merged.connection_pool.clone()),
                    outlier_detection: pl
                        .outlier_detection
                        .clone()
                        .or(merged.outlier_detection.clone()),
                    tls: pl.tls.clone().or(merged.tls.clone()),
                    ..TrafficPolicy::default()
                };
                Some((port, settings(&over)))
            })
            .collect();
        Policy { default, ports }
    }

    /// The settings in force for a port.
    pub fn for_port(&self, port: u16) -> &Settings {
        self.ports
            .iter()
            .find(|(p, _)| *p == port)
            .map_or(&self.default, |(_, s)| s)
    }
}

fn merge(rule: Option<&TrafficPolicy>, subset: Option<&TrafficPolicy>) -> TrafficPolicy {
    let base = rule.cloned().unwrap_or_default();
    let Some(sub) = subset else { return base };
    TrafficPolicy {
        load_balancer: sub.load_balancer.clone().or(base.load_balancer),
        connection_pool: sub.connection_pool.clone().or(base.connection_pool),
        outlier_detection: sub.outlier_detection.clone().or(base.outlier_detection),
        tls: sub.tls.clone().or(base.tls),
        port_level_settings: if sub.port_level_settings.is_empty() {
            base.port_level_settings
        } else {
            sub.port_level_settings.clone()
        },
        tunnel: sub.tunnel.clone().or(base.tunnel),
        proxy_protocol: sub.proxy_protocol.clone().or(base.proxy_protocol),
    }
}

fn settings(tp: &TrafficPolicy) -> Settings {
    Settings {
        load_balancer: tp
            .load_balancer
            .as_ref()
            .map(load_balancer)
            .unwrap_or_default(),
        connection_pool: tp.connection_pool.clone(),
        outlier: tp.outlier_detection.as_ref().map(outlier),
        tls: tp.tls.clone(),
    }
}

fn load_balancer(lb: &LoadBalancerSettings) -> LoadBalancer {
    if let Some(ch) = &lb.consistent_hash {
        let key = if let Some(h) = &ch.http_header_name {
            HashKey::Header(h.to_ascii_lowercase())
        } else if let Some(c) = &ch.http_cookie {
            HashKey::Cookie {
                name: c.name.clone(),
                path: c.path.clone(),
                ttl: c.ttl.map(|d| d.get()),
                attributes: c
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), a.value.clone()))
                    .collect(),
            }
        } else if let Some(q) = &ch.http_query_parameter_name {
            HashKey::QueryParameter(q.clone())
        } else {
            HashKey::SourceIp
        };
        return LoadBalancer::ConsistentHash(key);
    }
    match lb.simple {
        Some(SimpleLb::Random) => LoadBalancer::Random,
        Some(SimpleLb::LeastConn | SimpleLb::LeastRequest) => LoadBalancer::LeastRequest,
        Some(SimpleLb::Passthrough) => LoadBalancer::Passthrough,
        Some(SimpleLb::RoundRobin | SimpleLb::Unspecified) | None => LoadBalancer::RoundRobin,
    }
}

/// Istio's defaults: 5 consecutive 5xx, 10s sweeps, 30s ejection, at most 10% ejected.
fn outlier(od: &OutlierDetection) -> Outlier {
    let legacy = od.consecutive_errors.map(|v| v.max(0) as u32);
    let percent = |v: Option<i32>, default: u32| v.map_or(default, |v| v.clamp(0, 100) as u32);
    Outlier {
        consecutive_5xx: od.consecutive_5xx_errors.or(legacy).unwrap_or(5),
        consecutive_gateway: od.consecutive_gateway_errors.unwrap_or(0),
        interval: od.interval.map_or(Duration::from_secs(10), |d| d.get()),
        base_ejection_time: od
            .base_ejection_time
            .map_or(Duration::from_secs(30), |d| d.get()),
        max_ejection_percent: percent(od.max_ejection_percent, 10),
        min_health_percent: percent(od.min_health_percent, 0),
    }
}
