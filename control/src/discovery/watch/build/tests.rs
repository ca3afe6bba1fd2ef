//! Rebuilding the mesh config from watched objects.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{ObjectReference, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort};
use serde_json::json;
use sluice_api::Spec;

use super::*;
use crate::discovery::fixtures;

fn custom(kind: &str, name: &str, created: &str, spec: serde_json::Value) -> Arc<DynamicObject> {
    let object = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": spec,
    });
    Arc::new(serde_json::from_value(object).unwrap())
}

fn shop() -> Objects {
    let (services, slices, pods) = fixtures::shop();
    Objects {
        services: services.into_iter().map(Arc::new).collect(),
        slices: slices.into_iter().map(Arc::new).collect(),
        pods: pods.into_iter().map(Arc::new).collect(),
        custom: Vec::new(),
    }
}

fn titles(built: &Built) -> Vec<String> {
    built.resources.iter().map(|r| r.title()).collect()
}

#[test]
fn resources_are_published_oldest_object_first_then_by_namespace_and_name() {
    let route =
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]});
    let mut objects = shop();
    objects.custom = vec![
        custom(
            "VirtualService",
            "a-newest",
            "2026-12-01T00:00:00Z",
            route.clone(),
        ),
        custom(
            "VirtualService",
            "z-oldest",
            "2020-01-01T00:00:00Z",
            route.clone(),
        ),
        custom(
            "VirtualService",
            "b-same-age",
            "2026-11-30T10:00:00Z",
            route,
        ),
    ];
    let built = build(
        &objects,
        &translate::Settings::default(),
        &mut Translations::default(),
    );
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let titles = titles(&built);
    let at = |title: &str| titles.iter().position(|t| t == title).expect(title);
    let order = [
        // Objects without a creationTimestamp (the fixtures' other Services) come first.
        at("ServiceEntry shop/legacy-db"),
        at("VirtualService shop/z-oldest"),
        // reviews was created at 2026-11-30T10:00:00Z too: the same age, then by name.
        at("VirtualService shop/b-same-age"),
        at("ServiceEntry shop/reviews"),
        at("VirtualService shop/a-newest"),
    ];
    assert!(order.is_sorted(), "{titles:?}");
    assert_eq!(order[4], titles.len() - 1);
}

#[test]
fn a_bad_object_is_rejected_with_its_field_and_the_rest_is_kept() {
    let mut objects = shop();
    let bad_regex = json!({"hosts": ["reviews"], "http": [{
        "match": [{"uri": {"regex": "(unclosed"}}],
        "route": [{"destination": {"host": "reviews"}}]
    }]});
    let good = json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]});
    objects.custom = vec![
        custom("VirtualService", "bad", "2026-12-01T00:00:00Z", bad_regex),
        custom("DestinationRule", "reviews", "2026-12-01T00:00:00Z", good),
    ];
    let built = build(
        &objects,
        &translate::Settings::default(),
        &mut Translations::default(),
    );
    let [rejection] = built.rejected.as_slice() else {
        panic!("one rejection expected: {:?}", built.rejected)
    };
    assert_eq!(rejection.object, "VirtualService shop/bad");
    assert!(
        rejection
            .errors
            .iter()
            .any(|e| e.starts_with("spec.http[0].match[0].uri.regex: ")),
        "{:?}",
        rejection.errors
    );
    let titles = titles(&built);
    assert!(titles.contains(&"DestinationRule shop/reviews".to_string()));
    assert!(titles.contains(&"ServiceEntry shop/reviews".to_string()));
    assert!(!titles.iter().any(|t| t.contains("bad")));
    assert!(
        built
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.subject.as_deref() == Some("VirtualService shop/bad"))
    );
}

#[test]
fn a_service_with_errors_is_rejected_by_its_kind_and_name() {
    let mut objects = shop();
    let mut broken = Service {
        metadata: ObjectMeta {
            name: Some("broken".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.999".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    objects.services.push(Arc::new(broken.clone()));
    let built = build(
        &objects,
        &translate::Settings::default(),
        &mut Translations::default(),
    );
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(built.rejected[0].object, "Service shop/broken");
    assert!(built.rejected[0].errors[0].starts_with("spec.clusterIP: "));

    broken.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.99".into());
    objects.services.pop();
    objects.services.push(Arc::new(broken));
    let built = build(
        &objects,
        &translate::Settings::default(),
        &mut Translations::default(),
    );
    assert!(built.rejected.is_empty());
    assert!(titles(&built).contains(&"ServiceEntry shop/broken".to_string()));
}

/// `services` Services of `per_service` ready endpoints each, one slice and one Pod per
/// endpoint, in 100 namespaces.
fn cluster(services: usize, per_service: usize) -> Objects {
    let mut objects = Objects::default();
    for s in 0..services {
        let namespace = format!("ns-{}", s % 100);
        let name = format!("svc-{s}");
        let meta = |name: String, labels: BTreeMap<String, String>| ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        };
        objects.services.push(Arc::new(Service {
            metadata: meta(name.clone(), BTreeMap::new()),
            spec: Some(ServiceSpec {
                cluster_ip: Some(format!("10.96.{}.{}", s / 250, s % 250 + 1)),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }));
        let mut endpoints = Vec::new();
        for e in 0..per_service {
            let pod = format!("{name}-{e}");
            let n = s * per_service + e;
            endpoints.push(Endpoint {
                addresses: vec![format!(
                    "10.{}.{}.{}",
                    100 + n / 65536,
                    n / 256 % 256,
                    n % 256
                )],
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some(pod.clone()),
                    namespace: Some(namespace.clone()),
                    ..ObjectReference::default()
                }),
                ..Endpoint::default()
            });
            let labels = BTreeMap::from([
                ("app".to_string(), name.clone()),
                ("version".to_string(), format!("v{}", e % 2)),
            ]);
            objects.pods.push(Arc::new(Pod {
                metadata: meta(pod, labels),
                ..Pod::default()
            }));
        }
        let labels = BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), name.clone())]);
        objects.slices.push(Arc::new(EndpointSlice {
            metadata: meta(format!("{name}-abcde"), labels),
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..EndpointPort::default()
            }]),
        }));
    }
    objects
}

#[test]
fn a_large_cluster_rebuilds_whole() {
    let objects = cluster(200, 5);
    let built = build(
        &objects,
        &translate::Settings::default(),
        &mut Translations::default(),
    );
    assert_eq!(built.resources.len(), 200);
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let Spec::ServiceEntry(entry) = &built.resources[0].spec else {
        panic!("a ServiceEntry expected")
    };
    assert_eq!(entry.endpoints.len(), 5);
    assert_eq!(entry.endpoints[1].labels["version"], "v1");
}

#[test]
fn only_the_services_whose_objects_changed_are_translated_again() {
    let mut objects = cluster(20, 2);
    let settings = translate::Settings::default();
    let mut translations = Translations::default();
    let first = build(&objects, &settings, &mut translations);
    assert_eq!(translations.made(), 20);
    build(&objects, &settings, &mut translations);
    assert_eq!(translations.made(), 0, "nothing changed");

    // A Pod relabelled (a new object), a slice changed, a Service deleted: those two
    // Services are translated again, and the result is what a full rebuild makes.
    let mut pod = (*objects.pods[0]).clone();
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert("version".into(), "v9".into());
    objects.pods[0] = Arc::new(pod);
    let mut slice = (*objects.slices[5]).clone();
    slice.endpoints.pop();
    objects.slices[5] = Arc::new(slice);
    let removed = objects.services.remove(10);
    let incremental = build(&objects, &settings, &mut translations);
    assert_eq!(translations.made(), 2);
    let whole = build(&objects, &settings, &mut Translations::default());
    assert_eq!(incremental.resources, whole.resources);
    assert_ne!(incremental.resources, first.resources);
    let Spec::ServiceEntry(entry) = &incremental.resources[0].spec else {
        panic!("a ServiceEntry expected")
    };
    assert_eq!(entry.endpoints[0].labels["version"], "v9");

    // The deleted Service was forgotten: back, it is translated again.
    objects.services.insert(10, removed);
    build(&objects, &settings, &mut translations);
    assert_eq!(translations.made(), 1);
}

/// The figure behind "rebuilding everything is fast enough": run with
/// `cargo test -p sluice-control --lib rebuild_time -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn rebuild_time_of_10000_services_and_50000_endpoints() {
    let objects = cluster(10_000, 5);
    let settings = translate::Settings::default();
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let built = build(&objects, &settings, &mut Translations::default());
        times.push(started.elapsed());
        assert_eq!(built.resources.len(), 10_000);
    }
    println!("full rebuild of 10,000 Services / 50,000 endpoints: {times:?}");
    let mut translations = Translations::default();
    build(&objects, &settings, &mut translations);
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let built = build(&objects, &settings, &mut translations);
        times.push(started.elapsed());
        assert_eq!((built.resources.len(), translations.made()), (10_000, 0));
    }
    println!("rebuild with every translation reused: {times:?}");
}
