//! ReleasePolicy rules.

use std::collections::BTreeSet;

use super::Findings;
use super::fields::{check_header_name, host_problem};
use crate::release_policy::{
    AccessLog, Fallback, JwtCheck, ProtectedHeaders, ReleasePolicy, Sticky, StickyCookie,
    TokenCheck,
};

pub(super) fn check(rp: &ReleasePolicy, f: &mut Findings<'_>) {
    if rp.host.is_empty() {
        f.error(
            "spec.host",
            "host is required: the destination host the release is about, as in a DestinationRule",
        );
    } else if rp.host.contains('*') {
        f.error(
            "spec.host",
            format!(
                "\"{}\" is a wildcard; a ReleasePolicy is about one host",
                rp.host
            ),
        );
    } else if let Some(problem) = host_problem(&rp.host) {
        f.error(
            "spec.host",
            format!("\"{}\" is not a valid host: {problem}", rp.host),
        );
    }
    if let Some(sticky) = &rp.sticky {
        check_sticky(sticky, f);
    }
    if let Some(fallback) = &rp.fallback {
        check_fallback(fallback, f);
    }
    if let Some(log) = &rp.access_log {
        check_access_log(log, f);
    }
    if let Some(p) = &rp.protected_headers {
        check_protected(p, f);
    }
}

fn check_protected(p: &ProtectedHeaders, f: &mut Findings<'_>) {
    let path = "spec.protectedHeaders";
    if p.gateways.is_empty() {
        f.error(
            &format!("{path}.gateways"),
            "no gateways: name the Gateways (name or namespace/name) whose requests are guarded",
        );
    }
    for (i, g) in p.gateways.iter().enumerate() {
        let name = g.rsplit('/').next().unwrap_or_default();
        if name.is_empty() || g.split('/').count() > 2 || g.contains('*') {
            f.error(
                &format!("{path}.gateways[{i}]"),
                format!("\"{g}\" is not a Gateway name (name or namespace/name)"),
            );
        }
    }
    for (i, h) in p.headers.iter().enumerate() {
        let name = h.strip_suffix('*').unwrap_or(h);
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            f.error(
                &format!("{path}.headers[{i}]"),
                format!("\"{h}\" is not a header name or a prefix such as x-gray-*"),
            );
        }
    }
    if let Some(t) = &p.token {
        check_token(t, &format!("{path}.token"), f);
    }
    for (i, c) in p.trusted_cidrs.iter().enumerate() {
        let ok = c.parse::<ipnet::IpNet>().is_ok() || c.parse::<std::net::IpAddr>().is_ok();
        if !ok {
            f.error(
                &format!("{path}.trustedCidrs[{i}]"),
                format!("\"{c}\" is not an address or CIDR (10.0.0.0/8, 2001:db8::/32)"),
            );
        }
    }
    if let Some(j) = &p.jwt {
        check_jwt(j, &format!("{path}.jwt"), f);
    }
}

fn check_file(file: &str, path: &str, f: &mut Findings<'_>) {
    if !file.starts_with('/') {
        f.error(
            path,
            format!("\"{file}\" is not an absolute file path (a mounted Secret)"),
        );
    }
}

fn check_token(t: &TokenCheck, path: &str, f: &mut Findings<'_>) {
    check_header_name(&t.header, &format!("{path}.header"), f);
    check_file(&t.secret_file, &format!("{path}.secretFile"), f);
}

fn check_jwt(j: &JwtCheck, path: &str, f: &mut Findings<'_>) {
    check_file(&j.jwks_file, &format!("{path}.jwksFile"), f);
    if j.claim.is_empty() {
        f.error(
            &format!("{path}.claim"),
            "claim is required: the claim whose value allows gray headers",
        );
    }
    if j.values.is_empty() {
        f.error(
            &format!("{path}.values"),
            "no values: name the claim values that allow gray headers",
        );
    }
}

fn check_sticky(s: &Sticky, f: &mut Findings<'_>) {
    let set = [
        s.header.is_some(),
        s.cookie.is_some(),
        s.client_address.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        f.error(
            "spec.sticky",
            "set exactly one of header, cookie and clientAddress: the key that names a user",
        );
    }
    if let Some(h) = &s.header {
        check_header_name(h, "spec.sticky.header", f);
    }
    if let Some(c) = &s.cookie {
        check_cookie(c, f);
    }
    if s.client_address == Some(false) {
        f.error(
            "spec.sticky.clientAddress",
            "clientAddress: false names no key; remove it or set true",
        );
    }
}

/// A cookie name is an RFC 6265 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_cookie(c: &StickyCookie, f: &mut Findings<'_>) {
    if !is_token(&c.name) {
        f.error(
            "spec.sticky.cookie.name",
            format!(
                "\"{}\" is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                c.name
            ),
        );
    }
    if let Some(path) = &c.path
        && (!path.starts_with('/') || path.bytes().any(|b| b == b';' || b.is_ascii_control()))
    {
        f.error(
            "spec.sticky.cookie.path",
            format!("\"{path}\" is not a cookie path: it starts with '/' and has no ';'"),
        );
    }
    for (i, a) in c.attributes.iter().enumerate() {
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        let bad_value = a.bytes().any(|b| b == b';' || b.is_ascii_control());
        if !is_token(name) || bad_value {
            f.error(
                &format!("spec.sticky.cookie.attributes[{i}]"),
                format!("\"{a}\" is not a cookie attribute: NAME or NAME=VALUE without ';'"),
            );
        } else if ["max-age", "path", "expires"].contains(&name.to_ascii_lowercase().as_str()) {
            f.error(
                &format!("spec.sticky.cookie.attributes[{i}]"),
                format!("{name} is set from ttl and path; use those fields"),
            );
        }
    }
}

fn check_fallback(fb: &Fallback, f: &mut Findings<'_>) {
    if let Some(h) = &fb.response_header {
        check_header_name(h, "spec.fallback.responseHeader", f);
    }
    if fb.subsets.is_empty() {
        f.error(
            "spec.fallback.subsets",
            "no subsets: name each subset that may fall back (from) and where to (to)",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, s) in fb.subsets.iter().enumerate() {
        let path = format!("spec.fallback.subsets[{i}]");
        if s.from.is_empty() {
            f.error(&format!("{path}.from"), "from is required: a subset name");
        }
        if s.to.is_empty() {
            f.error(&format!("{path}.to"), "to is required: a subset name");
        }
        if !s.from.is_empty() && s.from == s.to {
            f.error(
                &format!("{path}.to"),
                format!("subset {} cannot fall back to itself", s.from),
            );
        }
        if !seen.insert(s.from.as_str()) {
            f.error(
                &format!("{path}.from"),
                format!("subset {} already has a fallback", s.from),
            );
        }
    }
}

fn check_access_log(log: &AccessLog, f: &mut Findings<'_>) {
    if log.headers.is_empty() {
        f.error(
            "spec.accessLog.headers",
            "no headers: name the request headers to log",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, h) in log.headers.iter().enumerate() {
        let path = format!("spec.accessLog.headers[{i}]");
        check_header_name(h, &path, f);
        if !seen.insert(h.to_ascii_lowercase()) {
            f.error(&path, format!("header {h} is listed twice"));
        }
    }
}
