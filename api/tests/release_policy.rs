//! ReleasePolicy: each field's validation error (file, document, field path), and the
//! compiled release the proxy reads (sticky key, fallback targets, access-log fields).

use sluice_api::model::release::StickyKey;
use sluice_api::model::routes::SubsetRef;
use sluice_api::model::{Model, Workload};
use sluice_api::{Severity, load_str, validate};

fn rp(spec: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: ReleasePolicy\nmetadata: {{name: myapp, namespace: shop}}\nspec:\n{spec}"
    )
}

/// `(severity, "file: doc N", path, message)` of every finding.
fn findings(yaml: &str) -> Vec<(Severity, String, String, String)> {
    let mut set = load_str("gray.yaml", yaml);
    validate::validate(&mut set);
    set.diagnostics
        .into_iter()
        .map(|d| {
            let origin = d.origin.as_ref().map(ToString::to_string);
            (
                d.severity,
                origin.unwrap_or_default(),
                d.path.unwrap_or_default(),
                d.message,
            )
        })
        .collect()
}

#[test]
fn each_field_reports_its_error() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("  host: myapp\n  sticky: {header: x-user-id}\n", "", ""),
        (
            "  host: myapp\n  sticky: {cookie: {name: gray-user, ttl: 720h, attributes: [Secure, SameSite=Lax]}}\n  fallback: {subsets: [{from: v2, to: v1}]}\n  accessLog: {headers: [x-swimlane]}\n",
            "",
            "",
        ),
        (
            "  sticky: {clientAddress: true}\n",
            "spec.host",
            "host is required",
        ),
        ("  host: \"*.shop\"\n", "spec.host", "is a wildcard"),
        ("  host: my_app\n", "spec.host", "not a valid host"),
        (
            "  host: myapp\n  sticky: {}\n",
            "spec.sticky",
            "exactly one of header, cookie and clientAddress",
        ),
        (
            "  host: myapp\n  sticky: {header: x-user-id, clientAddress: true}\n",
            "spec.sticky",
            "exactly one",
        ),
        (
            "  host: myapp\n  sticky: {header: \"x user\"}\n",
            "spec.sticky.header",
            "not a valid header name",
        ),
        (
            "  host: myapp\n  sticky: {clientAddress: false}\n",
            "spec.sticky.clientAddress",
            "names no key",
        ),
        (
            "  host: myapp\n  sticky: {cookie: {name: \"a;b\"}}\n",
            "spec.sticky.cookie.name",
            "not a valid cookie name",
        ),
        (
            "  host: myapp\n  sticky: {cookie: {name: u, path: app}}\n",
            "spec.sticky.cookie.path",
            "not a cookie path",
        ),
        (
            "  host: myapp\n  sticky: {cookie: {name: u, ttl: 5y}}\n",
            "spec.sticky.cookie.ttl",
            "unknown unit",
        ),
        (
            "  host: myapp\n  sticky: {cookie: {name: u, attributes: [\"Secure; HttpOnly\"]}}\n",
            "spec.sticky.cookie.attributes[0]",
            "not a cookie attribute",
        ),
        (
            "  host: myapp\n  sticky: {cookie: {name: u, attributes: [Max-Age=5]}}\n",
            "spec.sticky.cookie.attributes[0]",
            "set from ttl and path",
        ),
        (
            "  host: myapp\n  sticky: {user: x}\n",
            "spec.sticky.user",
            "unknown field",
        ),
        (
            "  host: myapp\n  fallback: {subsets: []}\n",
            "spec.fallback.subsets",
            "no subsets",
        ),
        (
            "  host: myapp\n  fallback: {subsets: [{from: v2}]}\n",
            "spec.fallback.subsets[0].to",
            "to is required",
        ),
        (
            "  host: myapp\n  fallback: {subsets: [{to: v1}]}\n",
            "spec.fallback.subsets[0].from",
            "from is required",
        ),
        (
            "  host: myapp\n  fallback: {subsets: [{from: v2, to: v2}]}\n",
            "spec.fallback.subsets[0].to",
            "cannot fall back to itself",
        ),
        (
            "  host: myapp\n  fallback: {subsets: [{from: v2, to: v1}, {from: v2, to: v3}]}\n",
            "spec.fallback.subsets[1].from",
            "already has a fallback",
        ),
        (
            "  host: myapp\n  fallback: {responseHeader: \"x:y\", subsets: [{from: v2, to: v1}]}\n",
            "spec.fallback.responseHeader",
            "not a valid header name",
        ),
        (
            "  host: myapp\n  accessLog: {headers: []}\n",
            "spec.accessLog.headers",
            "no headers",
        ),
        (
            "  host: myapp\n  accessLog: {headers: [x-swimlane, X-Swimlane]}\n",
            "spec.accessLog.headers[1]",
            "listed twice",
        ),
        (
            "  host: myapp\n  accessLog: {headers: [\"a b\"]}\n",
            "spec.accessLog.headers[0]",
            "not a valid header name",
        ),
        (
            "  host: myapp\n  protectedHeaders:\n    gateways: [istio-system/edge]\n    headers: [x-gray-*, x-swimlane]\n    token: {header: x-gray-auth, secretFile: /etc/gray/token}\n    trustedCidrs: [10.0.0.0/8, 192.0.2.1]\n    jwt: {jwksFile: /etc/gray/jwks.json, issuer: https://i.example, claim: groups, values: [gray]}\n",
            "",
            "",
        ),
        (
            "  host: myapp\n  protectedHeaders: {}\n",
            "spec.protectedHeaders.gateways",
            "no gateways",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [a/b/c]}\n",
            "spec.protectedHeaders.gateways[0]",
            "not a Gateway name",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], headers: [x-gray-*, \"*\"]}\n",
            "spec.protectedHeaders.headers[1]",
            "not a header name or a prefix",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], token: {header: \"x:y\", secretFile: /t}}\n",
            "spec.protectedHeaders.token.header",
            "not a valid header name",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], token: {header: x-t, secretFile: token}}\n",
            "spec.protectedHeaders.token.secretFile",
            "not an absolute file path",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], trustedCidrs: [10.0.0.0/33]}\n",
            "spec.protectedHeaders.trustedCidrs[0]",
            "not an address or CIDR",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], jwt: {jwksFile: /j, values: [a]}}\n",
            "spec.protectedHeaders.jwt.claim",
            "claim is required",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], jwt: {jwksFile: /j, claim: c}}\n",
            "spec.protectedHeaders.jwt.values",
            "no values",
        ),
        (
            "  host: myapp\n  protectedHeaders: {gateways: [edge], jwt: {jwksFile: j.json, claim: c, values: [a]}}\n",
            "spec.protectedHeaders.jwt.jwksFile",
            "not an absolute file path",
        ),
    ];
    for (spec, path, message) in cases {
        let yaml = format!("{}---\n{}", rp("  host: other\n"), rp(spec));
        let found = findings(&yaml);
        if message.is_empty() {
            assert!(
                found.iter().all(|(s, ..)| *s != Severity::Error),
                "no errors expected for\n{spec}\ngot {found:#?}"
            );
            continue;
        }
        assert!(
            found.iter().any(|(s, origin, p, m)| *s == Severity::Error
                && origin == "gray.yaml: doc 2"
                && p == path
                && m.contains(message)),
            "expected an error at gray.yaml: doc 2 `{path}` containing {message:?} for\n{spec}\ngot {found:#?}"
        );
    }
}

#[test]
fn an_unknown_sluice_kind_names_release_policy() {
    let found =
        findings("apiVersion: sluice.dev/v1alpha1\nkind: Release\nmetadata: {name: r}\nspec: {}\n");
    assert!(
        found
            .iter()
            .any(|(s, _, _, m)| *s == Severity::Error && m.contains("MeshConfig and ReleasePolicy")),
        "{found:#?}"
    );
}

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: myapp, namespace: shop}
spec:
  hosts: [myapp.shop.svc.cluster.local]
  addresses: [10.9.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: myapp, namespace: shop}
spec:
  host: myapp
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

#[test]
fn the_first_policy_for_a_host_compiles_with_its_fallback_resolved() {
    let yaml = format!(
        "{MESH}---\n{}---\n{}",
        rp(
            "  host: myapp\n  sticky: {header: X-User-Id}\n  fallback: {subsets: [{from: v2, to: v1}, {from: v1, to: v9}]}\n  accessLog: {headers: [X-Swimlane]}\n"
        ),
        rp("  host: myapp.shop.svc.cluster.local\n  sticky: {clientAddress: true}\n"),
    );
    let mut set = load_str("gray.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:#?}", set.diagnostics);
    let workload = Workload {
        namespace: "shop".into(),
        ..Workload::default()
    };
    let model = Model::compile(&set.resources, &workload);
    let release = model.releases.get("myapp.shop.svc.cluster.local").unwrap();
    assert_eq!(release.name, "shop/myapp");
    assert!(matches!(&release.sticky, Some(StickyKey::Header(h)) if h == "x-user-id"));
    assert_eq!(release.access_log_headers, ["x-swimlane"]);
    let fallback = release.fallback.as_ref().unwrap();
    assert_eq!(fallback.header, "x-sluice-fallback");
    assert_eq!(fallback.of("v2").unwrap().subset, SubsetRef::Found(0));
    assert_eq!(fallback.of("v1").unwrap().subset, SubsetRef::Missing);
    assert!(fallback.of("v3").is_none());
    let dump = serde_json::to_value(&model).unwrap();
    assert!(
        dump["releases"]["hosts"]["myapp.shop.svc.cluster.local"]["sticky"].is_object(),
        "{}",
        dump["releases"]
    );
}

#[test]
fn a_second_policy_for_a_host_and_an_undefined_fallback_subset_are_warned() {
    let yaml = format!(
        "{MESH}---\n{}---\n{}",
        rp("  host: myapp\n  fallback: {subsets: [{from: v3, to: v1}]}\n"),
        rp("  host: myapp.shop.svc.cluster.local\n  sticky: {clientAddress: true}\n"),
    );
    let found = findings(&yaml);
    let warned = |path: &str, text: &str| {
        found
            .iter()
            .any(|(s, _, p, m)| *s == Severity::Warning && p == path && m.contains(text))
    };
    assert!(
        warned("spec.fallback.subsets[0].from", "defines subset v3"),
        "{found:#?}"
    );
    assert!(
        !warned("spec.fallback.subsets[0].to", "defines subset"),
        "{found:#?}"
    );
    assert!(
        warned("spec.host", "only the first one, ReleasePolicy shop/myapp"),
        "{found:#?}"
    );
}
