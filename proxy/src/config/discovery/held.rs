//! The resources the control plane sent, by id and in its order: full states replace
//! them, deltas change them; each document is loaded once, when it arrives, and held
//! once: compiling borrows the loaded resources rather than copying them. The endpoints
//! of the ServiceEntries held share their port and label maps ([`SharedMaps`]), as do the
//! endpoints of the model compiled from them.

use std::collections::{HashMap, HashSet};

use sluice_api::istio::service_entry::SharedMaps;
use sluice_api::model::{Model, Role, Workload};
use sluice_api::{Resource, Spec, load_str};

use super::wire::{Entry, Update};

/// What the control plane's last version holds for this proxy.
#[derive(Debug, Default)]
pub struct Held {
    /// False until the first full state.
    started: bool,
    /// Every id held, in the control plane's order.
    order: Vec<String>,
    /// What loading each id's document gave, by id.
    by_id: HashMap<String, Loaded>,
    /// The resources of the documents that loaded, in `order`'s order: the slice the
    /// compiler reads.
    resources: Vec<Resource>,
    /// The maps the endpoints of `resources` share.
    shared: SharedMaps,
}

/// What loading a document with the strict loader of local mode gave (not validated: the
/// control plane did, and translated Kubernetes Services take shapes hand-written config
/// may not).
#[derive(Debug)]
enum Loaded {
    /// Its resource is in `Held::resources`; the loader's warnings.
    Good(Vec<String>),
    /// The loader's errors.
    Bad(Vec<String>),
}

impl Held {
    /// Applies an update; an error says the stream is out of step (the proxy then
    /// reconnects for a full state).
    pub fn apply(&mut self, update: Update) -> Result<(), String> {
        let result = self.apply_update(update);
        self.shared.forget_unused();
        result
    }

    fn apply_update(&mut self, update: Update) -> Result<(), String> {
        if update.full {
            self.started = true;
            self.order.clear();
            self.by_id.clear();
            self.resources.clear();
            let mut loaded = HashMap::new();
            self.upsert(update.resources, &mut loaded);
            self.resources = self.in_order(loaded);
            return Ok(());
        }
        if !self.started {
            return Err(format!(
                "version {} is a delta, but no full state came first",
                update.version
            ));
        }
        // The resources by id while the delta changes them (moved, not copied).
        let good = self
            .order
            .iter()
            .filter(|id| matches!(self.by_id.get(*id), Some(Loaded::Good(_))));
        let mut loaded: HashMap<String, Resource> = good
            .cloned()
            .zip(std::mem::take(&mut self.resources))
            .collect();
        let result = self.change(update, &mut loaded);
        self.resources = self.in_order(loaded);
        result
    }

    /// How many distinct port and label maps the endpoints held share.
    #[cfg(test)]
    fn shared_maps(&self) -> (usize, usize) {
        self.shared.counts()
    }

    /// A delta's changes, with the resources held by id in `loaded`.
    fn change(
        &mut self,
        update: Update,
        loaded: &mut HashMap<String, Resource>,
    ) -> Result<(), String> {
        for id in &update.remove {
            if self.by_id.remove(id).is_none() {
                return Err(format!(
                    "version {} removes {id:?}, which this proxy does not hold",
                    update.version
                ));
            }
            loaded.remove(id);
        }
        let gone: HashSet<&String> = update.remove.iter().collect();
        self.order.retain(|id| !gone.contains(id));
        self.upsert(update.upsert, loaded);
        if let Some(order) = update.order {
            let unique: HashSet<&String> = order.iter().collect();
            if unique.len() != order.len()
                || order.len() != self.by_id.len()
                || !order.iter().all(|id| self.by_id.contains_key(id))
            {
                return Err(format!(
                    "version {}'s order does not list exactly the resources held",
                    update.version
                ));
            }
            self.order = order;
        }
        Ok(())
    }

    fn upsert(&mut self, entries: Vec<Entry>, loaded: &mut HashMap<String, Resource>) {
        for entry in entries {
            let outcome = match load(&entry) {
                Ok((mut resource, warnings)) => {
                    if let Spec::ServiceEntry(se) = &mut resource.spec {
                        self.shared.share(se);
                    }
                    loaded.insert(entry.id.clone(), resource);
                    Loaded::Good(warnings)
                }
                Err(errors) => {
                    loaded.remove(&entry.id);
                    Loaded::Bad(errors)
                }
            };
            if self.by_id.insert(entry.id.clone(), outcome).is_none() {
                self.order.push(entry.id);
            }
        }
    }

    /// The resources of `loaded` in `order`'s order.
    fn in_order(&self, mut loaded: HashMap<String, Resource>) -> Vec<Resource> {
        self.order
            .iter()
            .filter_map(|id| loaded.remove(id))
            .collect()
    }

    /// Compiles the resources held for `workload` in `role`: the model and the warnings, or
    /// every error of the documents that did not load.
    pub fn compile(
        &self,
        workload: &Workload,
        role: Role,
    ) -> Result<(Model, Vec<String>), Vec<String>> {
        let (mut warnings, mut errors) = (Vec::new(), Vec::new());
        for loaded in self.order.iter().filter_map(|id| self.by_id.get(id)) {
            match loaded {
                Loaded::Good(w) => warnings.extend(w.iter().cloned()),
                Loaded::Bad(e) => errors.extend(e.iter().cloned()),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((Model::compile_as(&self.resources, workload, role), warnings))
    }
}

/// Loads one document: its resource and warnings, or its errors; its id names it in
/// diagnostics, as a file name does in local mode.
fn load(entry: &Entry) -> Result<(Resource, Vec<String>), Vec<String>> {
    let mut set = load_str(&entry.id, &entry.doc);
    if set.has_errors() {
        return Err(set.errors().map(ToString::to_string).collect());
    }
    let warnings = set.diagnostics.iter().map(ToString::to_string).collect();
    match (set.resources.pop(), set.resources.is_empty()) {
        (Some(resource), true) => Ok((resource, warnings)),
        (None, _) => Err(vec![format!(
            "{}: the document holds no resource sluice acts on",
            entry.id
        )]),
        (Some(_), false) => Err(vec![format!(
            "{}: the document holds more than one resource",
            entry.id
        )]),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    /// A ServiceEntry `id` in namespace `shop` with this spec.
    fn service_entry(id: &str, spec: serde_json::Value) -> Entry {
        Entry {
            id: id.into(),
            doc: json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": id, "namespace": "shop"},
                "spec": spec
            })
            .to_string(),
        }
    }

    fn entry(id: &str, host: &str) -> Entry {
        let spec = json!({"hosts": [host], "ports": [{"number": 80, "name": "http"}], "resolution": "NONE"});
        service_entry(id, spec)
    }

    fn update(version: u64, full: bool, upsert: Vec<Entry>, remove: &[&str]) -> Update {
        Update {
            version,
            full,
            resources: if full { upsert.clone() } else { Vec::new() },
            upsert: if full { Vec::new() } else { upsert },
            remove: remove.iter().map(ToString::to_string).collect(),
            order: None,
        }
    }

    fn hosts(held: &Held) -> Vec<String> {
        let (model, _) = held.compile(&Workload::default(), Role::Sidecar).unwrap();
        model
            .registry
            .services
            .iter()
            .map(|s| s.host.clone())
            .collect()
    }

    #[test]
    fn full_states_replace_and_deltas_change() {
        let mut held = Held::default();
        let delta = update(1, false, vec![entry("a", "a.example.com")], &[]);
        assert!(held.apply(delta).unwrap_err().contains("no full state"));
        held.apply(update(
            1,
            true,
            vec![entry("a", "a.example.com"), entry("b", "b.example.com")],
            &[],
        ))
        .unwrap();
        held.apply(update(
            2,
            false,
            vec![entry("a", "a2.example.com"), entry("c", "c.example.com")],
            &["b"],
        ))
        .unwrap();
        assert_eq!(hosts(&held), ["a2.example.com", "c.example.com"]);
        let err = held.apply(update(3, false, vec![], &["b"])).unwrap_err();
        assert!(err.contains("\"b\""), "{err}");
        held.apply(update(4, true, vec![entry("d", "d.example.com")], &[]))
            .unwrap();
        assert_eq!(hosts(&held), ["d.example.com"]);
    }

    /// A ServiceEntry whose two endpoints have these labels.
    fn labelled(id: &str, labels: [&str; 2]) -> Entry {
        let endpoint = |ip: &str, version: &str| json!({"address": ip, "ports": {"http": 8080}, "labels": {"version": version}});
        let spec = json!({
            "hosts": [format!("{id}.shop.svc.cluster.local")],
            "ports": [{"number": 80, "name": "http"}],
            "resolution": "STATIC",
            "endpoints": [endpoint("10.0.0.1", labels[0]), endpoint("10.0.0.2", labels[1])]
        });
        service_entry(id, spec)
    }

    #[test]
    fn endpoints_with_equal_maps_share_them_while_they_are_held() {
        let mut held = Held::default();
        let full = vec![labelled("a", ["v1", "v2"]), labelled("b", ["v1", "v1"])];
        held.apply(update(1, true, full, &[])).unwrap();
        let (model, _) = held.compile(&Workload::default(), Role::Sidecar).unwrap();
        let endpoints: Vec<_> = model
            .registry
            .services
            .iter()
            .flat_map(|s| &s.endpoints)
            .collect();
        assert_eq!(endpoints.len(), 4);
        let (a1, a2, b1, b2) = (endpoints[0], endpoints[1], endpoints[2], endpoints[3]);
        assert!(Arc::ptr_eq(&a1.labels, &b1.labels) && Arc::ptr_eq(&b1.labels, &b2.labels));
        assert!(!Arc::ptr_eq(&a1.labels, &a2.labels));
        assert_eq!(a2.labels["version"], "v2");
        assert!(Arc::ptr_eq(&a1.ports, &b2.ports), "one ports map for all");
        drop(model);

        // Only `b` is left: the `v2` map is let go, `v1` is still shared.
        held.apply(update(2, false, vec![], &["a"])).unwrap();
        assert_eq!(held.shared_maps(), (1, 1));
    }

    #[test]
    fn an_order_is_checked_and_followed() {
        let mut held = Held::default();
        held.apply(update(
            1,
            true,
            vec![entry("a", "a.example.com"), entry("b", "b.example.com")],
            &[],
        ))
        .unwrap();
        let mut reorder = update(2, false, vec![], &[]);
        reorder.order = Some(vec!["b".into(), "a".into()]);
        held.apply(reorder.clone()).unwrap();
        assert_eq!(hosts(&held), ["b.example.com", "a.example.com"]);
        reorder.order = Some(vec!["b".into()]);
        assert!(held.apply(reorder).is_err());
    }

    #[test]
    fn a_document_that_does_not_load_fails_the_compile_naming_its_object() {
        let mut held = Held::default();
        let mut bad = entry("kubernetes ServiceEntry shop/bad", "bad.example.com");
        let mut doc: serde_json::Value = serde_json::from_str(&bad.doc).unwrap();
        doc["spec"]["hosts"] = json!("not-a-list");
        bad.doc = doc.to_string();
        held.apply(update(1, true, vec![entry("a", "a.example.com"), bad], &[]))
            .unwrap();
        let errors = held
            .compile(&Workload::default(), Role::Sidecar)
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("kubernetes ServiceEntry shop/bad"),
            "{errors:?}"
        );
        assert!(errors[0].contains("hosts"), "{errors:?}");
        held.apply(update(
            2,
            false,
            vec![],
            &["kubernetes ServiceEntry shop/bad"],
        ))
        .unwrap();
        assert_eq!(hosts(&held), ["a.example.com"]);
    }
}
