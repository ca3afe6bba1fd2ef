use std::collections::BTreeMap;

use sluice_api::load_str;
use sluice_api::model::Model;

use super::*;

/// The resources [`view`] picks, copied out.
fn picked(all: &[Resource], workload: &Workload) -> Vec<Resource> {
    view(all, workload)
        .into_iter()
        .map(|at| all[at].clone())
        .collect()
}

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  addresses: [10.96.12.34]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints: [{address: 10.244.1.5, labels: {version: v1}}, {address: 10.244.2.7, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ledger, namespace: bank}
spec:
  hosts: [ledger.bank.svc.cluster.local]
  addresses: [10.96.50.5]
  ports: [{number: 8080, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.244.9.9}]
  exportTo: ["."]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-for-canary-clients, namespace: shop}
spec:
  host: reviews
  workloadSelector: {matchLabels: {track: canary}}
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: reviews-api, namespace: team}
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api, namespace: team}
spec:
  exportTo: [shop]
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: unused-delegate, namespace: team}
spec:
  http:
  - route: [{destination: {host: reviews.shop.svc.cluster.local}}]
"#;

fn resources(text: &str) -> Vec<Resource> {
    let set = load_str("view-test.yaml", text);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    set.resources
}

fn workload(namespace: &str, labels: &[(&str, &str)]) -> Workload {
    Workload {
        namespace: namespace.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        cluster_domain: Default::default(),
    }
}

fn titles(resources: &[Resource]) -> Vec<String> {
    resources.iter().map(Resource::title).collect()
}

#[test]
fn a_view_holds_what_the_namespace_sees_and_the_delegates_it_uses() {
    let all = resources(MESH);
    let cases = [
        (
            workload("shop", &[("app", "productpage")]),
            vec![
                "ServiceEntry shop/reviews",
                "DestinationRule shop/reviews",
                "VirtualService shop/reviews",
                "VirtualService team/reviews-api",
            ],
        ),
        (
            workload("shop", &[("track", "canary")]),
            vec![
                "ServiceEntry shop/reviews",
                "DestinationRule shop/reviews",
                "DestinationRule shop/reviews-for-canary-clients",
                "VirtualService shop/reviews",
                "VirtualService team/reviews-api",
            ],
        ),
        (
            // The delegate is exported to shop only, but it is seen from its root's
            // namespace, as in Istio.
            workload("front", &[("track", "canary")]),
            vec![
                "ServiceEntry shop/reviews",
                "DestinationRule shop/reviews",
                "VirtualService shop/reviews",
                "VirtualService team/reviews-api",
            ],
        ),
        (
            workload("bank", &[]),
            vec![
                "ServiceEntry shop/reviews",
                "ServiceEntry bank/ledger",
                "DestinationRule shop/reviews",
                "VirtualService shop/reviews",
                "VirtualService team/reviews-api",
            ],
        ),
    ];
    for (workload, expected) in cases {
        assert_eq!(titles(&picked(&all, &workload)), expected, "{workload:?}");
    }
}

#[test]
fn a_delegate_not_exported_to_its_root_is_left_out() {
    let text = MESH.replace("exportTo: [shop]", "exportTo: [elsewhere]");
    let all = resources(&text);
    let seen = titles(&picked(&all, &workload("shop", &[])));
    assert!(!seen.contains(&"VirtualService team/reviews-api".to_string()));
}

#[test]
fn compiling_the_view_gives_the_model_compiling_everything_gives() {
    let all = resources(MESH);
    for w in [
        workload("shop", &[]),
        workload("shop", &[("track", "canary")]),
        workload("front", &[]),
        workload("bank", &[]),
    ] {
        let whole = serde_json::to_value(Model::compile(&all, &w)).unwrap();
        let part = serde_json::to_value(Model::compile(&picked(&all, &w), &w)).unwrap();
        assert_eq!(part, whole, "{w:?}");
    }
}

const MESH_CONFIGS: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: sluice-system}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
---
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: b-shop, namespace: shop}
spec: {connectTimeout: 2s}
---
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: a-shop, namespace: shop}
spec: {connectTimeout: 1s}
---
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: bank, namespace: bank}
spec: {connectTimeout: 3s}
"#;

#[test]
fn one_mesh_config_applies_its_namespace_first_then_the_root() {
    let all = resources(MESH_CONFIGS);
    let cases = [
        ("shop", Some("MeshConfig shop/a-shop")),
        ("bank", Some("MeshConfig bank/bank")),
        ("front", Some("MeshConfig sluice-system/mesh")),
        ("sluice-system", Some("MeshConfig sluice-system/mesh")),
    ];
    for (namespace, expected) in cases {
        let seen = titles(&picked(&all, &workload(namespace, &[])));
        assert_eq!(
            seen,
            expected.into_iter().collect::<Vec<_>>(),
            "{namespace}"
        );
    }
    let without_root: Vec<Resource> = all
        .into_iter()
        .filter(|r| r.meta.namespace() != ROOT_NAMESPACE)
        .collect();
    assert!(picked(&without_root, &workload("front", &[])).is_empty());
}

#[test]
fn the_mesh_config_in_force_is_the_one_compiled() {
    let all = resources(MESH_CONFIGS);
    let w = workload("shop", &[]);
    let model = Model::compile(&picked(&all, &w), &w);
    assert_eq!(
        model.mesh.connect_timeout,
        std::time::Duration::from_secs(1)
    );
    let w = workload("front", &[]);
    let model = Model::compile(&picked(&all, &w), &w);
    assert_eq!(
        model.mesh.outbound,
        sluice_api::mesh_config::OutboundMode::RegistryOnly
    );
}

#[test]
fn mesh_configs_that_never_apply_are_reported() {
    let all = resources(MESH_CONFIGS);
    let conflicts = mesh_config_conflicts(&all);
    let found: Vec<(Option<&str>, bool)> = conflicts
        .iter()
        .map(|d| (d.subject.as_deref(), d.is_error()))
        .collect();
    assert_eq!(found, [(Some("MeshConfig shop/b-shop"), true)]);
    assert!(conflicts[0].message.contains("MeshConfig shop/a-shop"));
}
