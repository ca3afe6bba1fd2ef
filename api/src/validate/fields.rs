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

/// A host of a VirtualService, DestinationRule or ServiceEntry, as Istio
/// checks it: DNS labels (short names allowed), where the first label may be
/// a wildcard `*`, `*suffix` or `*-suffix`; a trailing dot is allowed and the
/// top-level label cannot be all digits. Returns false after an error.
pub(super) fn check_host(host: &str, path: &str, f: &mut Findings<'_>) -> bool {
    match host_problem(host) {
        None => true,
        Some(problem) => {
            f.error(path, format!("\"{host}\" is not a valid host: {problem}; expected a DNS name such as reviews, reviews.prod.svc.cluster.local or *.example.com"));
            false
        }
    }
}

/// Why `host` is not a (wildcard) domain Istio accepts, if it is not.
pub(super) fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("it is empty".into());
    }
    if host.len() > 255 {
        return Some("longer than 255 characters".into());
    }
    let (first, rest) = host
        .split_once('.')
        .map_or((host, None), |(a, b)| (a, Some(b)));
    if !is_wildcard_label(first) {
        return Some(format!(
            "label \"{first}\" is invalid (a wildcard may only be the first label: *, *suffix or *-suffix)"
        ));
    }
    rest.and_then(labels_problem)
}

/// Why `name` is not a fully qualified domain name, if it is not (wildcards are not).
pub(super) fn fqdn_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 255 {
        return Some("longer than 255 characters".into());
    }
    labels_problem(name)
}

fn labels_problem(domain: &str) -> Option<String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let top = labels.last().copied().unwrap_or_default();
    if !top.is_empty() && top.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "the top-level label \"{top}\" cannot be all digits"
        ));
    }
    let last = labels.len() - 1;
    labels
        .iter()
        .enumerate()
        .find(|(i, l)| !(is_dns_label(l) || (*i == last && l.is_empty())))
        .map(|(_, l)| format!("label \"{l}\" is invalid (letters, digits and '-', at most 63)"))
}

/// A first host label Istio accepts: `*`, a DNS label, or one prefixed by `*` or `*-`.
fn is_wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    label.len() <= 63 && is_dns_label(rest)
}

/// True for a partial wildcard (`*foo.com`), which Istio warns about where it
/// expects `*` or `*.suffix`.
pub(super) fn is_partial_wildcard(host: &str) -> bool {
    host.contains('*') && host != "*" && !host.starts_with("*.")
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

/// A duration of an Istio field: at least 1ms, in whole milliseconds.
pub(super) fn check_duration(d: Option<&Duration>, path: &str, f: &mut Findings<'_>) {
    let Some(d) = d else { return };
    if d.get() < StdDuration::from_millis(1) {
        f.error(path, format!("duration {d} must be at least 1ms"));
    } else if d.get().subsec_nanos() % 1_000_000 != 0 {
        f.error(
            path,
            format!("duration {d}: only whole milliseconds are supported"),
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
    if m.prefix.as_deref() == Some("") {
        f.error(&format!("{path}.prefix"), "prefix is empty");
    }
}

/// Istio's (Envoy's) limit on the length of a regex.
const MAX_REGEX_LEN: usize = 1024;

/// An RE2 regular expression of at most 1024 characters; Rust's regex crate
/// accepts the same syntax.
pub(super) fn check_regex(re: &str, path: &str, f: &mut Findings<'_>) {
    if re.is_empty() {
        f.error(path, "regex is empty");
    } else if re.len() > MAX_REGEX_LEN {
        f.error(
            path,
            format!(
                "regex is {} characters long; at most {MAX_REGEX_LEN} are allowed",
                re.len()
            ),
        );
    } else if let Err(e) = regex::Regex::new(re) {
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

/// A header name in a match: letters, digits, '-' and '_', as Istio
/// requires (any case: names are compared lowercase).
pub(super) fn check_header_name(name: &str, path: &str, f: &mut Findings<'_>) {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        f.error(
            path,
            format!("\"{name}\" is not a valid header name (letters, digits, '-' and '_')"),
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

/// Gateways a rule is bound to: `mesh`, `namespace/name` (both DNS labels)
/// or, in the legacy form Istio still takes with a warning, `name.namespace`.
pub(super) fn check_gateways(gateways: &[String], path: &str, f: &mut Findings<'_>) {
    for (i, g) in gateways.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match g.split_once('/') {
            Some((ns, name)) => {
                for (part, what) in [(ns, "namespace"), (name, "gateway name")] {
                    if !is_dns_label(part) {
                        f.error(
                            &at,
                            format!(
                                "\"{part}\" in \"{g}\" is not a valid {what}: use NAMESPACE/NAME"
                            ),
                        );
                    }
                }
            }
            None => {
                if let Some((name, ns)) = g.split_once('.') {
                    let ns = ns.split('.').next().unwrap_or_default();
                    f.warn(
                        &at,
                        format!("legacy gateway name \"{g}\": prefer the NAMESPACE/NAME form, \"{ns}/{name}\""),
                    );
                }
                if let Some(problem) = fqdn_problem(g) {
                    f.error(&at, format!("\"{g}\" is not a gateway name: {problem}"));
                }
            }
        }
    }
}

/// A percentage Istio takes for faults: 0, or 0.0001 to 100.
pub(super) fn check_fraction(p: &Percent, path: &str, f: &mut Findings<'_>) {
    let v = p.value;
    if !(v == 0.0 || (0.0001..=100.0).contains(&v)) {
        f.error(
            &format!("{path}.value"),
            format!("percentage {v} is neither 0 nor in range 0.0001..100"),
        );
    }
}

/// `exportTo`: `.`, `*`, `~` (ServiceEntry only) or namespace names, each
/// once; `*` and `~` stand alone; a DestinationRule with a `workloadSelector`
/// is exported to its own namespace only.
pub(super) fn check_export_to(
    export_to: &[String],
    namespace: &str,
    service_entry: bool,
    with_selector: bool,
    f: &mut Findings<'_>,
) {
    let mut seen = BTreeMap::new();
    for (i, e) in export_to.iter().enumerate() {
        let path = format!("spec.exportTo[{i}]");
        let key = if e == "." { namespace } else { e.as_str() };
        if let Some(first) = seen.insert(key, i) {
            f.error(
                &path,
                format!("\"{e}\" repeats spec.exportTo[{first}] (\".\" is the resource's own namespace, {namespace})"),
            );
            continue;
        }
        let valid = matches!(e.as_str(), "." | "*")
            || (e == "~" && service_entry)
            || (is_dns_label(e) && !e.bytes().any(|b| b.is_ascii_uppercase()));
        if !valid {
            let allowed = if service_entry { "., *, ~" } else { "., *" };
            f.error(
                &path,
                format!("\"{e}\" is not a namespace name or one of {allowed}"),
            );
        }
    }
    if export_to.len() > 1 {
        for special in ["*", "~"] {
            if let Some(i) = export_to.iter().position(|e| e == special) {
                f.error(
                    &format!("spec.exportTo[{i}]"),
                    format!("\"{special}\" cannot be combined with other exportTo values"),
                );
            }
        }
    }
    if with_selector && !seen.is_empty() && (seen.len() > 1 || !seen.contains_key(namespace)) {
        f.error(
            "spec.exportTo",
            format!("a DestinationRule with a workloadSelector can only be exported to its own namespace ({namespace})"),
        );
    }
}

/// Labels of a workload selector: no empty keys, no wildcards; none at all
/// selects every workload of the namespace (a warning, as in Istio).
pub(super) fn check_selector(labels: &BTreeMap<String, String>, path: &str, f: &mut Findings<'_>) {
    if labels.is_empty() {
        f.warn(
            path,
            "workload selector without labels: it selects every workload of the namespace",
        );
    }
    for (k, v) in labels {
        if k.is_empty() {
            f.error(path, format!("empty label key in selector (\"={v}\")"));
        }
        if k.contains('*') || v.contains('*') {
            f.error(
                &format!("{path}.{k}"),
                format!("wildcards are not supported in selectors (\"{k}={v}\")"),
            );
        }
    }
    check_labels(labels, path, f);
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
    fn hosts_as_istio_reads_them() {
        for ok in [
            "reviews",
            "Reviews.Prod",
            "a.example.com.",
            "*",
            "*.example.com",
            "*foo.example.com",
            "*-foo.example.com",
        ] {
            assert_eq!(host_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("a.*.com", "label \"*\""),
            ("foo*.com", "label \"foo*\""),
            ("**.com", "label \"**\""),
            ("a..b", "label \"\""),
            ("a.b.123", "all digits"),
            ("1.2.3.4", "all digits"),
            ("a_b.com", "label \"a_b\""),
        ] {
            let problem = host_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad}: {problem}");
        }
        assert_eq!(fqdn_problem("api.example.com"), None);
        assert!(fqdn_problem("*.example.com").is_some());
        assert!(is_partial_wildcard("*foo.com"));
        assert!(!is_partial_wildcard("*.foo.com"));
        assert!(!is_partial_wildcard("*"));
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
