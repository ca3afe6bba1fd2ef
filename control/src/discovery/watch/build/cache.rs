//! The translations of the last rebuild, by Service: a Service whose object, EndpointSlices
//! and the Pods its endpoints name are the very `Arc`s of the last rebuild (the reflector
//! stores hand out the same `Arc` for an object that did not change) is not translated
//! again. An edit or an endpoint change so translates one Service, not all of them, and
//! the resources of the others are handed out again as the same `Arc`s, so what follows
//! (the comparison with the last version, the rendering for the proxies) settles them by
//! pointer.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sluice_api::Resource;
use sluice_api::diagnostic::Diagnostic;
use sluice_api::load::ConfigSet;

use crate::discovery::translate::{self, Pods};

/// Every Service's last translation, and what it was made from.
#[derive(Debug, Default)]
pub struct Translations {
    by_service: HashMap<(String, String), Entry>,
    /// Translations made by the last rebuild (the others were reused).
    made: usize,
}

#[derive(Debug)]
struct Entry {
    inputs: Inputs,
    set: Shared,
}

/// A translation's resources, shared from one rebuild to the next, and its diagnostics.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    /// The resources made.
    pub resources: Vec<Arc<Resource>>,
    /// Errors, warnings and notes.
    pub diagnostics: Vec<Diagnostic>,
}

impl From<ConfigSet> for Shared {
    fn from(set: ConfigSet) -> Shared {
        Shared {
            resources: set.resources.into_iter().map(Arc::new).collect(),
            diagnostics: set.diagnostics,
        }
    }
}

/// What one translation read, by pointer.
#[derive(Debug)]
struct Inputs {
    service: Arc<Service>,
    slices: Vec<Arc<EndpointSlice>>,
    /// The Pods the endpoints name, in the order they are named (none: not known).
    pods: Vec<Option<Arc<Pod>>>,
}

impl Inputs {
    fn same(&self, other: &Inputs) -> bool {
        Arc::ptr_eq(&self.service, &other.service)
            && same_arcs(&self.slices, &other.slices)
            && self.pods.len() == other.pods.len()
            && self.pods.iter().zip(&other.pods).all(|pair| match pair {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            })
    }
}

fn same_arcs<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

/// The Pods by namespace and name, as the stores hold them.
pub type PodIndex<'a> = HashMap<(&'a str, &'a str), &'a Arc<Pod>>;

impl Translations {
    /// Starts a rebuild: what is not looked up again before [`Translations::finish`]
    /// (a deleted Service) is forgotten then.
    pub fn start(&mut self) -> Rebuild<'_> {
        self.made = 0;
        Rebuild {
            translations: self,
            seen: HashMap::new(),
        }
    }

    /// How many Services the last rebuild translated (the rest were reused).
    pub fn made(&self) -> usize {
        self.made
    }
}

/// One rebuild's use of the translations.
pub struct Rebuild<'t> {
    translations: &'t mut Translations,
    seen: HashMap<(String, String), Entry>,
}

impl Rebuild<'_> {
    /// The translation of `service` with `slices`, reused when nothing it reads changed.
    pub fn translate(
        &mut self,
        key: (&str, &str),
        service: &Arc<Service>,
        slices: &[&Arc<EndpointSlice>],
        pods: &PodIndex<'_>,
        settings: &translate::Settings,
    ) -> Shared {
        let inputs = Inputs {
            service: service.clone(),
            slices: slices.iter().map(|s| Arc::clone(s)).collect(),
            pods: named_pods(key.0, slices, pods),
        };
        let owned = (key.0.to_string(), key.1.to_string());
        let entry = match self.translations.by_service.remove(&owned) {
            Some(entry) if entry.inputs.same(&inputs) => entry,
            _ => {
                self.translations.made += 1;
                let known = inputs.pods.iter().flatten().map(|pod| pod.as_ref());
                let slices: Vec<&EndpointSlice> = slices.iter().map(|s| s.as_ref()).collect();
                let set = translate::translate(service, &slices, &Pods::new(known), settings);
                Entry {
                    inputs,
                    set: set.into(),
                }
            }
        };
        let set = entry.set.clone();
        self.seen.insert(owned, entry);
        set
    }

    /// Keeps the translations looked up in this rebuild, and only those.
    pub fn finish(self) {
        self.translations.by_service = self.seen;
    }
}

/// The Pods the endpoints of `slices` name (`targetRef` of kind Pod), in order.
fn named_pods(
    namespace: &str,
    slices: &[&Arc<EndpointSlice>],
    pods: &PodIndex<'_>,
) -> Vec<Option<Arc<Pod>>> {
    slices
        .iter()
        .flat_map(|slice| &slice.endpoints)
        .filter_map(|endpoint| endpoint.target_ref.as_ref())
        .filter(|r| r.kind.as_deref() == Some("Pod"))
        .map(|r| {
            let namespace = r.namespace.as_deref().unwrap_or(namespace);
            let name = r.name.as_deref()?;
            pods.get(&(namespace, name)).map(|pod| Arc::clone(pod))
        })
        .collect()
}
