//! The whole path a cluster takes to a proxy: Kubernetes objects translated, Istio
//! objects loaded, the proxy's view compiled with `Model::compile` as the proxy does.

use std::net::SocketAddr;

use serde_json::json;
use sluice_api::istio::service_entry::Resolution;
use sluice_api::model::{EndpointAddress, Model, Protocol, Service, Workload};

use super::translate::{Pods, Settings, translate_all};
use super::{fixtures, istio_objects, view};

fn compile_for(namespace: &str) -> Model {
    let (services, slices, pods) = fixtures::shop();
    let translated = translate_all(&services, &slices, &Pods::new(&pods), &Settings::default());
    assert!(!translated.has_errors(), "{:?}", translated.diagnostics);
    let rule = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "shop", "resourceVersion": "12"},
        "spec": {"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}}
        ]}
    });
    let mut resources = translated.resources;
    resources.extend(istio_objects::load_object(&rule).resources);
    let workload = Workload {
        namespace: namespace.into(),
        ..Default::default()
    };
    let seen: Vec<_> = view::view(&resources, &workload)
        .into_iter()
        .map(|at| resources[at].clone())
        .collect();
    Model::compile(&seen, &workload)
}

fn service<'m>(model: &'m Model, host: &str) -> &'m Service {
    let id = model.registry.by_host(host).expect(host);
    model.registry.get(id)
}

fn at(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn endpoint_at<'s>(svc: &'s Service, ip: &str) -> Option<(usize, &'s sluice_api::model::Endpoint)> {
    svc.endpoints
        .iter()
        .enumerate()
        .find(|(_, e)| e.address == EndpointAddress::Ip(ip.parse().unwrap()))
}

#[test]
fn a_cluster_ip_service_is_found_by_vip_with_ports_resolved_and_subsets_by_pod_labels() {
    let model = compile_for("shop");
    let id = model
        .registry
        .by_host("reviews.shop.svc.cluster.local")
        .unwrap();
    let svc = model.registry.get(id);
    for vip in [
        "10.96.12.34:9080",
        "[fd00:10:96::1234]:9080",
        "10.96.12.34:9090",
    ] {
        assert_eq!(model.registry.by_destination(at(vip)), Some(id), "{vip}");
    }
    assert_eq!(svc.port(9080).unwrap().protocol, Protocol::Http);
    assert_eq!(svc.port(9090).unwrap().protocol, Protocol::Http2);
    assert!(svc.port(8125).is_none(), "the UDP port is not proxied");
    assert!(!svc.external);
    // The named targetPort `web` is 8080 in v1 Pods and 8081 in v2 Pods.
    let (v1, v1_endpoint) = endpoint_at(svc, "10.244.1.5").unwrap();
    let (v2, v2_endpoint) = endpoint_at(svc, "10.244.2.7").unwrap();
    let http = svc.port(9080).unwrap();
    assert_eq!(svc.endpoint_port(v1_endpoint, http), 8080);
    assert_eq!(svc.endpoint_port(v2_endpoint, http), 8081);
    assert_eq!(
        svc.endpoint_port(v1_endpoint, svc.port(9090).unwrap()),
        19090
    );
    assert_eq!(
        model.registry.by_destination(at("10.244.2.7:8081")),
        Some(id)
    );
    let subset = |name: &str| &svc.subsets[svc.subset(name).unwrap()].endpoints;
    assert_eq!(subset("v1"), &[v1 as u32]);
    assert_eq!(subset("v2"), &[v2 as u32]);
    // Not ready (starting, or serving while terminating): not an endpoint.
    assert_eq!(svc.endpoints.len(), 2);
    for ip in ["10.244.3.9", "10.244.3.10"] {
        assert!(endpoint_at(svc, ip).is_none(), "{ip}");
        assert_eq!(
            model.registry.by_destination(at(&format!("{ip}:8080"))),
            None
        );
    }
}

#[test]
fn a_headless_service_is_known_by_its_pod_addresses() {
    let model = compile_for("shop");
    let id = model
        .registry
        .by_host("ratings.shop.svc.cluster.local")
        .unwrap();
    let svc = model.registry.get(id);
    // Resolution NONE with endpoints: the registry knows a connection to a Pod of the
    // Service as the Service's (routes, policies, subsets by labels apply); there is
    // no VIP. Which endpoint the proxy then connects to is its own business.
    assert_eq!(svc.resolution, Resolution::None);
    assert_eq!(svc.endpoints.len(), 2);
    for pod in ["10.244.4.20:5000", "10.244.4.21:5000"] {
        assert_eq!(model.registry.by_destination(at(pod)), Some(id), "{pod}");
    }
    assert_eq!(svc.port(5000).unwrap().protocol, Protocol::Tcp);
}

#[test]
fn an_external_name_service_resolves_its_target() {
    let model = compile_for("shop");
    let svc = service(&model, "payments.shop.svc.cluster.local");
    assert_eq!(svc.resolution, Resolution::Dns);
    assert!(svc.external);
    assert_eq!(
        svc.endpoints
            .iter()
            .map(|e| e.address.clone())
            .collect::<Vec<_>>(),
        [EndpointAddress::Dns("api.payments.example.com".into())]
    );
    assert_eq!(svc.port(443).unwrap().protocol, Protocol::Tls);
}

#[test]
fn a_selectorless_service_uses_its_manual_slice() {
    let model = compile_for("shop");
    let id = model
        .registry
        .by_host("legacy-db.shop.svc.cluster.local")
        .unwrap();
    let svc = model.registry.get(id);
    assert_eq!(
        model.registry.by_destination(at("10.96.40.1:5432")),
        Some(id)
    );
    let port = svc.port(5432).unwrap();
    for ip in ["192.168.50.10", "192.168.50.11"] {
        let (_, endpoint) = endpoint_at(svc, ip).unwrap();
        assert_eq!(svc.endpoint_port(endpoint, port), 15432);
        assert_eq!(
            model.registry.by_destination(at(&format!("{ip}:15432"))),
            Some(id)
        );
    }
}

#[test]
fn a_service_exported_to_some_namespaces_is_not_in_the_others() {
    let model = compile_for("front");
    assert!(
        model
            .registry
            .by_host("reviews.shop.svc.cluster.local")
            .is_none()
    );
    assert_eq!(model.registry.by_destination(at("10.96.12.34:9080")), None);
    assert!(
        model
            .registry
            .by_host("ratings.shop.svc.cluster.local")
            .is_some()
    );
}
