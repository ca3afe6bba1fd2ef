//! Routing decisions on a model compiled from YAML as users write it.

use http::HeaderMap;
use sluice_api::model::Workload;
use sluice_api::{load_str, validate};

use super::*;

const MESH: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  addresses: [10.96.0.10]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.44.0.2, labels: {version: v1}}
  - {address: 10.44.0.3, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  addresses: [10.96.0.11]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.44.0.4}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com, "*.wild.example.com"]
  ports: [{number: 80, name: http}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  subsets:
  - {name: version-v1, labels: {version: v1}}
  - {name: version-v2, labels: {version: v2}}
  - {name: empty, labels: {version: v9}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - match: [{headers: {x-istio-cohort: {exact: internal}}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{uri: {prefix: /api/v1}}]
    rewrite: {uri: /v1}
    route: [{destination: {host: catalog, subset: version-v1}}]
  - match: [{uri: {exact: /exact}}, {uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{uri: {prefix: /gone}}]
    route: [{destination: {host: catalog, subset: nope}}]
  - match: [{uri: {prefix: /empty}}]
    route: [{destination: {host: catalog, subset: empty}}]
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: other.example.com}
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - route: [{destination: {host: catalog, subset: version-v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild, namespace: shop}
spec:
  hosts: ["*.wild.example.com"]
  http:
  - route: [{destination: {host: api.example.com}}]
"#;

fn model() -> Model {
    let mut set = load_str("mesh.yaml", MESH);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    Model::compile(
        &set.resources,
        &Workload {
            namespace: "shop".into(),
            labels: Default::default(),
            cluster_domain: Default::default(),
        },
    )
}

fn info<'a>(authority: &'a str, path: &'a str, headers: &'a HeaderMap) -> RequestInfo<'a> {
    RequestInfo {
        method: "GET",
        scheme: "http",
        authority,
        path,
        query: "",
        port: 80,
        headers,
    }
}

/// What a decision comes to, in words a table can hold.
fn outcome(routed: &Routed<'_>) -> String {
    match &routed.action {
        Action::Forward { target, .. } => format!("forward {}", target.label()),
        Action::Redirect { location, code } => format!("redirect {code} {location}"),
        Action::Respond { status, body } => format!("respond {status} {body}"),
        Action::Fail(e) => format!("fail {}", crate::http::respond::status(e).as_u16()),
    }
}

#[test]
fn decisions() {
    let m = model();
    let vip: SocketAddr = "10.96.0.10:80".parse().unwrap();
    let unknown: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let mut internal = HeaderMap::new();
    internal.insert("x-istio-cohort", "internal".parse().unwrap());
    let none = HeaderMap::new();
    const CATALOG: &str = "catalog.shop.svc.cluster.local";
    let cases: Vec<(&str, &str, &HeaderMap, SocketAddr, String)> = vec![
        (
            "header routing",
            "catalog",
            &internal,
            vip,
            format!("forward {CATALOG}/version-v2"),
        ),
        (
            "default rule",
            "catalog",
            &none,
            vip,
            format!("forward {CATALOG}/version-v1"),
        ),
        (
            "namespaced short name",
            "catalog.shop:80",
            &internal,
            vip,
            format!("forward {CATALOG}/version-v2"),
        ),
        (
            "fqdn",
            "catalog.shop.svc.cluster.local",
            &internal,
            vip,
            format!("forward {CATALOG}/version-v2"),
        ),
        (
            "host names are case-insensitive",
            "Catalog.SHOP:80",
            &internal,
            unknown,
            format!("forward {CATALOG}/version-v2"),
        ),
        (
            "svc form",
            "catalog.shop.svc",
            &internal,
            vip,
            format!("forward {CATALOG}/version-v2"),
        ),
        (
            "VIP as authority falls back to the destination",
            "10.96.0.10",
            &internal,
            vip,
            format!("forward {CATALOG}/version-v2"),
        ),
        (
            "unknown host falls back to the destination",
            "whatever.local",
            &none,
            vip,
            format!("forward {CATALOG}/version-v1"),
        ),
        (
            "other namespace without routes",
            "reviews.prod",
            &none,
            vip,
            "forward reviews.prod.svc.cluster.local".into(),
        ),
        (
            "unknown everything",
            "nobody",
            &none,
            unknown,
            "fail 502".into(),
        ),
        (
            "wildcard host",
            "a.wild.example.com",
            &none,
            unknown,
            "forward api.example.com".into(),
        ),
    ];
    for (name, authority, headers, dst, expected) in cases {
        let routed = route(&m, &info(authority, "/", headers), dst);
        assert_eq!(outcome(&routed), expected, "{name}");
    }
}

#[test]
fn uri_matches_actions_and_errors() {
    let m = model();
    let vip: SocketAddr = "10.96.0.10:80".parse().unwrap();
    let none = HeaderMap::new();
    const CATALOG: &str = "catalog.shop.svc.cluster.local";
    let cases = [
        ("/api/v1/items", format!("forward {CATALOG}/version-v1")),
        ("/exact", format!("forward {CATALOG}/version-v2")),
        ("/exact/more", format!("forward {CATALOG}/version-v1")),
        ("/items/42", format!("forward {CATALOG}/version-v2")),
        ("/items/42x", format!("forward {CATALOG}/version-v1")),
        (
            "/old/page",
            "redirect 301 http://other.example.com/new".to_string(),
        ),
        ("/teapot", "respond 418 short and stout".to_string()),
    ];
    for (path, expected) in cases {
        let routed = route(&m, &info("catalog", path, &none), vip);
        assert_eq!(outcome(&routed), expected, "{path}");
    }
    let routed = route(&m, &info("catalog", "/api/v1/items", &none), vip);
    assert_eq!(routed.matched_prefix, Some("/api/v1"));
    let rewrite = routed.rule.unwrap().rewrite.as_ref().unwrap();
    assert_eq!(
        rewrite_path(rewrite, routed.matched_prefix, "/api/v1/items", Some("a=1")),
        "/v1/items?a=1"
    );
}

#[test]
fn missing_and_empty_subsets_fail_naming_the_subset() {
    let m = model();
    let snap = crate::config::Snapshot::new(1, m);
    let vip: SocketAddr = "10.96.0.10:80".parse().unwrap();
    let none = HeaderMap::new();
    for (path, needle) in [("/gone", "\"nope\""), ("/empty", "/empty")] {
        let routed = route(&snap.model, &info("catalog", path, &none), vip);
        let Action::Forward { target, .. } = &routed.action else {
            panic!("{path}: {routed:?}")
        };
        let err = crate::destination::resolve(&snap, target, vip).unwrap_err();
        assert_eq!(crate::http::respond::status(&err), 503, "{path}");
        assert!(err.to_string().contains(needle), "{path}: {err}");
    }
}

#[test]
fn the_host_of_an_authority() {
    for (authority, host) in [
        ("a:80", "a"),
        ("a", "a"),
        ("[fd00::1]:80", "fd00::1"),
        ("a.b:x", "a.b:x"),
    ] {
        assert_eq!(strip_port(authority), host);
    }
}

#[test]
fn rewrites() {
    let prefix = |uri: &str| Rewrite::Prefix {
        uri: Some(uri.into()),
        authority: None,
    };
    let regex = Rewrite::Regex {
        pattern: regex::Regex::new("^/service/([^/]+)(/.*)$").unwrap(),
        rewrite: "$2/instance/$1".into(),
        authority: None,
    };
    let cases = [
        (prefix("/v2"), Some("/api"), "/api/items", None, "/v2/items"),
        (
            prefix("/"),
            Some("/api"),
            "/api/items",
            Some("q=1"),
            "/items?q=1",
        ),
        (prefix("/"), Some("/api"), "/api", None, "/"),
        (prefix("/whole"), None, "/exact", None, "/whole"),
        (
            regex,
            None,
            "/service/foo/v1/api",
            None,
            "/v1/api/instance/foo",
        ),
    ];
    for (rw, matched, path, query, expected) in cases {
        assert_eq!(rewrite_path(&rw, matched, path, query), expected, "{path}");
    }
}

const STICKY: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - route:
    - {destination: {host: catalog, subset: version-v1}, weight: 90}
    - {destination: {host: catalog, subset: version-v2}, weight: 10}
---
apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  sticky: {header: x-user-id}
"#;

#[test]
fn a_sticky_user_gets_the_destination_of_their_bucket_every_time() {
    let yaml = MESH.split("---").take(4).collect::<Vec<_>>().join("---") + "---" + STICKY;
    let mut set = load_str("mesh.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let workload = Workload {
        namespace: "shop".into(),
        labels: Default::default(),
        cluster_domain: Default::default(),
    };
    let m = Model::compile(&set.resources, &workload);
    let vip: SocketAddr = "10.96.0.10:80".parse().unwrap();
    let mut on_v2 = 0;
    for u in 0..1000 {
        let mut headers = HeaderMap::new();
        headers.insert("x-user-id", format!("user-{u}").parse().unwrap());
        let first = outcome(&route(&m, &info("catalog", "/", &headers), vip));
        for _ in 0..5 {
            let again = outcome(&route(&m, &info("catalog", "/", &headers), vip));
            assert_eq!(again, first, "user-{u}");
        }
        on_v2 += usize::from(first.ends_with("version-v2"));
    }
    assert!((70..=130).contains(&on_v2), "{on_v2} of 1000 on v2");
}
