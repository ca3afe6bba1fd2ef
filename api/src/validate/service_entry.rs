//! ServiceEntry rules, as Istio validates them.

use std::collections::BTreeSet;

use super::Findings;
use super::fields::{check_cidr, check_host, check_labels, check_port, is_dns_label};
use crate::istio::service_entry::{Resolution, ServiceEntry};
use crate::net::parse_cidr;

/// Protocols a port may declare (case-insensitive).
pub const PROTOCOLS: [&str; 10] = [
    "HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TLS", "TCP", "MONGO", "REDIS", "MYSQL",
];

pub(super) fn check(se: &ServiceEntry, f: &mut Findings<'_>) {
    if se.hosts.is_empty() {
        f.error(
            "spec.hosts",
            "required: a ServiceEntry needs at least one host",
        );
    }
    for (i, host) in se.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        check_host(host, &path, f);
        if host == "*" {
            f.error(&path, "a ServiceEntry host cannot be \"*\"");
        }
    }
    for (i, a) in se.addresses.iter().enumerate() {
        check_cidr(a, &format!("spec.addresses[{i}]"), f);
    }
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        check_port(port.number, &format!("{path}.number"), f);
        if !numbers.insert(port.number) {
            f.error(
                &format!("{path}.number"),
                format!("port {} is listed twice", port.number),
            );
        }
        match &port.name {
            Some(name) if !names.insert(name.as_str()) => {
                f.error(
                    &format!("{path}.name"),
                    format!("port name \"{name}\" is used twice"),
                );
            }
            Some(name) if !is_dns_label(name) => {
                f.error(
                    &format!("{path}.name"),
                    format!("\"{name}\" is not a valid port name"),
                );
            }
            _ => {}
        }
        if let Some(proto) = &port.protocol
            && !PROTOCOLS.contains(&proto.to_ascii_uppercase().as_str())
        {
            f.error(
                &format!("{path}.protocol"),
                format!(
                    "unknown protocol \"{proto}\"; use one of {}",
                    PROTOCOLS.join(", ")
                ),
            );
        }
        if let Some(t) = port.target_port {
            check_port(t, &format!("{path}.targetPort"), f);
        }
    }
    if se.ports.is_empty() {
        f.error(
            "spec.ports",
            "required: a ServiceEntry needs at least one port",
        );
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        f.error(
            "spec.workloadSelector",
            "set only one of workloadSelector and endpoints",
        );
    }
    check_resolution(se, f);
    for (i, ep) in se.endpoints.iter().enumerate() {
        let path = format!("spec.endpoints[{i}]");
        if ep.address.is_empty() {
            f.error(
                &format!("{path}.address"),
                "required: an endpoint needs an address",
            );
        }
        for (name, port) in &ep.ports {
            check_port(*port, &format!("{path}.ports.{name}"), f);
            if !se.ports.iter().any(|p| p.name.as_deref() == Some(name)) {
                f.error(
                    &format!("{path}.ports.{name}"),
                    format!("no port of the ServiceEntry is named \"{name}\""),
                );
            }
        }
        check_labels(&ep.labels, &format!("{path}.labels"), f);
    }
}

fn check_resolution(se: &ServiceEntry, f: &mut Findings<'_>) {
    let resolution = se.resolution.unwrap_or(Resolution::None);
    match resolution {
        Resolution::Static => {
            if se.endpoints.is_empty() && se.workload_selector.is_none() {
                f.error(
                    "spec.endpoints",
                    "resolution STATIC needs endpoints (or a workloadSelector)",
                );
            }
            for (i, ep) in se.endpoints.iter().enumerate() {
                if !ep.address.is_empty()
                    && !ep.address.starts_with("unix://")
                    && parse_cidr(&ep.address).is_none()
                {
                    f.error(
                        &format!("spec.endpoints[{i}].address"),
                        format!("\"{}\" is not an IP address; resolution STATIC needs IP endpoints (use DNS for names)", ep.address),
                    );
                }
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if se.endpoints.is_empty() {
                for (i, host) in se.hosts.iter().enumerate() {
                    if host.starts_with('*') {
                        f.error(&format!("spec.hosts[{i}]"), "resolution DNS without endpoints resolves the hosts, so they cannot be wildcards");
                    }
                }
            }
        }
        Resolution::None => {
            if !se.endpoints.is_empty() {
                f.error("spec.endpoints", "resolution NONE forwards to the original destination, so it takes no endpoints; use STATIC or DNS");
            }
        }
        Resolution::DynamicDns => f.warn(
            "spec.resolution",
            "DYNAMIC_DNS is not acted on by sluice: requests to these hosts get 503; use DNS with the hosts listed",
        ),
    }
}
