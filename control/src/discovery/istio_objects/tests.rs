use serde_json::{Value, json};
use sluice_api::diagnostic::Severity;

use super::*;

/// A VirtualService as the API server serves it to a watch: server-set metadata,
/// managedFields and a status included.
fn served_virtual_service() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"networking.istio.io/v1\"}\n"
            },
            "creationTimestamp": "2026-11-30T10:00:00Z",
            "finalizers": ["example.com/keep"],
            "generation": 3,
            "labels": {"app": "reviews"},
            "managedFields": [{
                "apiVersion": "networking.istio.io/v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {".": {}, "f:hosts": {}, "f:http": {}}},
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "time": "2026-11-30T10:00:00Z"
            }],
            "name": "reviews",
            "namespace": "shop",
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "reviews-config",
                "uid": "11111111-2222-4333-8444-555555555555"
            }],
            "resourceVersion": "90210",
            "uid": "9b8c7d6e-0000-4000-8000-000000000001"
        },
        "spec": {
            "hosts": ["reviews"],
            "http": [{
                "route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}
                ]
            }]
        },
        "status": {
            "observedGeneration": 3,
            "validationMessages": []
        }
    })
}

fn object(api_version: &str, kind: &str, namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": "u", "resourceVersion": "1"},
        "spec": spec,
    })
}

fn subjects_and_paths(set: &ConfigSet) -> Vec<(Severity, Option<&str>, Option<&str>)> {
    set.diagnostics
        .iter()
        .map(|d| (d.severity, d.subject.as_deref(), d.path.as_deref()))
        .collect()
}

#[test]
fn an_object_as_served_loads_with_server_fields_ignored() {
    let set = load_object(&served_virtual_service());
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    let [r] = set.resources.as_slice() else {
        panic!("one resource expected: {:?}", set.resources)
    };
    assert_eq!(r.title(), "VirtualService shop/reviews");
    assert_eq!(
        r.meta.labels.get("app").map(String::as_str),
        Some("reviews")
    );
    assert_eq!(&*r.origin.file, "kubernetes VirtualService shop/reviews");
    let Spec::VirtualService(vs) = &r.spec else {
        panic!("not a VirtualService")
    };
    assert_eq!(vs.http[0].route[1].weight, Some(10));
}

#[test]
fn every_served_version_and_kind_loads() {
    let se = json!({"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}], "resolution": "DNS", "location": "MESH_EXTERNAL"});
    let dr = json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]});
    let gw = json!({"selector": {"istio": "ingressgateway"}, "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]});
    let vs =
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]});
    let mc = json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}});
    let mut cases = Vec::new();
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let api = format!("networking.istio.io/{version}");
        cases.push((api.clone(), "ServiceEntry", se.clone()));
        cases.push((api.clone(), "DestinationRule", dr.clone()));
        cases.push((api.clone(), "Gateway", gw.clone()));
        cases.push((api, "VirtualService", vs.clone()));
    }
    cases.push(("sluice.dev/v1alpha1".into(), "MeshConfig", mc));
    for (api, kind, spec) in cases {
        let set = load_object(&object(&api, kind, "shop", "x", spec));
        assert!(
            set.diagnostics.is_empty(),
            "{api} {kind}: {:?}",
            set.diagnostics
        );
        assert_eq!(set.resources.len(), 1, "{api} {kind}");
        assert_eq!(set.resources[0].spec.kind(), kind);
    }
}

#[test]
fn a_bad_object_is_reported_and_left_out() {
    let cases = [
        (
            // Strict loading: a field sluice does not know.
            object(
                "networking.istio.io/v1",
                "VirtualService",
                "shop",
                "typo",
                json!({"hosts": ["reviews"], "http": [{"rout": []}]}),
            ),
            "VirtualService shop/typo",
            "spec.http[0].rout",
        ),
        (
            // Validation: weights are relative, but not all of them may be 0.
            object(
                "networking.istio.io/v1beta1",
                "VirtualService",
                "shop",
                "weights",
                json!({"hosts": ["reviews"], "http": [{"route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 0},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 0}
                ]}]}),
            ),
            "VirtualService shop/weights",
            "spec.http[0].route",
        ),
        (
            object(
                "networking.istio.io/v1alpha3",
                "ServiceEntry",
                "shop",
                "unnamed-port",
                json!({"hosts": ["db.example.com"], "ports": [{"number": 5432, "protocol": "TCP"}]}),
            ),
            "ServiceEntry shop/unnamed-port",
            "spec.ports[0].name",
        ),
    ];
    for (object, subject, path) in cases {
        let set = load_object(&object);
        assert!(set.resources.is_empty(), "{subject} kept");
        let errors: Vec<_> = set.errors().collect();
        assert!(!errors.is_empty(), "{subject}: {:?}", set.diagnostics);
        assert!(
            errors.iter().all(|d| d.subject.as_deref() == Some(subject)
                && d.origin.as_ref().is_some_and(|o| o.file.contains(subject))),
            "{subject}: {errors:?}"
        );
        assert!(
            errors.iter().any(|d| d.path.as_deref() == Some(path)),
            "{subject}: no error at {path}: {errors:?}"
        );
    }
}

#[test]
fn validation_failure_says_the_object_is_left_out() {
    let set = load_object(&object(
        "networking.istio.io/v1",
        "ServiceEntry",
        "shop",
        "unnamed-port",
        json!({"hosts": ["db.example.com"], "ports": [{"number": 5432, "protocol": "TCP"}]}),
    ));
    assert_eq!(
        subjects_and_paths(&set),
        [
            (
                Severity::Error,
                Some("ServiceEntry shop/unnamed-port"),
                Some("spec.ports[0].name")
            ),
            (Severity::Note, Some("ServiceEntry shop/unnamed-port"), None),
        ]
    );
    assert!(set.diagnostics[1].message.contains("left out"));
}

#[test]
fn one_bad_object_never_blocks_the_others() {
    let objects = [
        served_virtual_service(),
        object(
            "networking.istio.io/v1",
            "DestinationRule",
            "shop",
            "bad",
            json!({"host": "reviews", "subsets": [{"name": "v1"}, {"name": "v1"}]}),
        ),
        object(
            "networking.istio.io/v1",
            "DestinationRule",
            "shop",
            "reviews",
            json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}),
        ),
    ];
    let mut all = ConfigSet::default();
    for o in &objects {
        all.extend(load_object(o));
    }
    let titles: Vec<String> = all.resources.iter().map(Resource::title).collect();
    assert_eq!(
        titles,
        [
            "VirtualService shop/reviews",
            "DestinationRule shop/reviews"
        ]
    );
    assert!(
        all.errors()
            .all(|d| d.subject.as_deref() == Some("DestinationRule shop/bad"))
    );
    assert!(all.has_errors());
}

#[test]
fn kinds_sluice_does_not_act_on_are_skipped_with_a_diagnostic() {
    let cases = [
        ("networking.istio.io/v2", "VirtualService", Severity::Error),
        ("networking.istio.io/v1", "Sidecar", Severity::Warning),
        (
            "networking.istio.io/v1alpha3",
            "EnvoyFilter",
            Severity::Warning,
        ),
        ("v1", "Service", Severity::Note),
    ];
    for (api, kind, severity) in cases {
        let set = load_object(&object(api, kind, "shop", "x", json!({})));
        assert!(set.resources.is_empty(), "{api} {kind}");
        let found: Vec<Severity> = set.diagnostics.iter().map(|d| d.severity).collect();
        assert_eq!(found, [severity], "{api} {kind}: {:?}", set.diagnostics);
    }
}

#[test]
fn analyze_warns_across_objects_and_scopes_mesh_configs_by_namespace() {
    let objects = [
        served_virtual_service(),
        object(
            "sluice.dev/v1alpha1",
            "MeshConfig",
            "sluice-system",
            "mesh",
            json!({}),
        ),
        object(
            "sluice.dev/v1alpha1",
            "MeshConfig",
            "shop",
            "b-shop",
            json!({}),
        ),
        object(
            "sluice.dev/v1alpha1",
            "MeshConfig",
            "shop",
            "a-shop",
            json!({}),
        ),
    ];
    let resources: Vec<Resource> = objects
        .iter()
        .flat_map(|o| load_object(o).resources)
        .collect();
    assert_eq!(resources.len(), 4);
    let diagnostics = analyze(&resources);
    let found: Vec<(Severity, Option<&str>, Option<&str>)> = diagnostics
        .iter()
        .map(|d| (d.severity, d.subject.as_deref(), d.path.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            // Neither subset is defined by a DestinationRule.
            (
                Severity::Warning,
                Some("VirtualService shop/reviews"),
                Some("spec.http[0].route[0].destination.subset")
            ),
            (
                Severity::Warning,
                Some("VirtualService shop/reviews"),
                Some("spec.http[0].route[1].destination.subset")
            ),
            // The root namespace's MeshConfig and shop's first are fine; shop's second is not.
            (Severity::Error, Some("MeshConfig shop/b-shop"), None),
        ]
    );
}
