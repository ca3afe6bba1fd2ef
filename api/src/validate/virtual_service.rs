//! VirtualService rules, as Istio validates them.

use super::Findings;
use super::fields::{
    check_cidr, check_gateways, check_header_name, check_host, check_labels, check_percent,
    check_port, check_positive, check_regex, check_string_match,
};
use crate::istio::virtual_service::{
    Destination, HttpFaultInjection, HttpMatchRequest, HttpRetry, HttpRoute, RouteDestination,
    TcpRoute, TlsRoute, VirtualService,
};

/// Conditions Envoy (and sluice) understand in `retryOn`, besides status codes.
pub const RETRY_ON: [&str; 14] = [
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
];

/// gRPC retry condition also accepted.
const RETRY_ON_GRPC: [&str; 1] = ["unavailable"];

pub(super) fn check(vs: &VirtualService, f: &mut Findings<'_>) {
    let bound_to_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    if vs.hosts.is_empty() {
        check_delegate(vs, f);
    }
    for (i, host) in vs.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        check_host(host, &path, f);
        if host == "*" && bound_to_mesh {
            f.error(
                &path,
                "wildcard host \"*\" is only allowed for rules bound to gateways, not to the mesh",
            );
        }
    }
    check_gateways(&vs.gateways, "spec.gateways", f);
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        f.error("spec", "a VirtualService needs http, tcp or tls rules");
    }
    for (i, route) in vs.http.iter().enumerate() {
        check_http_route(route, &format!("spec.http[{i}]"), f);
    }
    check_unreachable(vs, f);
    for (i, route) in vs.tcp.iter().enumerate() {
        check_tcp_route(route, &format!("spec.tcp[{i}]"), f);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        check_tls_route(route, &format!("spec.tls[{i}]"), f);
    }
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

fn check_http_route(r: &HttpRoute, path: &str, f: &mut Findings<'_>) {
    let actions = [
        !r.route.is_empty(),
        r.redirect.is_some(),
        r.direct_response.is_some(),
        r.delegate.is_some(),
    ];
    match actions.iter().filter(|b| **b).count() {
        0 => f.error(
            path,
            "a rule needs one of route, redirect, directResponse or delegate",
        ),
        1 => {}
        _ => f.error(
            path,
            "route, redirect, directResponse and delegate are mutually exclusive: set only one",
        ),
    }
    if r.redirect.is_some() && r.rewrite.is_some() {
        f.error(
            &format!("{path}.rewrite"),
            "rewrite cannot be combined with redirect",
        );
    }
    for (i, m) in r.matches.iter().enumerate() {
        check_match(m, &format!("{path}.match[{i}]"), f);
    }
    check_weighted(&r.route, path, f, |d| (&d.destination, d.weight));
    for (i, d) in r.route.iter().enumerate() {
        if let Some(h) = &d.headers {
            check_headers(h, &format!("{path}.route[{i}].headers"), f);
        }
    }
    if let Some(redirect) = &r.redirect {
        let p = format!("{path}.redirect");
        if let Some(code) = redirect.redirect_code
            && ![301, 302, 303, 307, 308].contains(&code)
        {
            f.error(
                &format!("{p}.redirectCode"),
                format!("redirect code {code} is not one of 301, 302, 303, 307, 308"),
            );
        }
        if let Some(port) = redirect.port {
            check_port(port, &format!("{p}.port"), f);
            if redirect.derive_port.is_some() {
                f.error(&p, "set only one of port and derivePort");
            }
        }
    }
    if let Some(dr) = &r.direct_response
        && !(200..=599).contains(&dr.status)
    {
        f.error(
            &format!("{path}.directResponse.status"),
            format!("status {} is out of range 200..599", dr.status),
        );
    }
    if let Some(rw) = &r.rewrite {
        if rw.uri.is_some() && rw.uri_regex_rewrite.is_some() {
            f.error(
                &format!("{path}.rewrite"),
                "set only one of uri and uriRegexRewrite",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            check_regex(
                &rr.pattern,
                &format!("{path}.rewrite.uriRegexRewrite.match"),
                f,
            );
        }
    }
    check_positive(r.timeout.as_ref(), &format!("{path}.timeout"), f);
    if let Some(retries) = &r.retries {
        check_retries(retries, &format!("{path}.retries"), f);
    }
    if let Some(fault) = &r.fault {
        check_fault(fault, &format!("{path}.fault"), f);
    }
    check_mirrors(r, path, f);
    if let Some(h) = &r.headers {
        check_headers(h, &format!("{path}.headers"), f);
    }
    if let Some(cors) = &r.cors_policy {
        for (i, o) in cors.allow_origins.iter().enumerate() {
            check_string_match(o, &format!("{path}.corsPolicy.allowOrigins[{i}]"), false, f);
        }
        if !cors.allow_origin.is_empty() {
            f.warn(
                &format!("{path}.corsPolicy.allowOrigin"),
                "using deprecated setting \"allowOrigin\", use \"allowOrigins\" instead",
            );
        }
    }
}

fn check_match(m: &HttpMatchRequest, path: &str, f: &mut Findings<'_>) {
    for (name, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            check_string_match(sm, &format!("{path}.{name}"), false, f);
        }
    }
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let p = format!("{path}.{field}.{name}");
            check_header_name(name, &p, f);
            check_string_match(sm, &p, true, f);
        }
    }
    for (name, sm) in &m.query_params {
        check_string_match(sm, &format!("{path}.queryParams.{name}"), true, f);
    }
    if let Some(port) = m.port {
        check_port(port, &format!("{path}.port"), f);
    }
    check_labels(&m.source_labels, &format!("{path}.sourceLabels"), f);
    check_gateways(&m.gateways, &format!("{path}.gateways"), f);
}

/// Destinations and weights: each weight in 0..=100; with more than one
/// destination the weights must sum to 100.
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
            if !(0..=100).contains(&w) {
                f.error(
                    &format!("{p}.weight"),
                    format!("weight {w} is out of range 0..100"),
                );
            }
            total += i64::from(w);
        }
    }
    if routes.len() > 1 && total != 100 {
        f.error(
            &format!("{path}.route"),
            format!(
                "the weights of {} destinations sum to {total}; they must sum to 100",
                routes.len()
            ),
        );
    }
}

pub(super) fn check_destination(d: &Destination, path: &str, f: &mut Findings<'_>) {
    if d.host.is_empty() {
        f.error(
            &format!("{path}.host"),
            "required: the destination needs a host",
        );
    } else {
        check_host(&d.host, &format!("{path}.host"), f);
        if d.host.contains('*') {
            f.error(
                &format!("{path}.host"),
                "a destination host cannot be a wildcard",
            );
        }
    }
    if let Some(subset) = &d.subset
        && !super::fields::is_dns_label(subset)
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

fn check_retries(r: &HttpRetry, path: &str, f: &mut Findings<'_>) {
    if r.attempts < 0 {
        f.error(&format!("{path}.attempts"), "attempts cannot be negative");
    }
    check_positive(
        r.per_try_timeout.as_ref(),
        &format!("{path}.perTryTimeout"),
        f,
    );
    check_positive(r.backoff.as_ref(), &format!("{path}.backoff"), f);
    if let Some(on) = &r.retry_on {
        for cond in on.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let known = RETRY_ON.contains(&cond)
                || RETRY_ON_GRPC.contains(&cond)
                || cond.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c));
            if !known {
                f.error(
                    &format!("{path}.retryOn"),
                    format!(
                        "unknown retry condition \"{cond}\"; use HTTP status codes or {}",
                        RETRY_ON.join(", ")
                    ),
                );
            }
        }
    }
}

fn check_fault(fault: &HttpFaultInjection, path: &str, f: &mut Findings<'_>) {
    if fault.delay.is_none() && fault.abort.is_none() {
        f.error(path, "a fault needs delay or abort");
    }
    if let Some(d) = &fault.delay {
        let p = format!("{path}.delay");
        match (&d.fixed_delay, &d.exponential_delay) {
            (Some(fixed), None) => check_positive(Some(fixed), &format!("{p}.fixedDelay"), f),
            (None, Some(_)) => f.error(
                &format!("{p}.exponentialDelay"),
                "exponentialDelay is not supported; use fixedDelay",
            ),
            (None, None) => f.error(&p, "a delay needs fixedDelay"),
            (Some(_), Some(_)) => f.error(&p, "set only one of fixedDelay and exponentialDelay"),
        }
        if let Some(pct) = &d.percentage {
            check_percent(pct, &format!("{p}.percentage"), f);
        }
        if let Some(pct) = d.percent
            && !(0..=100).contains(&pct)
        {
            f.error(
                &format!("{p}.percent"),
                format!("percentage {pct} is out of range 0..100"),
            );
        }
    }
    if let Some(a) = &fault.abort {
        let p = format!("{path}.abort");
        match (a.http_status, &a.grpc_status, &a.http2_error) {
            (Some(code), None, None) if !(200..=599).contains(&code) => {
                f.error(
                    &format!("{p}.httpStatus"),
                    format!("status {code} is out of range 200..599"),
                );
            }
            (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => {}
            (None, None, None) => f.error(&p, "an abort needs httpStatus or grpcStatus"),
            _ => f.error(&p, "set only one of httpStatus, grpcStatus and http2Error"),
        }
        if let Some(pct) = &a.percentage {
            check_percent(pct, &format!("{p}.percentage"), f);
        }
    }
}

fn check_mirrors(r: &HttpRoute, path: &str, f: &mut Findings<'_>) {
    if let Some(m) = &r.mirror {
        check_destination(m, &format!("{path}.mirror"), f);
        if !r.mirrors.is_empty() {
            f.error(
                &format!("{path}.mirrors"),
                "set only one of mirror and mirrors",
            );
        }
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        check_destination(
            &m.destination,
            &format!("{path}.mirrors[{i}].destination"),
            f,
        );
        if let Some(p) = &m.percentage {
            check_percent(p, &format!("{path}.mirrors[{i}].percentage"), f);
        }
    }
    if let Some(pct) = r.mirror_percent {
        f.warn(
            &format!("{path}.mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
        if pct > 100 {
            f.error(
                &format!("{path}.mirrorPercent"),
                format!("percentage {pct} is out of range 0..100"),
            );
        }
        if r.mirror_percentage.is_some() {
            f.error(
                &format!("{path}.mirrorPercent"),
                "set only one of mirrorPercent and mirrorPercentage",
            );
        }
    }
    if let Some(p) = &r.mirror_percentage {
        check_percent(p, &format!("{path}.mirrorPercentage"), f);
    }
    if (r.mirror_percent.is_some() || r.mirror_percentage.is_some()) && r.mirror.is_none() {
        f.error(
            &format!("{path}.mirrorPercentage"),
            "a mirror percentage needs a mirror destination",
        );
    }
}

fn check_headers(h: &crate::istio::virtual_service::Headers, path: &str, f: &mut Findings<'_>) {
    for (dir, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        let names = ops
            .set
            .keys()
            .chain(ops.add.keys())
            .chain(ops.remove.iter());
        for name in names {
            let lower = name.to_ascii_lowercase();
            check_header_name(&lower, &format!("{path}.{dir}"), f);
        }
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
    }
    check_l4_routes(&r.route, path, f);
}

fn check_tls_route(r: &TlsRoute, path: &str, f: &mut Findings<'_>) {
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
            check_host(h, &format!("{p}.sniHosts[{j}]"), f);
        }
        for (j, cidr) in m.destination_subnets.iter().enumerate() {
            check_cidr(cidr, &format!("{p}.destinationSubnets[{j}]"), f);
        }
        if let Some(port) = m.port {
            check_port(port, &format!("{p}.port"), f);
        }
    }
    check_l4_routes(&r.route, path, f);
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
