//! The compiled model, driven from YAML as users write it.

use sluice_api::model::routes::{HttpAction, RequestInfo, SubsetRef};
use sluice_api::model::{Model, Protocol, Workload};
use sluice_api::{load_str, validate};

const MESH: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  addresses: [10.96.0.10]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - {address: 10.44.0.2, labels: {version: v1}}
  - {address: 10.44.0.3, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  subsets:
  - {name: version-v1, labels: {version: v1}}
  - {name: version-v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - match:
    - headers: {x-istio-cohort: {exact: internal}}
    route:
    - destination: {host: catalog, subset: version-v2}
  - match:
    - sourceLabels: {app: never-me}
    route:
    - destination: {host: catalog, subset: nope}
  - route:
    - {destination: {host: catalog, subset: version-v1}, weight: 90}
    - {destination: {host: catalog, subset: version-v2}, weight: 10}
"#;

#[test]
fn short_names_expand_in_the_workloads_cluster_domain() {
    let mut set = load_str("mesh.yaml", MESH);
    validate::validate(&mut set);
    let workload = Workload {
        namespace: "shop".into(),
        cluster_domain: "corp.internal".parse().unwrap(),
        ..Workload::default()
    };
    let m = Model::compile(&set.resources, &workload);
    let id = m
        .registry
        .by_host("catalog.shop.svc.corp.internal")
        .unwrap();
    assert_eq!(
        m.registry.get(id).subsets.len(),
        2,
        "the DestinationRule applies"
    );
    let vhost = m.routes.lookup("catalog.shop.svc.corp.internal").unwrap();
    let HttpAction::Route(targets) = &vhost.http.last().unwrap().action else {
        panic!("route")
    };
    let target = &targets.pick().unwrap().0;
    assert_eq!(target.host, "catalog.shop.svc.corp.internal");
    assert_eq!(target.service, Some(id));
    assert!(
        m.registry
            .by_host("catalog.shop.svc.cluster.local")
            .is_none()
    );
}

fn model() -> Model {
    let mut set = load_str("mesh.yaml", MESH);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let workload = Workload {
        namespace: "shop".into(),
        labels: [("app".into(), "frontend".into())].into(),
        cluster_domain: Default::default(),
    };
    Model::compile(&set.resources, &workload)
}

fn request<'a>(headers: &'a http::HeaderMap) -> RequestInfo<'a> {
    RequestInfo {
        method: "GET",
        scheme: "http",
        authority: "catalog",
        path: "/",
        query: "",
        port: 80,
        headers,
    }
}

#[test]
fn registry_resolves_vip_endpoints_and_subsets() {
    let m = model();
    let id = m
        .registry
        .by_destination("10.96.0.10:80".parse().unwrap())
        .expect("VIP known");
    let svc = m.registry.get(id);
    assert_eq!(svc.host, "catalog.shop.svc.cluster.local");
    assert_eq!(svc.port(80).unwrap().protocol, Protocol::Http);
    assert_eq!(
        m.registry.by_destination("10.44.0.3:80".parse().unwrap()),
        Some(id)
    );
    assert_eq!(
        m.registry.by_destination("10.96.0.10:81".parse().unwrap()),
        None
    );
    let v2 = &svc.subsets[svc.subset("version-v2").unwrap()];
    assert_eq!(v2.endpoints, vec![1]);
}

#[test]
fn routes_by_header_then_weight_and_drops_rules_for_other_sources() {
    let m = model();
    let vhost = m
        .routes
        .lookup("catalog.shop.svc.cluster.local")
        .expect("routes");
    assert_eq!(
        vhost.http.len(),
        2,
        "the sourceLabels rule does not select this workload"
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-istio-cohort", "internal".parse().unwrap());
    let rule = vhost
        .http
        .iter()
        .find(|r| r.matches(&request(&headers)))
        .unwrap();
    let HttpAction::Route(targets) = &rule.action else {
        panic!("route")
    };
    assert_eq!(
        targets.pick().unwrap().0.subset_name.as_deref(),
        Some("version-v2")
    );

    let empty = http::HeaderMap::new();
    let rule = vhost
        .http
        .iter()
        .find(|r| r.matches(&request(&empty)))
        .unwrap();
    let HttpAction::Route(targets) = &rule.action else {
        panic!("route")
    };
    let picks: Vec<_> = (0..10).map(|_| targets.pick().unwrap().0.subset).collect();
    assert_eq!(
        picks.iter().filter(|s| **s == SubsetRef::Found(1)).count(),
        1,
        "{picks:?}"
    );
}

#[test]
fn delegation_merges_the_delegates_rules_into_the_root_and_skips_a_missing_delegate() {
    let yaml = MESH.replace(
        "  - match:\n    - headers: {x-istio-cohort: {exact: internal}}",
        r#"  - match: [{uri: {prefix: /gone}}]
    delegate: {name: nowhere}
  - match: [{uri: {prefix: /api}}]
    delegate: {name: catalog-api, namespace: team}
    headers: {request: {set: {x-root: "yes"}}}
  - match:
    - headers: {x-istio-cohort: {exact: internal}}"#,
    ) + r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog-api, namespace: team}
spec:
  exportTo: [shop]
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: catalog.shop.svc.cluster.local, subset: version-v2}}]
  - match: [{uri: {prefix: /web}}]
    route: [{destination: {host: catalog.shop.svc.cluster.local, subset: version-v2}}]
  - route: [{destination: {host: catalog.shop.svc.cluster.local, subset: version-v1}}]
"#;
    let mut set = load_str("mesh.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let warnings: Vec<String> = set.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("spec.http[0].delegate") && w.contains("shop/nowhere not found")),
        "{warnings:?}"
    );
    // The delegate is exported to its root's namespace, which is what counts,
    // also for a workload elsewhere (as in Istio).
    let workload = Workload {
        namespace: "elsewhere".into(),
        labels: Default::default(),
        cluster_domain: Default::default(),
    };
    let m = Model::compile(&set.resources, &workload);
    let vhost = m.routes.lookup("catalog.shop.svc.cluster.local").unwrap();
    let empty = http::HeaderMap::new();
    let routed = |path: &'static str| {
        let req = RequestInfo {
            path,
            ..request(&empty)
        };
        let rule = vhost.http.iter().find(|r| r.matches(&req)).unwrap();
        let HttpAction::Route(targets) = &rule.action else {
            panic!("route")
        };
        let subset = targets.pick().unwrap().0.subset_name.clone().unwrap();
        (subset, rule.request_headers.set.len())
    };
    // /gone: its delegate is missing, the rule is skipped, the catch-all answers.
    assert_eq!(routed("/gone").0, "version-v1");
    assert_eq!(routed("/api/v2/items"), ("version-v2".into(), 1));
    assert_eq!(
        routed("/api/v1/items"),
        ("version-v1".into(), 1),
        "the delegate's catch-all takes the root's /api match and header changes"
    );
    // The delegate's /web rule lies outside the root's /api: dropped.
    assert_eq!(routed("/web").1, 0, "not routed by the delegate");
}

#[test]
fn export_to_hides_resources_from_other_namespaces() {
    let hidden = r#"---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private-db, namespace: team}
spec:
  hosts: [db.team.internal]
  exportTo: ["."]
  addresses: [10.96.9.9]
  ports: [{number: 5432, name: tcp-pg}]
  resolution: STATIC
  endpoints: [{address: 10.44.9.9}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared-db, namespace: team}
spec:
  hosts: [shared.team.internal]
  exportTo: [shop]
  addresses: [10.96.9.10]
  ports: [{number: 5432, name: tcp-pg}]
  resolution: STATIC
  endpoints: [{address: 10.44.9.10}]
"#;
    let yaml = MESH.replace(
        "metadata: {name: catalog, namespace: shop}\nspec:\n  hosts: [catalog]\n  http:",
        "metadata: {name: catalog, namespace: shop}\nspec:\n  hosts: [catalog]\n  exportTo: [team]\n  http:",
    ) + hidden;
    let mut set = load_str("mesh.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let compile = |namespace: &str| {
        let workload = Workload {
            namespace: namespace.into(),
            labels: Default::default(),
            cluster_domain: Default::default(),
        };
        Model::compile(&set.resources, &workload)
    };
    let shop = compile("shop");
    assert!(
        shop.routes
            .lookup("catalog.shop.svc.cluster.local")
            .is_none(),
        "exportTo [team]: not to shop"
    );
    assert!(
        shop.registry.by_host("db.team.internal").is_none(),
        "`.`: team only"
    );
    assert!(
        shop.registry.by_host("shared.team.internal").is_some(),
        "named: shop"
    );
    let team = compile("team");
    assert!(team.registry.by_host("db.team.internal").is_some());
    assert!(team.registry.by_host("shared.team.internal").is_none());
}

#[test]
fn a_destination_rule_with_a_workload_selector_applies_only_to_the_workloads_it_selects() {
    let yaml = MESH.to_string()
        + r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog-for-frontend, namespace: shop}
spec:
  host: catalog
  workloadSelector: {matchLabels: {app: frontend}}
  subsets:
  - {name: frontend-only, labels: {version: v2}}
"#;
    let mut set = load_str("mesh.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let subset = |namespace: &str, app: &str| {
        let workload = Workload {
            namespace: namespace.into(),
            labels: [("app".into(), app.into())].into(),
            cluster_domain: Default::default(),
        };
        let m = Model::compile(&set.resources, &workload);
        let id = m
            .registry
            .by_host("catalog.shop.svc.cluster.local")
            .unwrap();
        m.registry.get(id).subset("frontend-only").is_some()
    };
    assert!(subset("shop", "frontend"));
    assert!(!subset("shop", "backend"), "labels not selected");
    assert!(!subset("other", "frontend"), "another namespace");
}
