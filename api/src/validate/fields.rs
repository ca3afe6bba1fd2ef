//! Checks of field types shared by several resources: hosts, labels, ports,
//! string matches, percentages, durations.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use super::Findings;
use crate::duration::Duration;
use crate::istio::{Percent, StringMatch};
use crate::net::parse_cidr;
use crate::resource::Resource;

/// Metadata: the name must be a DNS-1123 subdomain, as Kubernetes requires.
pub(super) fn check_meta(resource: &Resource, f: &mut Findings<'_>) {
    let name = &resource.meta.name;
    if !name.is_empty() && !is_dns1123_subdomain(name) {
        f.error(
            "metadata.name",
            format!("\"{name}\" is not a valid name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        );
    }
    check_labels(&resource.meta.labels, "metadata.labels", f);
}

/// A host of a VirtualService, DestinationRule or ServiceEntry: a DNS name,
/// a short name, or a wildcard (`*` or `*.suffix`).
pub(super) fn check_host(host: &str, path: &str, f: &mut Findings<'_>) {
    if host.is_empty() {
        f.error(path, "host is empty");
        return;
    }
    let name = host.strip_prefix('/').unwrap_or(host);
    let rest = if name == "*" {
        ""
    } else {
        name.strip_prefix("*.").unwrap_or(name)
    };
    if rest.is_empty() {
        return;
    }
    if rest.contains('*') {
        f.error(path, format!("\"{host}\" is not a valid host: a wildcard may only stand alone or as the first label (\"*.example.com\")"));
        return;
    }
    if !rest.split('.').all(is_dns_label) || rest.len() > 253 {
        f.error(path, format!("\"{host}\" is not a valid host: expected a DNS name such as reviews, reviews.prod.svc.cluster.local or *.example.com"));
    }
}

/// True for a DNS label of letters, digits and '-' (at most 63 characters).
pub(super) fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// True for a Kubernetes object name (DNS-1123 subdomain).
pub(super) fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name
            .split('.')
            .all(|l| is_dns_label(l) && l.chars().all(|c| !c.is_ascii_uppercase()))
}

/// Kubernetes label keys (`prefix/name`) and values.
pub(super) fn check_labels(labels: &BTreeMap<String, String>, path: &str, f: &mut Findings<'_>) {
    for (key, value) in labels {
        let (prefix, name) = key
            .rsplit_once('/')
            .map_or((None, key.as_str()), |(p, n)| (Some(p), n));
        if !is_label_value(name)
            || name.is_empty()
            || prefix.is_some_and(|p| !is_dns1123_subdomain(p))
        {
            f.error(&format!("{path}.{key}"), format!("\"{key}\" is not a valid label key: use [prefix/]name with letters, digits, '-', '_' and '.' (at most 63 characters)"));
        }
        if !is_label_value(value) {
            f.error(&format!("{path}.{key}"), format!("\"{value}\" is not a valid label value: use letters, digits, '-', '_' and '.' (at most 63 characters), starting and ending with a letter or digit"));
        }
    }
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

/// A port number in 1..=65535.
pub(super) fn check_port(port: u32, path: &str, f: &mut Findings<'_>) {
    if !(1..=65535).contains(&port) {
        f.error(path, format!("port {port} is out of range 1..65535"));
    }
}

/// A percentage in 0..=100.
pub(super) fn check_percent(p: &Percent, path: &str, f: &mut Findings<'_>) {
    if !(0.0..=100.0).contains(&p.value) {
        f.error(
            &format!("{path}.value"),
            format!("percentage {} is out of range 0..100", p.value),
        );
    }
}

/// A duration that must be at least one millisecond.
pub(super) fn check_positive(d: Option<&Duration>, path: &str, f: &mut Findings<'_>) {
    if let Some(d) = d
        && d.get() < StdDuration::from_millis(1)
    {
        f.error(path, format!("duration {d} must be at least 1ms"));
    }
}

/// A string match: at most one of exact, prefix, regex; the regex compiles (RE2 syntax).
/// `presence_ok` allows the empty match, which tests that a header is present.
pub(super) fn check_string_match(
    m: &StringMatch,
    path: &str,
    presence_ok: bool,
    f: &mut Findings<'_>,
) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        f.error(path, "set only one of exact, prefix and regex");
    } else if set == 0 && !presence_ok {
        f.error(path, "empty match: set one of exact, prefix or regex");
    }
    if let Some(re) = &m.regex {
        check_regex(re, &format!("{path}.regex"), f);
    }
}

/// An RE2 regular expression; Rust's regex crate accepts the same syntax.
pub(super) fn check_regex(re: &str, path: &str, f: &mut Findings<'_>) {
    if let Err(e) = regex::Regex::new(re) {
        let reason = e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        f.error(
            path,
            format!("regex \"{re}\" does not compile (RE2 syntax): {reason}"),
        );
    }
}

/// An HTTP header name: lowercase token characters.
pub(super) fn check_header_name(name: &str, path: &str, f: &mut Findings<'_>) {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        f.error(path, format!("\"{name}\" is not a valid header name"));
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        f.error(
            path,
            format!("header name \"{name}\" must be lowercase, as HTTP/2 sends it"),
        );
    }
}

/// An IP address or CIDR.
pub(super) fn check_cidr(text: &str, path: &str, f: &mut Findings<'_>) {
    if parse_cidr(text).is_none() {
        f.error(
            path,
            format!("\"{text}\" is not an IP address or CIDR (e.g. 10.0.0.0/8)"),
        );
    }
}

/// Gateways a rule is bound to: `mesh`, `name` or `namespace/name`.
pub(super) fn check_gateways(gateways: &[String], path: &str, f: &mut Findings<'_>) {
    for (i, g) in gateways.iter().enumerate() {
        let name = g.rsplit_once('/').map_or(g.as_str(), |(_, n)| n);
        if g != "mesh" && !is_dns1123_subdomain(name) {
            f.error(
                &format!("{path}[{i}]"),
                format!("\"{g}\" is not a gateway name: use mesh, NAME or NAMESPACE/NAME"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["reviews", "reviews.prod.svc.cluster.local", "a-b.c"] {
            assert!(ok.split('.').all(is_dns_label), "{ok}");
        }
        for bad in ["-a", "a_b", "", "a..b"] {
            assert!(!bad.split('.').all(is_dns_label), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("v1"));
        assert!(is_label_value(""));
        assert!(is_label_value("a.b_c-d"));
        assert!(!is_label_value("-v1"));
        assert!(!is_label_value("a b"));
    }
}
