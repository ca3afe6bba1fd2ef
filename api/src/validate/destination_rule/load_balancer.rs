//! Load balancer settings: consistent hashing, locality and warmup, as Istio
//! validates them.

use std::collections::BTreeMap;

use super::super::Findings;
use super::super::fields::check_duration;
use crate::istio::destination_rule::{
    ConsistentHashLb, LoadBalancerSettings, LocalityLbSetting, SimpleLb, WarmupConfiguration,
};

/// Maglev table sizes must be primes below this (Envoy's limit).
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;

/// Topology labels that `failover` already orders by; `failoverPriority`
/// cannot name them beside `failover`.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// `outlier`: whether the policy has outlier detection, which failover needs.
pub(super) fn check(lb: &LoadBalancerSettings, outlier: bool, path: &str, f: &mut Findings<'_>) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        f.error(path, "set only one of simple and consistentHash");
    }
    if lb.simple == Some(SimpleLb::LeastConn) {
        f.warn(
            &format!("{path}.simple"),
            "LEAST_CONN is a deprecated alias of LEAST_REQUEST",
        );
    }
    if let Some(ch) = &lb.consistent_hash {
        check_hash(ch, &format!("{path}.consistentHash"), f);
    }
    if let Some(loc) = &lb.locality_lb_setting {
        check_locality(loc, outlier, &format!("{path}.localityLbSetting"), f);
    }
    if lb.warmup_duration_secs.is_some() {
        let p = format!("{path}.warmupDurationSecs");
        check_duration(lb.warmup_duration_secs.as_ref(), &p, f);
        f.warn(&p, "warmupDurationSecs is deprecated, use warmup.duration");
        if lb.warmup.is_some() {
            f.error(&p, "set only one of warmupDurationSecs and warmup");
        }
    }
    if let Some(w) = &lb.warmup {
        check_warmup(w, &format!("{path}.warmup"), f);
    }
}

fn check_hash(ch: &ConsistentHashLb, p: &str, f: &mut Findings<'_>) {
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|b| **b).count() > 1 {
        f.error(
            p,
            "set only one of httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName",
        );
    }
    if !keys.contains(&true) {
        f.warn(p, "consistentHash without httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName: sluice hashes the client's IP");
    }
    if let Some(cookie) = &ch.http_cookie
        && cookie.name.is_empty()
    {
        f.error(
            &format!("{p}.httpCookie.name"),
            "required: the cookie needs a name",
        );
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        f.error(p, "set only one of ringHash and maglev");
    }
    if let Some(size) = ch.minimum_ring_size
        && size != 0
    {
        let at = format!("{p}.minimumRingSize");
        f.warn(
            &at,
            "minimumRingSize is deprecated, use ringHash.minimumRingSize",
        );
        if ch.ring_hash.is_some() || ch.maglev.is_some() {
            f.error(
                &at,
                "set only one of minimumRingSize and ringHash or maglev",
            );
        }
    }
    if let Some(m) = &ch.maglev {
        let at = format!("{p}.maglev.tableSize");
        let size = m.table_size;
        if size == 0 {
            f.error(
                &at,
                "required: maglev needs a tableSize (a prime, e.g. 65537)",
            );
        } else if size >= MAGLEV_TABLE_LIMIT {
            f.error(
                &at,
                format!("table size {size} must be less than {MAGLEV_TABLE_LIMIT}"),
            );
        } else if !is_prime(size) {
            f.error(&at, format!("table size {size} is not a prime number"));
        }
    }
}

/// Primality as Envoy tests a Maglev table size.
fn is_prime(x: u64) -> bool {
    if x < 4 {
        return x != 0;
    }
    if x.is_multiple_of(2) {
        return false;
    }
    (3..)
        .step_by(2)
        .take_while(|d| d * d <= x)
        .all(|d| !x.is_multiple_of(d))
}

fn check_locality(loc: &LocalityLbSetting, outlier: bool, p: &str, f: &mut Findings<'_>) {
    if !loc.distribute.is_empty() && !loc.failover.is_empty() {
        f.error(p, "set only one of distribute and failover");
        return;
    }
    if !loc.failover.is_empty()
        && let Some(label) = loc
            .failover_priority
            .iter()
            .find(|l| TOPOLOGY_LABELS.contains(&l.as_str()))
    {
        f.error(
            &format!("{p}.failoverPriority"),
            format!("\"{label}\" cannot be used beside failover, which already orders by region, zone and subzone"),
        );
        return;
    }
    let mut from = Vec::new();
    for (i, d) in loc.distribute.iter().enumerate() {
        let at = format!("{p}.distribute[{i}].to");
        from.push(d.from.as_str());
        if let Some((l, w)) = d.to.iter().find(|(_, w)| !(1..=100).contains(*w)) {
            f.error(
                &format!("{at}.{l}"),
                format!("locality weight {w} is out of range 1..100"),
            );
            return;
        }
        let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
        if total != 100 {
            f.error(&at, format!("weights sum to {total}; they must sum to 100"));
            return;
        }
        let to: Vec<&str> = d.to.keys().map(String::as_str).collect();
        check_localities(&to, &at, f);
    }
    check_localities(&from, &format!("{p}.distribute"), f);
    if (!loc.failover.is_empty() || !loc.failover_priority.is_empty()) && !outlier {
        f.warn(
            p,
            "failover needs outlier detection in the same policy; without it, it has no effect",
        );
    }
    for (i, fo) in loc.failover.iter().enumerate() {
        let at = format!("{p}.failover[{i}]");
        if fo.from == fo.to {
            f.error(&at, "failover from a region to itself");
        }
        if fo.from.contains('/') || fo.to.contains('/') {
            f.error(&at, "failover names regions only (no '/')");
        }
        if fo.from.contains('*') || fo.to.contains('*') {
            f.error(&at, "failover regions cannot contain '*'");
        }
    }
}

/// Localities `region/zone/subzone`, each part non-empty, at most one `*` and
/// only at the end, none covering another.
fn check_localities(localities: &[&str], path: &str, f: &mut Findings<'_>) {
    let mut seen: BTreeMap<Vec<&str>, &str> = BTreeMap::new();
    for &locality in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            f.error(
                path,
                format!("locality \"{locality}\": a '*' may only be the last part"),
            );
            return;
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            f.error(
                path,
                format!("locality \"{locality}\" has an empty region, zone or subzone"),
            );
            return;
        }
        let key: Vec<&str> = parts.into_iter().filter(|p| *p != "*").collect();
        let overlap = seen.iter().find(|(k, _)| {
            let n = k.len().min(key.len());
            k[..n] == key[..n]
        });
        if let Some((_, other)) = overlap {
            f.error(
                path,
                format!("locality \"{locality}\" overlaps \"{other}\""),
            );
            return;
        }
        seen.insert(key, locality);
    }
}

fn check_warmup(w: &WarmupConfiguration, p: &str, f: &mut Findings<'_>) {
    check_duration(w.duration.as_ref(), &format!("{p}.duration"), f);
    if let Some(m) = w.minimum_percent
        && !(0.0..=100.0).contains(&m)
    {
        f.error(
            &format!("{p}.minimumPercent"),
            format!("{m} is out of range 0..100"),
        );
    }
    if let Some(a) = w.aggression
        && (a < 0.0 || a.is_nan())
    {
        f.error(
            &format!("{p}.aggression"),
            format!("{a} cannot be negative"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn primes_as_envoy_counts_them() {
        for p in [1, 2, 3, 5, 65537, 4_999_999] {
            assert!(is_prime(p), "{p}");
        }
        for n in [0, 4, 9, 65536, 1_000_001] {
            assert!(!is_prime(n), "{n}");
        }
    }
}
