//! What the watchers keep of each object: the fields translation and loading read.
//!
//! A cluster's Pods are many and large, and most of their updates (status, conditions)
//! change nothing sluice reads. Objects are slimmed before they are stored, and
//! `resourceVersion` goes with the rest, so an update that leaves the slim object equal
//! is recognised as no change at all.

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, TypeMeta};
use kube::discovery::ApiResource;

use crate::inject::annotation;

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what the API server keeps for itself.
fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.resource_version = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

/// A Service without its status.
pub fn service(service: &mut Service) {
    metadata(&mut service.metadata);
    service.status = None;
}

/// An EndpointSlice: all of it is read.
pub fn endpoint_slice(slice: &mut EndpointSlice) {
    metadata(&mut slice.metadata);
}

/// A Pod is read for its labels (subsets) and whether it was injected (the CA bundle
/// goes to its namespace): its `sluice.dev/status` annotation.
pub fn pod(pod: &mut Pod) {
    let injected = pod
        .metadata
        .annotations
        .as_mut()
        .and_then(|annotations| annotations.remove_entry(annotation::STATUS));
    let mut metadata = named_with_labels(&mut pod.metadata);
    metadata.annotations = injected.map(|entry| [entry].into());
    *pod = Pod {
        metadata,
        ..Pod::default()
    };
}

/// A Namespace is read for its labels only.
pub fn namespace(namespace: &mut Namespace) {
    *namespace = Namespace {
        metadata: named_with_labels(&mut namespace.metadata),
        ..Namespace::default()
    };
}

fn named_with_labels(meta: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        labels: meta.labels.take(),
        ..ObjectMeta::default()
    }
}

/// An Istio object (or MeshConfig) without its status, with its `apiVersion` and `kind`
/// (which list items may leave out) set from the watched `resource`.
pub fn custom(resource: &ApiResource, object: &mut DynamicObject) {
    metadata(&mut object.metadata);
    if let Some(data) = object.data.as_object_mut() {
        data.remove("status");
    }
    if object.types.is_none() {
        object.types = Some(TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;

    use super::*;
    use crate::discovery::fixtures;

    #[test]
    fn a_pod_update_that_changes_no_label_leaves_the_slim_pod_equal() {
        let mut before: Pod = fixtures::parse_all(fixtures::PODS).remove(0);
        let mut after = before.clone();
        after.metadata.resource_version = Some("999999".into());
        after.status = Some(PodStatus {
            phase: Some("Failed".into()),
            ..PodStatus::default()
        });
        let mut relabelled = before.clone();
        relabelled
            .metadata
            .labels
            .get_or_insert_default()
            .insert("version".into(), "v9".into());
        pod(&mut before);
        pod(&mut after);
        pod(&mut relabelled);
        assert_eq!(before, after);
        assert_ne!(before, relabelled);
        assert!(before.metadata.labels.is_some() && before.spec.is_none());
    }

    #[test]
    fn a_pod_keeps_the_injection_status_and_no_other_annotation() {
        let mut injected: Pod = fixtures::parse_all(fixtures::PODS).remove(0);
        let annotations = injected.metadata.annotations.get_or_insert_default();
        annotations.insert(annotation::STATUS.into(), "{}".into());
        annotations.insert("team".into(), "shop".into());
        pod(&mut injected);
        let kept = injected.metadata.annotations.unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), [annotation::STATUS]);
    }

    #[test]
    fn a_service_keeps_its_annotations_but_not_the_last_applied_copy() {
        let mut svc: Service = fixtures::parse(fixtures::REVIEWS);
        svc.metadata
            .annotations
            .get_or_insert_default()
            .insert(LAST_APPLIED.into(), "{}".into());
        service(&mut svc);
        let annotations = svc.metadata.annotations.unwrap();
        assert!(annotations.contains_key("networking.istio.io/exportTo"));
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert!(svc.status.is_none() && svc.metadata.resource_version.is_none());
    }
}
