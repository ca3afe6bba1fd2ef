use std::collections::BTreeMap;

use sluice_api::validate::validate;

use super::*;
use crate::discovery::fixtures::{self, parse, parse_all};

fn run(service: &str, slices: &str, pods: &str) -> ConfigSet {
    run_with(service, slices, pods, &Settings::default())
}

fn run_with(service: &str, slices: &str, pods: &str, settings: &Settings) -> ConfigSet {
    let service: Service = parse(service);
    let slices: Vec<EndpointSlice> = parse_all(slices);
    let pods: Vec<Pod> = parse_all(pods);
    let slices: Vec<&EndpointSlice> = slices.iter().collect();
    translate(&service, &slices, &Pods::new(&pods), settings)
}

fn entry(set: &ConfigSet) -> &ServiceEntry {
    match set.resources.as_slice() {
        [
            Resource {
                spec: Spec::ServiceEntry(se),
                ..
            },
        ] => se,
        other => panic!(
            "expected one ServiceEntry, got {other:?}; {:?}",
            set.diagnostics
        ),
    }
}

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ports<const N: usize>(pairs: [(&str, u32); N]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn messages(set: &ConfigSet) -> Vec<String> {
    set.diagnostics.iter().map(ToString::to_string).collect()
}

#[test]
fn cluster_ip_service_becomes_a_static_service_entry() {
    let set = run(fixtures::REVIEWS, fixtures::REVIEWS_SLICES, fixtures::PODS);
    let v1_labels = labels([
        ("app", "reviews"),
        ("pod-template-hash", "7d9f8c"),
        ("topology.kubernetes.io/region", "eu-west-1"),
        ("version", "v1"),
    ]);
    let v2_labels = labels([
        ("app", "reviews"),
        ("pod-template-hash", "5c6b7a"),
        ("version", "v2"),
    ]);
    let expected = ServiceEntry {
        hosts: vec!["reviews.shop.svc.cluster.local".into()],
        addresses: vec!["10.96.12.34".into(), "fd00:10:96::1234".into()],
        ports: vec![
            ServicePort {
                number: 9080,
                protocol: Some("HTTP".into()),
                name: Some("http".into()),
                ..Default::default()
            },
            ServicePort {
                number: 9090,
                protocol: Some("HTTP2".into()),
                name: Some("api".into()),
                ..Default::default()
            },
        ],
        location: Some(Location::MeshInternal),
        resolution: Some(Resolution::Static),
        endpoints: vec![
            // Ready, in two slices: once, with the first slice's port for `http`.
            WorkloadEntry {
                address: "10.244.1.5".into(),
                ports: ports([("http", 8080), ("api", 19090)]).into(),
                labels: v1_labels.into(),
                locality: Some("eu-west-1/eu-west-1a".into()),
                ..Default::default()
            },
            // `ready` unset counts as ready; no region label, so no locality.
            WorkloadEntry {
                address: "10.244.2.7".into(),
                ports: ports([("http", 8081), ("api", 19090)]).into(),
                labels: v2_labels.into(),
                ..Default::default()
            },
            // Not ready (starting) and serving-but-terminating endpoints are left out.
        ],
        export_to: vec!["shop".into(), "istio-system".into()],
        ..Default::default()
    };
    assert_eq!(entry(&set), &expected);
    let r = &set.resources[0];
    assert_eq!(r.title(), "ServiceEntry shop/reviews");
    assert_eq!(r.meta.labels, labels([("app", "reviews")]));
    assert_eq!(&*r.origin.file, "kubernetes Service shop/reviews");
    assert_eq!(
        messages(&set),
        [
            "kubernetes Service shop/reviews: doc 1 (Service shop/reviews): spec.ports[2].protocol: UDP port 8125 skipped: sluice proxies TCP only"
        ]
    );
    let mut validated = set.clone();
    validate(&mut validated);
    assert!(!validated.has_errors(), "{:?}", validated.diagnostics);
}

#[test]
fn headless_service_passes_through_with_its_endpoints_listed() {
    let set = run(fixtures::RATINGS, fixtures::RATINGS_SLICE, fixtures::PODS);
    let se = entry(&set);
    assert_eq!(se.resolution, Some(Resolution::None));
    assert!(se.addresses.is_empty());
    assert_eq!(se.location, Some(Location::MeshInternal));
    let addresses: Vec<&str> = se.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["10.244.4.20", "10.244.4.21"]);
    assert_eq!(
        se.endpoints[1]
            .labels
            .get("statefulset.kubernetes.io/pod-name"),
        Some(&"ratings-1".to_string())
    );
    assert_eq!(*se.endpoints[0].ports, ports([("tcp-db", 5000)]));
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
}

#[test]
fn external_name_service_resolves_its_target_with_dns() {
    let set = run(fixtures::PAYMENTS, "", "");
    let expected = ServiceEntry {
        hosts: vec!["payments.shop.svc.cluster.local".into()],
        ports: vec![ServicePort {
            number: 443,
            protocol: Some("HTTPS".into()),
            name: Some("https".into()),
            ..Default::default()
        }],
        location: Some(Location::MeshExternal),
        resolution: Some(Resolution::Dns),
        endpoints: vec![WorkloadEntry {
            address: "api.payments.example.com".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(entry(&set), &expected);
    let mut validated = set.clone();
    validate(&mut validated);
    assert!(!validated.has_errors(), "{:?}", validated.diagnostics);
}

#[test]
fn external_name_without_ports_is_left_out_with_a_warning() {
    let service = fixtures::PAYMENTS.replace(
        "  ports:\n  - name: https\n    port: 443\n    protocol: TCP\n",
        "",
    );
    let set = run(&service, "", "");
    assert!(set.resources.is_empty());
    assert_eq!(set.diagnostics.len(), 1);
    let d = &set.diagnostics[0];
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.path.as_deref(), Some("spec.ports"));
}

#[test]
fn selectorless_service_reads_its_manual_slice() {
    let set = run(fixtures::LEGACY_DB, fixtures::LEGACY_DB_SLICE, "");
    let se = entry(&set);
    assert_eq!(se.addresses, ["10.96.40.1"]);
    // The unnamed port's number moves to targetPort: endpoints map only named ports.
    assert_eq!(
        se.ports,
        [ServicePort {
            number: 5432,
            target_port: Some(15432),
            ..Default::default()
        }]
    );
    let addresses: Vec<&str> = se.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["192.168.50.10", "192.168.50.11"]);
    assert!(
        se.endpoints
            .iter()
            .all(|e| e.ports.is_empty() && e.labels.is_empty())
    );
    // Kubernetes allows one unnamed port; a user's ServiceEntry needs names. Translated
    // Services are not user config: the proxy loads them without the user-facing validation.
}

#[test]
fn unnamed_port_numbers_that_differ_stay_per_endpoint() {
    let other = fixtures::LEGACY_DB_SLICE
        .replace("legacy-db-1", "legacy-db-2")
        .replace("192.168.50.1", "192.168.60.1")
        .replace("port: 15432", "port: 25432");
    let slices = format!("{}---{other}", fixtures::LEGACY_DB_SLICE);
    let set = run(fixtures::LEGACY_DB, &slices, "");
    let se = entry(&set);
    assert_eq!(se.ports[0].target_port, None);
    let ports: Vec<Option<u32>> = se
        .endpoints
        .iter()
        .map(|e| e.ports.get("").copied())
        .collect();
    assert_eq!(ports, [Some(15432), Some(15432), Some(25432), Some(25432)]);
}

#[test]
fn unnamed_port_equal_to_the_service_port_needs_no_target_port() {
    let slice = fixtures::LEGACY_DB_SLICE.replace("port: 15432", "port: 5432");
    let set = run(fixtures::LEGACY_DB, &slice, "");
    let se = entry(&set);
    assert_eq!(se.ports[0].target_port, None);
    assert!(se.endpoints.iter().all(|e| e.ports.is_empty()));
}

#[test]
fn malformed_cluster_ips_are_reported_and_the_service_left_out() {
    let cases = [
        (
            fixtures::REVIEWS.replace("  - fd00:10:96::1234\n", "  - fd00:zz::1\n"),
            "spec.clusterIPs[1]",
            "\"fd00:zz::1\"",
        ),
        (
            fixtures::RATINGS
                .replace("clusterIP: None", "clusterIP: 10.96.300.1")
                .replace("  clusterIPs:\n  - None\n", ""),
            "spec.clusterIP",
            "\"10.96.300.1\"",
        ),
    ];
    for (service, path, quoted) in cases {
        let set = run(&service, fixtures::REVIEWS_SLICES, fixtures::PODS);
        assert!(set.resources.is_empty(), "{path}");
        let errors: Vec<_> = set.errors().collect();
        assert_eq!(errors.len(), 1, "{path}: {:?}", set.diagnostics);
        assert_eq!(errors[0].path.as_deref(), Some(path));
        assert!(errors[0].message.contains(quoted), "{}", errors[0]);
        assert!(
            errors[0]
                .subject
                .as_deref()
                .unwrap()
                .starts_with("Service shop/")
        );
    }
}

#[test]
fn a_service_without_a_name_is_reported() {
    let service = fixtures::LEGACY_DB.replace("  name: legacy-db\n", "");
    let set = run(&service, "", "");
    assert!(set.resources.is_empty());
    let errors: Vec<_> = set.errors().collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path.as_deref(), Some("metadata.name"));
}

#[test]
fn service_without_tcp_ports_is_left_out() {
    let service = r#"
apiVersion: v1
kind: Service
metadata:
  name: dns
  namespace: shop
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: dns
    port: 53
    protocol: UDP
  - name: udp-metrics
    port: 9153
    protocol: TCP
"#;
    let set = run(service, "", "");
    assert!(set.resources.is_empty());
    let found: Vec<(Severity, Option<&str>)> = set
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.path.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (Severity::Note, Some("spec.ports[0].protocol")),
            (Severity::Note, Some("spec.ports[1]")),
            (Severity::Warning, Some("spec.ports")),
        ]
    );
}

#[test]
fn cluster_domain_is_a_setting() {
    let settings = Settings {
        cluster_domain: "corp.internal".parse().unwrap(),
    };
    let set = run_with(fixtures::LEGACY_DB, "", "", &settings);
    assert_eq!(entry(&set).hosts, ["legacy-db.shop.svc.corp.internal"]);
}

#[test]
fn endpoints_of_unknown_pods_are_kept_without_labels() {
    let set = run(fixtures::REVIEWS, fixtures::REVIEWS_SLICES, "");
    let se = entry(&set);
    assert_eq!(se.endpoints.len(), 2);
    assert!(
        se.endpoints
            .iter()
            .all(|e| e.labels.is_empty() && e.locality.is_none())
    );
}

#[test]
fn fqdn_slices_and_bad_addresses_are_skipped_and_reported() {
    let fqdn = r#"
addressType: FQDN
apiVersion: discovery.k8s.io/v1
endpoints:
- addresses:
  - db.example.com
kind: EndpointSlice
metadata:
  labels:
    kubernetes.io/service-name: legacy-db
  name: legacy-db-fqdn
  namespace: shop
ports:
- port: 15432
"#;
    let bad = fixtures::LEGACY_DB_SLICE.replace("192.168.50.11", "192.168.50.311");
    // Slices are read in name order, whatever order they come in.
    let slices = format!("{fqdn}---{bad}");
    let set = run(fixtures::LEGACY_DB, &slices, "");
    let se = entry(&set);
    let addresses: Vec<&str> = se.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["192.168.50.10"]);
    let found: Vec<(Severity, Option<&str>)> = set
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.path.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (
                Severity::Warning,
                Some("endpointSlices[legacy-db-1].endpoints[1].addresses[0]")
            ),
            (
                Severity::Note,
                Some("endpointSlices[legacy-db-fqdn].addressType")
            ),
        ]
    );
}

#[test]
fn translate_all_pairs_services_with_their_slices_by_label_and_namespace() {
    let (services, mut slices, pods) = fixtures::shop();
    // A slice of a Service of the same name in another namespace is not reviews'.
    let mut elsewhere: EndpointSlice =
        parse_all::<EndpointSlice>(fixtures::REVIEWS_SLICES).remove(0);
    elsewhere.metadata.namespace = Some("other".into());
    elsewhere.endpoints[0].addresses = vec!["10.250.0.1".into()];
    slices.push(elsewhere);
    let set = translate_all(&services, &slices, &Pods::new(&pods), &Settings::default());
    let titles: Vec<String> = set.resources.iter().map(Resource::title).collect();
    assert_eq!(
        titles,
        [
            "ServiceEntry shop/reviews",
            "ServiceEntry shop/ratings",
            "ServiceEntry shop/payments",
            "ServiceEntry shop/legacy-db",
        ]
    );
    let Spec::ServiceEntry(reviews) = &set.resources[0].spec else {
        unreachable!()
    };
    assert!(reviews.endpoints.iter().all(|e| e.address != "10.250.0.1"));
    assert_eq!(reviews.endpoints.len(), 2);
}

#[test]
fn export_to_annotation_is_trimmed_and_split() {
    let service = fixtures::LEGACY_DB.replace(
        "  name: legacy-db\n",
        "  name: legacy-db\n  annotations:\n    networking.istio.io/exportTo: \" . ,other ,\"\n",
    );
    let set = run(&service, "", "");
    assert_eq!(entry(&set).export_to, [".", "other"]);
}
