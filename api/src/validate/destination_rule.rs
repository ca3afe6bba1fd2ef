//! DestinationRule rules, as Istio validates them.

mod load_balancer;

use std::collections::BTreeSet;

use super::Findings;
use super::fields::{
    check_duration, check_export_to, check_host, check_labels, check_port, check_selector,
    fqdn_problem, is_dns_label,
};
use crate::istio::destination_rule::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule, H2UpgradePolicy,
    OutlierDetection, PortTrafficPolicy, TrafficPolicy, TunnelSettings,
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
    let namespace = f.namespace().to_string();
    let selector = dr.workload_selector.as_ref();
    check_export_to(&dr.export_to, &namespace, false, selector.is_some(), f);
    if let Some(s) = selector {
        check_selector(&s.match_labels, "spec.workloadSelector.matchLabels", f);
    }
}

fn check_policy(tp: &TrafficPolicy, path: &str, f: &mut Findings<'_>) {
    if tp == &TrafficPolicy::default() {
        f.error(path, "a traffic policy needs at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        f.error(path, "set only one of tunnel and proxyProtocol");
    }
    if let Some(lb) = &tp.load_balancer {
        let outlier = tp.outlier_detection.is_some();
        load_balancer::check(lb, outlier, &format!("{path}.loadBalancer"), f);
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
    if let Some(tunnel) = &tp.tunnel {
        check_tunnel(tunnel, &format!("{path}.tunnel"), f);
    }
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let p = format!("{path}.portLevelSettings[{i}]");
        check_port_policy(pl, &p, f);
        if let Some(port) = &pl.port
            && !ports.insert(port.number)
        {
            f.warn(
                &format!("{p}.port"),
                format!(
                    "port {} has settings twice; only the first applies",
                    port.number
                ),
            );
        }
    }
}

fn check_port_policy(pl: &PortTrafficPolicy, p: &str, f: &mut Findings<'_>) {
    match &pl.port {
        None => f.error(
            &format!("{p}.port"),
            "required: port-level settings need a port",
        ),
        Some(port) => check_port(port.number, &format!("{p}.port.number"), f),
    }
    let settings = PortTrafficPolicy {
        port: None,
        ..pl.clone()
    };
    if settings == PortTrafficPolicy::default() {
        f.error(p, "port-level settings need at least one of loadBalancer, connectionPool, outlierDetection and tls");
    }
    if let Some(lb) = &pl.load_balancer {
        let outlier = pl.outlier_detection.is_some();
        load_balancer::check(lb, outlier, &format!("{p}.loadBalancer"), f);
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

fn check_pool(cp: &ConnectionPoolSettings, path: &str, f: &mut Findings<'_>) {
    if cp.tcp.is_none() && cp.http.is_none() {
        f.error(path, "a connection pool needs tcp or http settings");
    }
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
    if let Some(http) = &cp.http {
        let p = format!("{path}.http");
        check_duration(http.idle_timeout.as_ref(), &format!("{p}.idleTimeout"), f);
        if http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && http.use_client_protocol == Some(true)
        {
            // Istio rejects this; a warning until proxy/tests/destination_rule.rs
            // stops using it to show that useClientProtocol wins.
            f.warn(
                &p,
                "useClientProtocol true with h2UpgradePolicy UPGRADE: Istio rejects this; sluice keeps the client's protocol",
            );
        }
    }
    if let Some(tcp) = &cp.tcp {
        let p = format!("{path}.tcp");
        for (d, field) in [
            (&tcp.connect_timeout, "connectTimeout"),
            (&tcp.max_connection_duration, "maxConnectionDuration"),
            (&tcp.idle_timeout, "idleTimeout"),
        ] {
            check_duration(d.as_ref(), &format!("{p}.{field}"), f);
        }
        if let Some(ka) = &tcp.tcp_keepalive {
            check_duration(ka.time.as_ref(), &format!("{p}.tcpKeepalive.time"), f);
            check_duration(
                ka.interval.as_ref(),
                &format!("{p}.tcpKeepalive.interval"),
                f,
            );
        }
    }
}

fn check_outlier(od: &OutlierDetection, path: &str, f: &mut Findings<'_>) {
    if od.consecutive_errors.is_some_and(|v| v != 0) {
        f.warn(
            &format!("{path}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if od.consecutive_local_origin_failures.is_some_and(|v| v > 0)
        && od.split_external_local_origin_errors != Some(true)
    {
        f.error(
            &format!("{path}.consecutiveLocalOriginFailures"),
            "counts only when splitExternalLocalOriginErrors is true",
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
    check_duration(od.interval.as_ref(), &format!("{path}.interval"), f);
    check_duration(
        od.base_ejection_time.as_ref(),
        &format!("{path}.baseEjectionTime"),
        f,
    );
}

fn check_tls(tls: &ClientTlsSettings, path: &str, f: &mut Findings<'_>) {
    let mode = tls.mode;
    let credential = tls.credential_name.as_ref().is_some_and(|c| !c.is_empty());
    if tls.insecure_skip_verify == Some(true) {
        let conflicting = match mode {
            Some(ClientTlsMode::Simple) => {
                tls.ca_certificates.is_some() || credential || !tls.subject_alt_names.is_empty()
            }
            Some(ClientTlsMode::Mutual) => {
                tls.ca_certificates.is_some() || !tls.subject_alt_names.is_empty()
            }
            _ => false,
        };
        if conflicting {
            f.error(
                &format!("{path}.insecureSkipVerify"),
                "insecureSkipVerify skips verification: do not set caCertificates, subjectAltNames (or, with SIMPLE, credentialName)",
            );
        }
    }
    let files = tls.client_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some()
        || tls.ca_crl.is_some();
    if matches!(mode, Some(ClientTlsMode::Simple | ClientTlsMode::Mutual)) && credential {
        if files {
            f.error(
                &format!("{path}.credentialName"),
                "with credentialName, do not set clientCertificate, privateKey, caCertificates or caCrl",
            );
        }
    } else if mode == Some(ClientTlsMode::Mutual)
        && (tls.client_certificate.is_none() || tls.private_key.is_none())
    {
        f.error(
            path,
            "MUTUAL needs clientCertificate and privateKey (or credentialName)",
        );
    }
    if mode == Some(ClientTlsMode::IstioMutual) {
        if tls.client_certificate.is_some()
            || tls.private_key.is_some()
            || tls.ca_certificates.is_some()
        {
            f.warn(path, "ISTIO_MUTUAL uses mesh certificates: clientCertificate, privateKey and caCertificates are ignored");
        }
        f.warn(
            &format!("{path}.mode"),
            "ISTIO_MUTUAL is not supported by sluice yet (it has no mesh certificate authority): \
             requests to this destination are answered 503; use SIMPLE or MUTUAL with certificate files, or DISABLE",
        );
    }
}

fn check_tunnel(t: &TunnelSettings, path: &str, f: &mut Findings<'_>) {
    if !matches!(t.protocol.as_str(), "" | "CONNECT" | "POST") {
        f.error(
            &format!("{path}.protocol"),
            format!("tunnel protocol \"{}\" is not CONNECT or POST", t.protocol),
        );
    }
    let ip = t.target_host.parse::<std::net::IpAddr>().is_ok();
    if !ip && let Some(problem) = fqdn_problem(&t.target_host) {
        f.error(
            &format!("{path}.targetHost"),
            format!(
                "\"{}\" is not an FQDN or IP address: {problem}",
                t.target_host
            ),
        );
    }
    check_port(t.target_port, &format!("{path}.targetPort"), f);
}
