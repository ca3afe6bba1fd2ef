//! What L4 and L7 routing share, below both: the names a host may stand for, and the
//! route of a service that no VirtualService routes.

use sluice_api::host::ClusterDomain;
use sluice_api::model::routes::{SubsetRef, Target};
use sluice_api::model::{Model, ServiceId};

/// The FQDNs a host name may stand for, in the order Kubernetes DNS would try
/// them from a pod of `namespace` in the cluster `domain`.
pub fn candidates(host: &str, namespace: &str, domain: &ClusterDomain) -> Vec<String> {
    let dots = host.matches('.').count();
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return Vec::new();
    }
    if dots == 0 {
        return vec![format!("{host}.{namespace}.svc.{domain}")];
    }
    if host.ends_with(".svc") {
        return vec![format!("{host}.{domain}")];
    }
    if dots == 1 {
        return vec![format!("{host}.svc.{domain}"), host.to_string()];
    }
    vec![host.to_string()]
}

/// All endpoints of a service, as the route when no VirtualService applies.
pub fn default_target(model: &Model, id: ServiceId) -> Target {
    Target {
        host: model.registry.get(id).host.clone(),
        service: Some(id),
        subset_name: None,
        subset: SubsetRef::All,
        port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_candidates() {
        let cases: [(&str, &[&str]); 6] = [
            ("reviews", &["reviews.prod.svc.cluster.local"]),
            (
                "reviews.other",
                &["reviews.other.svc.cluster.local", "reviews.other"],
            ),
            ("reviews.other.svc", &["reviews.other.svc.cluster.local"]),
            (
                "reviews.other.svc.cluster.local",
                &["reviews.other.svc.cluster.local"],
            ),
            ("10.0.0.1", &[]),
            ("", &[]),
        ];
        for (host, expected) in cases {
            assert_eq!(
                candidates(host, "prod", &ClusterDomain::default()),
                expected,
                "{host}"
            );
        }
        let corp: ClusterDomain = "corp.internal".parse().unwrap();
        assert_eq!(
            candidates("reviews.other", "prod", &corp),
            ["reviews.other.svc.corp.internal", "reviews.other"]
        );
    }
}
