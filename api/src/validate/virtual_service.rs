//! VirtualService rules, as Istio validates them.

mod http;

use super::Findings;
use super::fields::{
    check_cidr, check_export_to, check_gateways, check_labels, check_port, host_problem,
    is_dns_label,
};
use crate::host::matches;
use crate::istio::virtual_service::{
    Destination, HttpMatchRequest, HttpRoute, RouteDestination, TcpRoute, TlsRoute, VirtualService,
};

/// Header names of this form route on JWT claims, which only gateways do.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims.";

pub(super) fn check(vs: &VirtualService, f: &mut Findings<'_>) {
    let to_gateway = !vs.gateways.is_empty() && !vs.gateways.iter().any(|g| g == "mesh");
    if vs.hosts.is_empty() {
        check_delegate(vs, f);
    }
    check_hosts(vs, to_gateway, f);
    check_gateways(&vs.gateways, "spec.gateways", f);
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        f.error("spec", "a VirtualService needs http, tcp or tls rules");
    }
    let delegate = vs.hosts.is_empty();
    for (i, route) in vs.http.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        http::check_route(route, delegate, &path, f);
        if !to_gateway {
            check_claims(route, &path, f);
        }
    }
    check_unreachable(vs, f);
    for (i, route) in vs.tcp.iter().enumerate() {
        check_tcp_route(route, &format!("spec.tcp[{i}]"), f);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        check_tls_route(route, vs, to_gateway, &format!("spec.tls[{i}]"), f);
    }
    let namespace = f.namespace().to_string();
    check_export_to(&vs.export_to, &namespace, false, false, f);
}

/// Hosts: (wildcard) DNS names or IP addresses, `*` only on gateways, none
/// overlapping another of the same VirtualService.
fn check_hosts(vs: &VirtualService, to_gateway: bool, f: &mut Findings<'_>) {
    let mut all_valid = true;
    for (i, host) in vs.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        let problem = host_problem(host).filter(|_| {
            host.parse::<std::net::IpAddr>().is_err() && !(to_gateway && is_sni_form(host, vs))
        });
        if let Some(problem) = problem {
            f.error(&path, format!("\"{host}\" is not a valid host: {problem}; expected a DNS name such as reviews, reviews.prod.svc.cluster.local or *.example.com"));
            all_valid = false;
        } else if host == "*" && !to_gateway {
            f.error(
                &path,
                "wildcard host \"*\" is only allowed for rules bound to gateways, not to the mesh",
            );
            all_valid = false;
        }
    }
    if !all_valid {
        return;
    }
    for (i, a) in vs.hosts.iter().enumerate() {
        for (j, b) in vs.hosts.iter().enumerate().skip(i + 1) {
            if a == b || matches(a, b) || matches(b, a) {
                f.error(
                    &format!("spec.hosts[{j}]"),
                    format!("\"{b}\" overlaps spec.hosts[{i}] \"{a}\" of the same VirtualService"),
                );
            }
        }
    }
}

/// Istio's generated SNI names (`outbound_.80_._.host`), which gateway-bound
/// VirtualServices with tls rules may name.
fn is_sni_form(host: &str, vs: &VirtualService) -> bool {
    let sni = vs
        .tls
        .iter()
        .any(|t| t.matches.iter().any(|m| !m.sni_hosts.is_empty()));
    sni && host
        .strip_prefix("outbound_.")
        .is_some_and(|rest| rest.starts_with(|c: char| ('0'..='8').contains(&c)))
}

/// A VirtualService without hosts is a delegate: only http rules, bound to
/// whatever its root is bound to, and one level of delegation.
fn check_delegate(vs: &VirtualService, f: &mut Findings<'_>) {
    let delegate = "a VirtualService without hosts is a delegate (routes of another VirtualService's `delegate` rule)";
    if !vs.gateways.is_empty() {
        f.error(
            "spec.gateways",
            format!("{delegate}: it takes its root's gateways and names none"),
        );
    }
    if !vs.tcp.is_empty() || !vs.tls.is_empty() {
        let field = if vs.tcp.is_empty() {
            "spec.tls"
        } else {
            "spec.tcp"
        };
        f.error(field, format!("{delegate}: it has http rules only"));
    }
    for (i, route) in vs.http.iter().enumerate() {
        if route.delegate.is_some() {
            f.error(
                &format!("spec.http[{i}].delegate"),
                format!(
                    "{delegate}: delegation is one level deep, a delegate cannot delegate again"
                ),
            );
        }
    }
}

/// Routing on JWT claims (`@request.auth.claims.*` header names) needs a gateway.
fn check_claims(route: &HttpRoute, path: &str, f: &mut Findings<'_>) {
    for (i, m) in route.matches.iter().enumerate() {
        for (field, map) in [
            ("headers", &m.headers),
            ("withoutHeaders", &m.without_headers),
        ] {
            for name in map.keys().filter(|n| n.starts_with(JWT_CLAIM_PREFIX)) {
                f.error(
                    &format!("{path}.match[{i}].{field}.{name}"),
                    "routing on JWT claims is only supported for VirtualServices bound to gateways",
                );
            }
        }
    }
}

/// A rule without match conditions catches every request, so rules after it never apply.
fn check_unreachable(vs: &VirtualService, f: &mut Findings<'_>) {
    let catch_all = |r: &HttpRoute| r.matches.is_empty() || r.matches.iter().any(is_catch_all);
    if let Some(first) = vs.http.iter().position(catch_all) {
        for (i, route) in vs.http.iter().enumerate().skip(first + 1) {
            let rule = route
                .name
                .as_ref()
                .map_or_else(|| format!("#{i}"), |n| format!("\"{n}\""));
            f.warn(
                &format!("spec.http[{i}]"),
                format!("virtualService rule {rule} not used (only the last rule can have no matches): spec.http[{first}] matches every request first"),
            );
        }
    }
}

fn is_catch_all(m: &HttpMatchRequest) -> bool {
    m == &HttpMatchRequest {
        name: m.name.clone(),
        stat_prefix: m.stat_prefix.clone(),
        ..HttpMatchRequest::default()
    }
}

/// Destinations and weights, as Istio takes them: weights are relative (no
/// need to sum to 100) and not negative, and several destinations cannot all
/// weigh 0.
fn check_weighted<T>(
    routes: &[T],
    path: &str,
    f: &mut Findings<'_>,
    get: impl Fn(&T) -> (&Destination, Option<i32>),
) {
    let mut total = 0i64;
    for (i, r) in routes.iter().enumerate() {
        let (dest, weight) = get(r);
        let p = format!("{path}.route[{i}]");
        check_destination(dest, &format!("{p}.destination"), f);
        if let Some(w) = weight {
            if w < 0 {
                f.error(
                    &format!("{p}.weight"),
                    format!("weight {w} cannot be negative"),
                );
            }
            total += i64::from(w.max(0));
        }
    }
    if routes.len() > 1 && total == 0 {
        f.error(
            &format!("{path}.route"),
            format!(
                "the weights of {} destinations are all 0: give at least one a weight",
                routes.len()
            ),
        );
    }
}

pub(super) fn check_destination(d: &Destination, path: &str, f: &mut Findings<'_>) {
    let at = format!("{path}.host");
    if d.host.is_empty() {
        f.error(&at, "required: the destination needs a host");
    } else if d.host == "*" {
        f.error(&at, "a destination host cannot be \"*\"");
    } else if let Some(problem) = host_problem(&d.host) {
        f.error(
            &at,
            format!("\"{}\" is not a valid host: {problem}", d.host),
        );
    }
    if let Some(subset) = &d.subset
        && !is_dns_label(subset)
    {
        f.error(
            &format!("{path}.subset"),
            format!("\"{subset}\" is not a valid subset name (letters, digits and '-')"),
        );
    }
    if let Some(port) = &d.port {
        check_port(port.number, &format!("{path}.port.number"), f);
    }
}

fn check_tcp_route(r: &TcpRoute, path: &str, f: &mut Findings<'_>) {
    for (i, m) in r.matches.iter().enumerate() {
        let p = format!("{path}.match[{i}]");
        for (j, cidr) in m.destination_subnets.iter().enumerate() {
            check_cidr(cidr, &format!("{p}.destinationSubnets[{j}]"), f);
        }
        if let Some(port) = m.port {
            check_port(port, &format!("{p}.port"), f);
        }
        check_labels(&m.source_labels, &format!("{p}.sourceLabels"), f);
        check_gateways(&m.gateways, &format!("{p}.gateways"), f);
    }
    check_l4_routes(&r.route, path, f);
}

fn check_tls_route(
    r: &TlsRoute,
    vs: &VirtualService,
    to_gateway: bool,
    path: &str,
    f: &mut Findings<'_>,
) {
    if r.matches.is_empty() {
        f.error(
            &format!("{path}.match"),
            "a tls rule needs at least one match with sniHosts",
        );
    }
    for (i, m) in r.matches.iter().enumerate() {
        let p = format!("{path}.match[{i}]");
        if m.sni_hosts.is_empty() {
            f.error(
                &format!("{p}.sniHosts"),
                "required: a tls match needs sniHosts",
            );
        }
        for (j, h) in m.sni_hosts.iter().enumerate() {
            check_sni_host(h, vs, to_gateway, &format!("{p}.sniHosts[{j}]"), f);
        }
        for (j, cidr) in m.destination_subnets.iter().enumerate() {
            check_cidr(cidr, &format!("{p}.destinationSubnets[{j}]"), f);
        }
        if let Some(port) = m.port {
            check_port(port, &format!("{p}.port"), f);
        }
        check_labels(&m.source_labels, &format!("{p}.sourceLabels"), f);
        check_gateways(&m.gateways, &format!("{p}.gateways"), f);
    }
    check_l4_routes(&r.route, path, f);
}

/// An SNI name: a (wildcard) DNS name within one of the VirtualService's hosts.
fn check_sni_host(
    sni: &str,
    vs: &VirtualService,
    to_gateway: bool,
    path: &str,
    f: &mut Findings<'_>,
) {
    let problem = host_problem(sni).filter(|_| !(to_gateway && is_sni_form(sni, vs)));
    if let Some(problem) = problem {
        if sni.parse::<std::net::IpAddr>().is_ok() {
            f.warn(
                path,
                format!("\"{sni}\" is an IP address: SNI carries names, and most clients send none for addresses"),
            );
        } else {
            f.error(
                path,
                format!("\"{sni}\" is not a valid SNI host: {problem}"),
            );
        }
        return;
    }
    if !vs.hosts.iter().any(|h| h == sni || matches(h, sni)) {
        // Istio rejects this; a warning until proxy/tests/routing.rs
        // (tls_passes_through_routed_by_sni) stops using it.
        f.warn(
            path,
            format!(
                "SNI host \"{sni}\" is not within any host of the VirtualService ({}): Istio rejects this",
                vs.hosts.join(", ")
            ),
        );
    }
}

fn check_l4_routes(routes: &[RouteDestination], path: &str, f: &mut Findings<'_>) {
    if routes.is_empty() {
        f.error(
            &format!("{path}.route"),
            "required: the rule needs at least one destination",
        );
    }
    check_weighted(routes, path, f, |d| (&d.destination, d.weight));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_forms_only_with_sni_rules() {
        let mut vs = VirtualService::default();
        assert!(!is_sni_form("outbound_.80_._.a.mesh", &vs));
        let mut tls = TlsRoute::default();
        tls.matches
            .push(crate::istio::virtual_service::TlsMatchAttributes {
                sni_hosts: vec!["a.mesh".into()],
                ..Default::default()
            });
        vs.tls.push(tls);
        assert!(is_sni_form("outbound_.80_._.a.mesh", &vs));
        assert!(!is_sni_form("outbound_.x", &vs));
    }
}
