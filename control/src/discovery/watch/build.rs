//! One version's content, rebuilt from the watched objects: each Service translated with
//! its EndpointSlices and Pods (again only when one of them changed: [`cache`]), each Istio
//! object (or MeshConfig) loaded on its own, the resources ordered oldest first, and the
//! objects with errors listed as rejected. See the `rebuild_time` test for what it costs.

mod cache;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::DynamicObject;
use sluice_api::Resource;
use sluice_api::diagnostic::{Diagnostic, Severity};
use sluice_api::load::ConfigSet;
use sluice_api::resource::DEFAULT_NAMESPACE;

use crate::discovery::state::Rejection;
use crate::discovery::translate::{self, SERVICE_NAME_LABEL};
use crate::discovery::{istio_objects, origin};
pub use cache::{Shared, Translations};

/// The watched objects, as the watchers' stores hold them.
#[derive(Debug, Default)]
pub struct Objects {
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// Pods (their labels).
    pub pods: Vec<Arc<Pod>>,
    /// Istio objects and MeshConfigs.
    pub custom: Vec<Arc<DynamicObject>>,
}

/// The content of one version, and what was found on the way.
#[derive(Debug, Default)]
pub struct Built {
    /// Every kept resource, oldest object first (creationTimestamp, then namespace and
    /// name): where two resources conflict, Istio keeps the older one. A Service not
    /// translated again keeps the `Arc`s of the last rebuild.
    pub resources: Vec<Arc<Resource>>,
    /// The objects left out, by `Kind namespace/name`.
    pub rejected: Vec<Rejection>,
    /// Every diagnostic: the rejections' errors, warnings, notes.
    pub diagnostics: Vec<Diagnostic>,
}

/// Rebuilds the mesh config from every watched object, translating again only the
/// Services whose inputs changed since the rebuild `translations` last served.
pub fn build(
    objects: &Objects,
    settings: &translate::Settings,
    translations: &mut Translations,
) -> Built {
    let pods: cache::PodIndex<'_> = objects
        .pods
        .iter()
        .filter_map(|pod| {
            Some((
                (namespace(&pod.metadata), pod.metadata.name.as_deref()?),
                pod,
            ))
        })
        .collect();
    let slices = slices_by_service(&objects.slices);
    let mut out = Collector::default();
    let mut rebuild = translations.start();
    for service in &objects.services {
        let key = (namespace(&service.metadata), name(&service.metadata));
        let slices = slices.get(&key).map_or(&[][..], Vec::as_slice);
        let set = rebuild.translate(key, service, slices, &pods, settings);
        out.add("Service", &service.metadata, set);
    }
    rebuild.finish();
    for object in &objects.custom {
        let kind = object.types.as_ref().map_or("", |t| t.kind.as_str());
        out.add(kind, &object.metadata, load(kind, object).into());
    }
    out.finish()
}

/// Loads one Istio object or MeshConfig through the proxy's strict loader.
fn load(kind: &str, object: &DynamicObject) -> ConfigSet {
    match serde_json::to_value(object) {
        Ok(value) => istio_objects::load_object(&value),
        Err(error) => {
            let (namespace, name) = (namespace(&object.metadata), name(&object.metadata));
            let diagnostic = Diagnostic::new(
                Severity::Error,
                &origin(kind, namespace, name),
                format!("cannot be read as JSON: {error}"),
            )
            .subject(format!("{kind} {namespace}/{name}"));
            ConfigSet {
                resources: Vec::new(),
                diagnostics: vec![diagnostic],
            }
        }
    }
}

/// The slices of each Service, by the Service's namespace and name.
fn slices_by_service(
    slices: &[Arc<EndpointSlice>],
) -> HashMap<(&str, &str), Vec<&Arc<EndpointSlice>>> {
    let mut by_service: HashMap<(&str, &str), Vec<&Arc<EndpointSlice>>> = HashMap::new();
    for slice in slices {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL));
        if let Some(service) = service {
            by_service
                .entry((namespace(&slice.metadata), service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    by_service
}

fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// When an object was made, then its namespace, name and kind: the order resources
/// are published in (objects without a creationTimestamp first).
type Age<'a> = (Option<&'a Time>, &'a str, &'a str, &'a str);

/// The resources, rejections and diagnostics of every object, as they are added.
#[derive(Default)]
struct Collector<'a> {
    resources: Vec<(Age<'a>, Arc<Resource>)>,
    rejected: Vec<Rejection>,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    fn add(&mut self, kind: &'a str, meta: &'a ObjectMeta, set: Shared) {
        let (namespace, name) = (namespace(meta), name(meta));
        let mut errors = set.diagnostics.iter().filter(|d| d.is_error()).peekable();
        if errors.peek().is_some() {
            self.rejected.push(Rejection {
                object: format!("{kind} {namespace}/{name}"),
                errors: errors.map(describe).collect(),
            });
        }
        let age = (meta.creation_timestamp.as_ref(), namespace, name, kind);
        self.resources
            .extend(set.resources.into_iter().map(|resource| (age, resource)));
        self.diagnostics.extend(set.diagnostics);
    }

    fn finish(mut self) -> Built {
        self.resources.sort_by(|a, b| a.0.cmp(&b.0));
        self.rejected.sort_by(|a, b| a.object.cmp(&b.object));
        Built {
            resources: self.resources.into_iter().map(|(_, r)| r).collect(),
            rejected: self.rejected,
            diagnostics: self.diagnostics,
        }
    }
}

/// `field.path: message`, or the message alone when no field is named.
fn describe(diagnostic: &Diagnostic) -> String {
    match &diagnostic.path {
        Some(path) => format!("{path}: {}", diagnostic.message),
        None => diagnostic.message.clone(),
    }
}
