//! ServiceEntry rules, as Istio validates them.

use std::collections::BTreeSet;

use super::Findings;
use super::fields::{
    check_cidr, check_export_to, check_host, check_labels, check_port, check_selector,
    fqdn_problem, is_dns_label, is_partial_wildcard,
};
use crate::istio::service_entry::{Resolution, ServiceEntry, WorkloadEntry};

/// Protocols a port may declare (case-insensitive), as Istio parses them.
pub const PROTOCOLS: [&str; 12] = [
    "HTTP",
    "HTTPS",
    "HTTP2",
    "HTTP_PROXY",
    "GRPC",
    "GRPC-WEB",
    "TLS",
    "TCP",
    "UDP",
    "MONGO",
    "REDIS",
    "MYSQL",
];

/// The prefix of a Unix domain socket endpoint address.
const UNIX_PREFIX: &str = "unix://";

pub(super) fn check(se: &ServiceEntry, f: &mut Findings<'_>) {
    let resolution = se.resolution.unwrap_or(Resolution::None);
    check_hosts(se, f);
    let mut cidr = false;
    for (i, a) in se.addresses.iter().enumerate() {
        check_cidr(a, &format!("spec.addresses[{i}]"), f);
        cidr |= a.contains('/');
    }
    if cidr && !matches!(resolution, Resolution::None | Resolution::Static) {
        f.error(
            "spec.addresses",
            "CIDR addresses are allowed only with resolution NONE or STATIC",
        );
    }
    let names = check_ports(se, resolution, f);
    if let Some(ws) = &se.workload_selector {
        check_selector(&ws.labels, "spec.workloadSelector.labels", f);
        if !se.endpoints.is_empty() {
            f.error(
                "spec.workloadSelector",
                "set only one of workloadSelector and endpoints",
            );
        }
        if resolution == Resolution::None {
            f.warn(
                "spec.workloadSelector",
                "workloadSelector has no effect with resolution NONE",
            );
        }
    }
    check_resolution(se, resolution, f);
    for (i, ep) in se.endpoints.iter().enumerate() {
        check_endpoint(ep, resolution, &names, &format!("spec.endpoints[{i}]"), f);
    }
    if resolution != Resolution::None && se.hosts.len() > 1 {
        let opaque = se.ports.iter().find(|p| {
            let proto = p
                .protocol
                .as_deref()
                .unwrap_or_default()
                .to_ascii_uppercase();
            !matches!(
                proto.as_str(),
                "HTTP" | "HTTPS" | "HTTP2" | "HTTP_PROXY" | "GRPC" | "GRPC-WEB" | "TLS"
            )
        });
        if let Some(p) = opaque {
            f.error(
                "spec.hosts",
                format!("several hosts with resolution {} need HTTP or TLS ports, which tell the hosts apart; port {} is not", name(resolution), p.number),
            );
        }
    }
    let namespace = f.namespace().to_string();
    check_export_to(&se.export_to, &namespace, true, false, f);
}

/// The resolution as written in YAML.
fn name(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::None => "NONE",
        Resolution::Static => "STATIC",
        Resolution::Dns => "DNS",
        Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
        Resolution::DynamicDns => "DYNAMIC_DNS",
    }
}

fn check_hosts(se: &ServiceEntry, f: &mut Findings<'_>) {
    if se.hosts.is_empty() {
        f.error(
            "spec.hosts",
            "required: a ServiceEntry needs at least one host",
        );
    }
    for (i, host) in se.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if host == "*" {
            f.error(&path, "a ServiceEntry host cannot be \"*\"");
        } else if check_host(host, &path, f) && is_partial_wildcard(host) {
            f.warn(
                &path,
                format!(
                    "partial wildcard \"{host}\": write \"*.{}\" or list the hosts",
                    host.trim_start_matches(['*', '-'])
                ),
            );
        }
    }
}

/// Checks the ports; returns their names.
fn check_ports<'s>(
    se: &'s ServiceEntry,
    resolution: Resolution,
    f: &mut Findings<'_>,
) -> BTreeSet<&'s str> {
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
        let name = port.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            f.error(&format!("{path}.name"), "required: a port needs a name");
        } else if !names.insert(name) {
            f.error(
                &format!("{path}.name"),
                format!("port name \"{name}\" is used twice"),
            );
        } else if !is_dns_label(name) {
            f.error(
                &format!("{path}.name"),
                format!("\"{name}\" is not a valid port name (letters, digits and '-')"),
            );
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
            if resolution == Resolution::None {
                f.warn(
                    &format!("{path}.targetPort"),
                    "targetPort has no effect with resolution NONE",
                );
            }
        }
    }
    names
}

fn check_resolution(se: &ServiceEntry, resolution: Resolution, f: &mut Findings<'_>) {
    match resolution {
        Resolution::Static => {
            if se.endpoints.is_empty() && se.workload_selector.is_none() {
                f.warn(
                    "spec.endpoints",
                    "resolution STATIC without endpoints: sluice finds no endpoints for it (it reads no WorkloadEntries), so requests get 503",
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if se.endpoints.is_empty() {
                for (i, host) in se.hosts.iter().enumerate() {
                    if host != "*" && fqdn_problem(host).is_some() {
                        f.error(&format!("spec.hosts[{i}]"), "resolution DNS without endpoints resolves the hosts, so they must be DNS names, not wildcards");
                    }
                }
            }
            if resolution == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
                f.error(
                    "spec.endpoints",
                    "resolution DNS_ROUND_ROBIN takes at most one endpoint",
                );
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

fn check_endpoint(
    ep: &WorkloadEntry,
    resolution: Resolution,
    names: &BTreeSet<&str>,
    path: &str,
    f: &mut Findings<'_>,
) {
    let address = ep.address.as_str();
    let ip = address.parse::<std::net::IpAddr>().is_ok();
    if address.is_empty() {
        if ep.network.as_deref().unwrap_or_default().is_empty() {
            f.error(
                &format!("{path}.address"),
                "required: an endpoint needs an address",
            );
        } else {
            f.warn(
                &format!("{path}.address"),
                "endpoint without an address (reached through its network's gateway): sluice skips it",
            );
        }
    } else if let Some(socket) = address.strip_prefix(UNIX_PREFIX) {
        if !socket.starts_with('@') && (!socket.starts_with('/') || socket.ends_with('/')) {
            f.error(
                &format!("{path}.address"),
                format!("\"{socket}\" is not an absolute path to a socket file"),
            );
        }
        if !ep.ports.is_empty() {
            f.error(
                &format!("{path}.ports"),
                "a unix socket endpoint takes no ports",
            );
        }
    } else if !ip && resolution == Resolution::Static {
        f.error(
            &format!("{path}.address"),
            format!("\"{address}\" is not an IP address; resolution STATIC needs IP endpoints (use DNS for names)"),
        );
    } else if let Some(problem) = (!ip).then(|| fqdn_problem(address)).flatten() {
        f.error(
            &format!("{path}.address"),
            format!("\"{address}\" is not an IP address or DNS name: {problem}"),
        );
    }
    for (name, port) in ep.ports.iter() {
        check_port(*port, &format!("{path}.ports.{name}"), f);
        if !names.contains(name.as_str()) {
            f.error(
                &format!("{path}.ports.{name}"),
                format!("no port of the ServiceEntry is named \"{name}\""),
            );
        }
    }
    check_labels(&ep.labels, &format!("{path}.labels"), f);
}
