//! DestinationRule rules, as Istio validates them.

use std::collections::BTreeSet;

use super::Findings;
use super::fields::{check_host, check_labels, check_port, check_positive, is_dns_label};
use crate::istio::destination_rule::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule,
    LoadBalancerSettings, OutlierDetection, SimpleLb, TrafficPolicy,
};

pub(super) fn check(dr: &DestinationRule, f: &mut Findings<'_>) {
    if dr.host.is_empty() {
        f.error("spec.host", "required: the host the rule applies to");
    } else {
        check_host(&dr.host, "spec.host", f);
    }
    if let Some(tp) = &dr.traffic_policy {
        check_policy(tp, "spec.trafficPolicy", f);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            f.error(&format!("{path}.name"), "required: a subset needs a name");
        } else if !is_dns_label(&subset.name) {
            f.error(
                &format!("{path}.name"),
                format!(
                    "\"{}\" is not a valid subset name (letters, digits and '-')",
                    subset.name
                ),
            );
        } else if !names.insert(&subset.name) {
            f.error(
                &format!("{path}.name"),
                format!("subset \"{}\" is defined twice", subset.name),
            );
        }
        check_labels(&subset.labels, &format!("{path}.labels"), f);
        if let Some(tp) = &subset.traffic_policy {
            check_policy(tp, &format!("{path}.trafficPolicy"), f);
        }
    }
}

fn check_policy(tp: &TrafficPolicy, path: &str, f: &mut Findings<'_>) {
    if let Some(lb) = &tp.load_balancer {
        check_lb(lb, &format!("{path}.loadBalancer"), f);
    }
    if let Some(cp) = &tp.connection_pool {
        check_pool(cp, &format!("{path}.connectionPool"), f);
    }
    if let Some(od) = &tp.outlier_detection {
        check_outlier(od, &format!("{path}.outlierDetection"), f);
    }
    if let Some(tls) = &tp.tls {
        check_tls(tls, &format!("{path}.tls"), f);
    }
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let p = format!("{path}.portLevelSettings[{i}]");
        match &pl.port {
            None => f.error(
                &format!("{p}.port"),
                "required: port-level settings need a port",
            ),
            Some(port) => {
                check_port(port.number, &format!("{p}.port.number"), f);
                if !ports.insert(port.number) {
                    f.error(
                        &format!("{p}.port"),
                        format!("port {} has settings twice", port.number),
                    );
                }
            }
        }
        if let Some(lb) = &pl.load_balancer {
            check_lb(lb, &format!("{p}.loadBalancer"), f);
        }
        if let Some(cp) = &pl.connection_pool {
            check_pool(cp, &format!("{p}.connectionPool"), f);
        }
        if let Some(od) = &pl.outlier_detection {
            check_outlier(od, &format!("{p}.outlierDetection"), f);
        }
        if let Some(tls) = &pl.tls {
            check_tls(tls, &format!("{p}.tls"), f);
        }
    }
}

fn check_lb(lb: &LoadBalancerSettings, path: &str, f: &mut Findings<'_>) {
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
        let p = format!("{path}.consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip == Some(true),
            ch.http_query_parameter_name.is_some(),
        ];
        match keys.iter().filter(|b| **b).count() {
            0 => f.error(&p, "consistentHash needs one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName"),
            1 => {}
            _ => f.error(&p, "set only one of httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName"),
        }
        if let Some(cookie) = &ch.http_cookie {
            if cookie.name.is_empty() {
                f.error(
                    &format!("{p}.httpCookie.name"),
                    "required: the cookie needs a name",
                );
            }
            check_positive(cookie.ttl.as_ref(), &format!("{p}.httpCookie.ttl"), f);
        }
    }
    if let Some(loc) = &lb.locality_lb_setting {
        let p = format!("{path}.localityLbSetting");
        if !loc.distribute.is_empty() && !loc.failover.is_empty() {
            f.error(&p, "set only one of distribute and failover");
        }
        for (i, d) in loc.distribute.iter().enumerate() {
            let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if total != 100 {
                f.error(
                    &format!("{p}.distribute[{i}].to"),
                    format!("weights sum to {total}; they must sum to 100"),
                );
            }
        }
        for (i, fo) in loc.failover.iter().enumerate() {
            if fo.from == fo.to {
                f.error(
                    &format!("{p}.failover[{i}]"),
                    "failover from a region to itself",
                );
            }
        }
    }
}

fn check_pool(cp: &ConnectionPoolSettings, path: &str, f: &mut Findings<'_>) {
    let mut non_negative = |value: Option<i32>, field: &str| {
        if let Some(v) = value
            && v < 0
        {
            f.error(
                &format!("{path}.{field}"),
                format!("{v} cannot be negative"),
            );
        }
    };
    if let Some(tcp) = &cp.tcp {
        non_negative(tcp.max_connections, "tcp.maxConnections");
    }
    if let Some(http) = &cp.http {
        non_negative(
            http.http1_max_pending_requests,
            "http.http1MaxPendingRequests",
        );
        non_negative(http.http2_max_requests, "http.http2MaxRequests");
        non_negative(
            http.max_requests_per_connection,
            "http.maxRequestsPerConnection",
        );
        non_negative(http.max_retries, "http.maxRetries");
        non_negative(http.max_concurrent_streams, "http.maxConcurrentStreams");
    }
    if let Some(tcp) = &cp.tcp {
        check_positive(
            tcp.connect_timeout.as_ref(),
            &format!("{path}.tcp.connectTimeout"),
            f,
        );
    }
}

fn check_outlier(od: &OutlierDetection, path: &str, f: &mut Findings<'_>) {
    if od.consecutive_errors.is_some() {
        f.warn(
            &format!("{path}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    for (value, field) in [
        (od.max_ejection_percent, "maxEjectionPercent"),
        (od.min_health_percent, "minHealthPercent"),
    ] {
        if let Some(v) = value
            && !(0..=100).contains(&v)
        {
            f.error(
                &format!("{path}.{field}"),
                format!("percentage {v} is out of range 0..100"),
            );
        }
    }
    if od.consecutive_errors.is_some_and(|v| v < 0) {
        f.error(&format!("{path}.consecutiveErrors"), "cannot be negative");
    }
    check_positive(od.interval.as_ref(), &format!("{path}.interval"), f);
    check_positive(
        od.base_ejection_time.as_ref(),
        &format!("{path}.baseEjectionTime"),
        f,
    );
}

fn check_tls(tls: &ClientTlsSettings, path: &str, f: &mut Findings<'_>) {
    if tls.mode == Some(ClientTlsMode::Mutual)
        && tls.credential_name.is_none()
        && (tls.client_certificate.is_none() || tls.private_key.is_none())
    {
        f.error(
            path,
            "MUTUAL needs clientCertificate and privateKey (or credentialName)",
        );
    }
    if tls.mode == Some(ClientTlsMode::IstioMutual)
        && (tls.client_certificate.is_some()
            || tls.private_key.is_some()
            || tls.ca_certificates.is_some())
    {
        f.error(path, "ISTIO_MUTUAL uses mesh certificates: do not set clientCertificate, privateKey or caCertificates");
    }
    if tls.mode == Some(ClientTlsMode::IstioMutual) {
        f.warn(
            &format!("{path}.mode"),
            "ISTIO_MUTUAL is not supported by sluice yet (it has no mesh certificate authority): \
             requests to this destination are answered 503; use SIMPLE or MUTUAL with certificate files, or DISABLE",
        );
    }
}
