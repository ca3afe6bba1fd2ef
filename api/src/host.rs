//! Host names: Kubernetes short names expanded against a namespace and the cluster's
//! DNS domain, and wildcard matching.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The default cluster DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// A cluster's DNS domain (the kubelet's `--cluster-domain`): a lowercase DNS name,
/// `cluster.local` by default.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ClusterDomain(Arc<str>);

impl ClusterDomain {
    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClusterDomain {
    fn default() -> ClusterDomain {
        ClusterDomain(Arc::from(CLUSTER_DOMAIN))
    }
}

impl fmt::Display for ClusterDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ClusterDomain> for String {
    fn from(domain: ClusterDomain) -> String {
        domain.0.to_string()
    }
}

impl TryFrom<String> for ClusterDomain {
    type Error = String;

    fn try_from(text: String) -> Result<ClusterDomain, String> {
        text.parse()
    }
}

impl FromStr for ClusterDomain {
    type Err = String;

    /// Accepts a DNS name of lowercase labels (letters, digits, `-`), e.g. `corp.internal`.
    fn from_str(text: &str) -> Result<ClusterDomain, String> {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if text.len() > 253 || !text.split('.').all(label_ok) {
            return Err(format!(
                "{text:?} is not a cluster domain: expected a lowercase DNS name such as cluster.local"
            ));
        }
        Ok(ClusterDomain(Arc::from(text)))
    }
}

/// Expands a short name (`reviews`) to `reviews.<namespace>.svc.cluster.local`,
/// as Istio does for config hosts; names with a dot and wildcards stay as they are.
pub fn fqdn(host: &str, namespace: &str) -> String {
    fqdn_in(host, namespace, &ClusterDomain::default())
}

/// [`fqdn`] in the cluster `domain`: `reviews` is `reviews.<namespace>.svc.<domain>`.
pub fn fqdn_in(host: &str, namespace: &str, domain: &ClusterDomain) -> String {
    if host.contains('.') || host.starts_with('*') {
        host.to_ascii_lowercase()
    } else {
        format!("{}.{namespace}.svc.{domain}", host.to_ascii_lowercase())
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
    fn short_names_expand_in_the_cluster_domain() {
        let corp: ClusterDomain = "corp.internal".parse().unwrap();
        assert_eq!(
            fqdn_in("reviews", "prod", &corp),
            "reviews.prod.svc.corp.internal"
        );
        assert_eq!(fqdn_in("a.b", "prod", &corp), "a.b");
        for bad in ["", "Corp.local", "corp..local", ".corp", "-a.b", "a_b"] {
            assert!(bad.parse::<ClusterDomain>().is_err(), "{bad:?}");
        }
        assert_eq!(ClusterDomain::default().as_str(), CLUSTER_DOMAIN);
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
