//! The checks of one HTTP rule: its matches, action and policies.

use super::super::Findings;
use super::super::fields::{
    check_duration, check_fraction, check_gateways, check_header_name, check_labels, check_percent,
    check_port, check_regex, check_string_match, is_dns_label,
};
use super::{check_destination, check_weighted};
use crate::istio::StringMatch;
use crate::istio::virtual_service::{
    CorsPolicy, HeaderOperations, Headers, HttpDirectResponse, HttpFaultInjection,
    HttpMatchRequest, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute,
};

/// Conditions Envoy (and sluice) understand in `retryOn`, besides status codes.
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
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
    "unavailable",
];

/// Methods a CORS policy may allow.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// gRPC status names an abort fault may answer with.
const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Direct response bodies above this are rejected, above a tenth of it warned about.
const MAX_BODY: usize = 1024 * 1024;

/// Checks one rule; `delegate`: it belongs to a delegate VirtualService.
pub(super) fn check_route(r: &HttpRoute, delegate: bool, path: &str, f: &mut Findings<'_>) {
    check_action(r, path, f);
    for (i, m) in r.matches.iter().enumerate() {
        check_match(
            m,
            delegate || r.delegate.is_some(),
            &format!("{path}.match[{i}]"),
            f,
        );
    }
    check_weighted(&r.route, path, f, |d| (&d.destination, d.weight));
    for (i, d) in r.route.iter().enumerate() {
        if let Some(h) = &d.headers {
            check_headers(h, &format!("{path}.route[{i}].headers"), f);
        }
    }
    if let Some(h) = &r.headers {
        check_headers(h, &format!("{path}.headers"), f);
    }
    check_authority(r, path, f);
    if let Some(redirect) = &r.redirect {
        check_redirect(redirect, &format!("{path}.redirect"), f);
    }
    if let Some(dr) = &r.direct_response {
        check_direct_response(dr, &format!("{path}.directResponse"), f);
    }
    if let Some(rw) = &r.rewrite {
        check_rewrite(rw, &format!("{path}.rewrite"), f);
    }
    check_duration(r.timeout.as_ref(), &format!("{path}.timeout"), f);
    if let Some(retries) = &r.retries {
        check_retries(retries, &format!("{path}.retries"), f);
    }
    if let Some(fault) = &r.fault {
        check_fault(fault, &format!("{path}.fault"), f);
    }
    check_mirrors(r, path, f);
    if let Some(cors) = &r.cors_policy {
        check_cors(cors, &format!("{path}.corsPolicy"), f);
    }
}

fn check_action(r: &HttpRoute, path: &str, f: &mut Findings<'_>) {
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
    if r.redirect.is_some() {
        if r.rewrite.is_some() {
            f.error(
                &format!("{path}.rewrite"),
                "rewrite cannot be combined with redirect",
            );
        }
        if r.fault.is_some() {
            f.error(
                &format!("{path}.fault"),
                "fault cannot be combined with redirect",
            );
        }
    }
}

/// `delegating`: the rule delegates or is a delegate's, where regex matches
/// cannot be merged.
fn check_match(m: &HttpMatchRequest, delegating: bool, path: &str, f: &mut Findings<'_>) {
    let regex_when_delegating = |sm: &StringMatch, at: &str, f: &mut Findings<'_>| {
        if delegating && sm.regex.is_some() {
            f.error(at, "regex matches cannot be used in delegation (a delegate's rules and the rules that delegate)");
        }
    };
    for (name, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            let at = format!("{path}.{name}");
            check_string_match(sm, &at, true, f);
            regex_when_delegating(sm, &at, f);
        }
    }
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let at = format!("{path}.{field}.{name}");
            if !name.starts_with(super::JWT_CLAIM_PREFIX) {
                check_header_name(name, &at, f);
            }
            check_string_match(sm, &at, true, f);
            regex_when_delegating(sm, &at, f);
        }
    }
    for (name, sm) in &m.query_params {
        let at = format!("{path}.queryParams.{name}");
        check_string_match(sm, &at, true, f);
        regex_when_delegating(sm, &at, f);
    }
    if let Some(port) = m.port {
        check_port(port, &format!("{path}.port"), f);
    }
    check_labels(&m.source_labels, &format!("{path}.sourceLabels"), f);
    check_gateways(&m.gateways, &format!("{path}.gateways"), f);
    if let Some(ns) = &m.source_namespace
        && !is_dns_label(ns)
    {
        f.error(
            &format!("{path}.sourceNamespace"),
            format!("\"{ns}\" is not a namespace name"),
        );
    }
}

/// Header changes: names set or added on requests may be `:authority` (or
/// `host`); other pseudo-headers and, past the request's set and add, `host`
/// cannot be changed; values have no control characters.
fn check_headers(h: &Headers, path: &str, f: &mut Findings<'_>) {
    for (dir, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        let p = format!("{path}.{dir}");
        check_header_ops(ops, dir == "request", &p, f);
    }
}

fn check_header_ops(ops: &HeaderOperations, request: bool, p: &str, f: &mut Findings<'_>) {
    let name = |name: &str, at: String, sets: bool, f: &mut Findings<'_>| {
        let authority =
            name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host");
        if name.is_empty() {
            f.error(&at, "header name is empty");
        } else if authority && request && sets {
            if name.starts_with(':') {
                f.warn(&at, "sluice sets the authority from rewrite.authority, not from a :authority header: use rewrite.authority");
            }
        } else if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
            f.error(&at, format!("header \"{name}\" cannot be changed here"));
        } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            f.warn(
                &at,
                format!("\"{name}\" is not a valid HTTP header name: the proxy skips it"),
            );
        }
    };
    for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (k, v) in map {
            let at = format!("{p}.{op}.{k}");
            name(k, at.clone(), true, f);
            if v.chars().any(|c| c.is_control() && c != '\t') {
                f.error(&at, "header value contains control characters");
            }
        }
    }
    for (i, k) in ops.remove.iter().enumerate() {
        name(k, format!("{p}.remove[{i}]"), false, f);
    }
}

/// The authority is rewritten in one place: rewrite.authority or one request header.
fn check_authority(r: &HttpRoute, path: &str, f: &mut Findings<'_>) {
    let mut places: Vec<String> = Vec::new();
    if r.rewrite.as_ref().is_some_and(|rw| rw.authority.is_some()) {
        places.push(format!("{path}.rewrite.authority"));
    }
    if let Some(ops) = r.headers.as_ref().and_then(|h| h.request.as_ref()) {
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for k in map
                .keys()
                .filter(|k| k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host"))
            {
                places.push(format!("{path}.headers.request.{op}.{k}"));
            }
        }
    }
    if let [first, second, ..] = places.as_slice() {
        f.error(
            second,
            format!("the authority is already rewritten by {first}: set it in one place"),
        );
    }
}

fn check_redirect(redirect: &HttpRedirect, p: &str, f: &mut Findings<'_>) {
    if redirect.uri.is_none()
        && redirect.authority.is_none()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
        && redirect.scheme.is_none()
    {
        f.error(
            p,
            "a redirect needs at least one of uri, authority, port, derivePort and scheme",
        );
    }
    if let Some(code) = redirect.redirect_code
        && !(300..=399).contains(&code)
    {
        f.error(
            &format!("{p}.redirectCode"),
            format!("redirect code {code} is not a 3xx status"),
        );
    }
    if let Some(scheme) = &redirect.scheme
        && scheme != "http"
        && scheme != "https"
    {
        f.error(
            &format!("{p}.scheme"),
            format!("scheme \"{scheme}\" is not http or https"),
        );
    }
    if let Some(port) = redirect.port {
        check_port(port, &format!("{p}.port"), f);
        if redirect.derive_port.is_some() {
            f.error(p, "set only one of port and derivePort");
        }
    }
}

fn check_direct_response(dr: &HttpDirectResponse, p: &str, f: &mut Findings<'_>) {
    if !(200..=600).contains(&dr.status) {
        f.error(
            &format!("{p}.status"),
            format!("status {} is out of range 200..600", dr.status),
        );
    }
    let Some(body) = &dr.body else { return };
    if body.string.is_some() && body.bytes.is_some() {
        f.error(&format!("{p}.body"), "set only one of string and bytes");
    }
    let size = body
        .string
        .as_ref()
        .map(String::len)
        .or_else(|| body.bytes.as_ref().map(|b| b.len() / 4 * 3))
        .unwrap_or(0);
    if size > MAX_BODY {
        f.error(
            &format!("{p}.body"),
            format!("the body is {size} bytes; at most 1 MiB is allowed"),
        );
    } else if size > MAX_BODY / 10 {
        f.warn(
            &format!("{p}.body"),
            format!(
                "the body is {size} bytes: large direct responses are kept in every proxy's memory"
            ),
        );
    }
}

fn check_rewrite(rw: &HttpRewrite, p: &str, f: &mut Findings<'_>) {
    if rw.uri.is_some() && rw.uri_regex_rewrite.is_some() {
        f.error(p, "set only one of uri and uriRegexRewrite");
    }
    if rw.uri.is_none() && rw.uri_regex_rewrite.is_none() && rw.authority.is_none() {
        f.error(
            p,
            "a rewrite needs at least one of uri, uriRegexRewrite and authority",
        );
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        if rr.rewrite.is_empty() {
            f.error(
                &format!("{p}.uriRegexRewrite.rewrite"),
                "required: uriRegexRewrite needs match and rewrite",
            );
        }
        check_regex(&rr.pattern, &format!("{p}.uriRegexRewrite.match"), f);
    }
}

fn check_retries(r: &HttpRetry, path: &str, f: &mut Findings<'_>) {
    if r.attempts < 0 {
        f.error(&format!("{path}.attempts"), "attempts cannot be negative");
    }
    if r.attempts == 0
        && (r.per_try_timeout.is_some()
            || r.retry_on.is_some()
            || r.retry_remote_localities.is_some())
    {
        f.error(
            &format!("{path}.attempts"),
            "attempts 0 turns retries off, yet perTryTimeout, retryOn or retryRemoteLocalities is set",
        );
    }
    check_duration(
        r.per_try_timeout.as_ref(),
        &format!("{path}.perTryTimeout"),
        f,
    );
    check_duration(r.backoff.as_ref(), &format!("{path}.backoff"), f);
    if let Some(on) = &r.retry_on {
        for cond in on.split(',') {
            let known =
                RETRY_ON.contains(&cond) || cond.parse::<u16>().ok().is_some_and(is_known_status);
            if !known {
                f.error(
                    &format!("{path}.retryOn"),
                    format!(
                        "unknown retry condition \"{cond}\" (comma-separated, no spaces); use HTTP status codes or {}",
                        RETRY_ON.join(", ")
                    ),
                );
            }
        }
    }
}

/// Status codes Go's net/http names (what Istio accepts in `retryOn`).
fn is_known_status(code: u16) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426
        | 428 | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

fn check_fault(fault: &HttpFaultInjection, path: &str, f: &mut Findings<'_>) {
    if fault.delay.is_none() && fault.abort.is_none() {
        f.error(path, "a fault needs delay or abort");
    }
    if let Some(d) = &fault.delay {
        let p = format!("{path}.delay");
        match (&d.fixed_delay, &d.exponential_delay) {
            (Some(fixed), None) => check_duration(Some(fixed), &format!("{p}.fixedDelay"), f),
            (None, Some(_)) => f.error(
                &format!("{p}.exponentialDelay"),
                "exponentialDelay is not supported; use fixedDelay",
            ),
            (None, None) => f.warn(&p, "a delay without fixedDelay delays nothing"),
            (Some(_), Some(_)) => f.error(&p, "set only one of fixedDelay and exponentialDelay"),
        }
        if let Some(pct) = &d.percentage {
            check_fraction(pct, &format!("{p}.percentage"), f);
        }
        if let Some(pct) = d.percent {
            f.warn(
                &format!("{p}.percent"),
                "using deprecated setting \"percent\", use \"percentage\" instead",
            );
            if !(0..=100).contains(&pct) {
                f.warn(
                    &format!("{p}.percent"),
                    format!("percentage {pct} is out of range 0..100"),
                );
            }
        }
    }
    if let Some(a) = &fault.abort {
        let p = format!("{path}.abort");
        match (a.http_status, &a.grpc_status, &a.http2_error) {
            (Some(code), None, None) if !(200..=600).contains(&code) => {
                f.error(
                    &format!("{p}.httpStatus"),
                    format!("status {code} is out of range 200..600"),
                );
            }
            (None, Some(status), None) if !GRPC_STATUS.contains(&status.as_str()) => f.error(
                &format!("{p}.grpcStatus"),
                format!("\"{status}\" is not a gRPC status name such as NOT_FOUND or UNAVAILABLE"),
            ),
            (None, None, Some(_)) => f.error(
                &format!("{p}.http2Error"),
                "HTTP/2 error aborts are not supported",
            ),
            (Some(_), None, None) | (None, Some(_), None) => {}
            (None, None, None) => f.warn(
                &p,
                "an abort without httpStatus or grpcStatus aborts nothing",
            ),
            _ => f.error(&p, "set only one of httpStatus, grpcStatus and http2Error"),
        }
        if let Some(pct) = &a.percentage {
            check_fraction(pct, &format!("{p}.percentage"), f);
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
        f.warn(
            &format!("{path}.mirrorPercentage"),
            "a mirror percentage applies to mirror only: without it, it has no effect",
        );
    }
}

fn check_cors(cors: &CorsPolicy, p: &str, f: &mut Findings<'_>) {
    for (i, o) in cors.allow_origins.iter().enumerate() {
        check_string_match(o, &format!("{p}.allowOrigins[{i}]"), false, f);
        let empty = [&o.exact, &o.prefix, &o.regex]
            .iter()
            .any(|v| v.as_deref() == Some(""));
        if empty {
            f.error(
                &format!("{p}.allowOrigins[{i}]"),
                "an origin match cannot be empty",
            );
        }
    }
    if !cors.allow_origin.is_empty() {
        f.warn(
            &format!("{p}.allowOrigin"),
            "using deprecated setting \"allowOrigin\", use \"allowOrigins\" instead",
        );
    }
    for (i, m) in cors.allow_methods.iter().enumerate() {
        if !METHODS.contains(&m.as_str()) {
            f.error(
                &format!("{p}.allowMethods[{i}]"),
                format!(
                    "\"{m}\" is not a supported HTTP method ({})",
                    METHODS.join(", ")
                ),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            if name != "*" {
                check_header_name(name, &format!("{p}.{field}[{i}]"), f);
            }
        }
    }
    if let Some(age) = &cors.max_age {
        let at = format!("{p}.maxAge");
        check_duration(Some(age), &at, f);
        if age.get().subsec_nanos() != 0 {
            f.error(&at, format!("maxAge {age} must be whole seconds"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_known_status;

    #[test]
    fn status_codes_go_names() {
        for code in [200, 404, 418, 429, 503, 511] {
            assert!(is_known_status(code), "{code}");
        }
        for code in [0, 99, 209, 419, 509, 599] {
            assert!(!is_known_status(code), "{code}");
        }
    }
}
