//! Host names: Kubernetes short names expanded against a namespace, and
//! wildcard matching.

/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Expands a short name (`reviews`) to `reviews.<namespace>.svc.cluster.local`,
/// as Istio does for config hosts; names with a dot and wildcards stay as they are.
pub fn fqdn(host: &str, namespace: &str) -> String {
    if host.contains('.') || host.starts_with('*') {
        host.to_ascii_lowercase()
    } else {
        format!(
            "{}.{namespace}.svc.{CLUSTER_DOMAIN}",
            host.to_ascii_lowercase()
        )
    }
}

/// True when `pattern` (a host or a `*.suffix` / `*` wildcard) covers `host`.
pub fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_short_names_only() {
        assert_eq!(fqdn("reviews", "prod"), "reviews.prod.svc.cluster.local");
        assert_eq!(fqdn("Reviews", "prod"), "reviews.prod.svc.cluster.local");
        assert_eq!(fqdn("api.example.com", "prod"), "api.example.com");
        assert_eq!(fqdn("*.example.com", "prod"), "*.example.com");
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "a.b"));
        assert!(matches("*.example.com", "api.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
    }
}
