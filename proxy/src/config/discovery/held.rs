//! The resources the control plane sent, by id and in its order: full states replace
//! them, deltas change them; each document is loaded once, when it arrives.

use std::collections::{HashMap, HashSet};

use sluice_api::model::{Model, Role, Workload};
use sluice_api::{Resource, load_str};

use super::wire::{Entry, Update};

/// What the control plane's last version holds for this proxy.
#[derive(Debug, Default)]
pub struct Held {
    /// False until the first full state.
    started: bool,
    order: Vec<String>,
    by_id: HashMap<String, Loaded>,
}

/// A document loaded with the strict loader of local mode (not validated: the control
/// plane did, and translated Kubernetes Services take shapes hand-written config may not).
#[derive(Debug)]
enum Loaded {
    Good {
        resource: Box<Resource>,
        warnings: Vec<String>,
    },
    Bad(Vec<String>),
}

impl Held {
    /// Applies an update; an error says the stream is out of step (the proxy then
    /// reconnects for a full state).
    pub fn apply(&mut self, update: Update) -> Result<(), String> {
        if update.full {
            self.started = true;
            self.order.clear();
            self.by_id.clear();
            self.upsert(update.resources);
            return Ok(());
        }
        if !self.started {
            return Err(format!(
                "version {} is a delta, but no full state came first",
                update.version
            ));
        }
        for id in &update.remove {
            if self.by_id.remove(id).is_none() {
                return Err(format!(
                    "version {} removes {id:?}, which this proxy does not hold",
                    update.version
                ));
            }
        }
        let gone: HashSet<&String> = update.remove.iter().collect();
        self.order.retain(|id| !gone.contains(id));
        self.upsert(update.upsert);
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

    fn upsert(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            let loaded = load(&entry);
            if self.by_id.insert(entry.id.clone(), loaded).is_none() {
                self.order.push(entry.id);
            }
        }
    }

    /// Compiles the resources held for `workload` in `role`: the model and the warnings, or
    /// every error of the documents that did not load.
    pub fn compile(
        &self,
        workload: &Workload,
        role: Role,
    ) -> Result<(Model, Vec<String>), Vec<String>> {
        let mut resources = Vec::with_capacity(self.order.len());
        let (mut warnings, mut errors) = (Vec::new(), Vec::new());
        for loaded in self.order.iter().filter_map(|id| self.by_id.get(id)) {
            match loaded {
                Loaded::Good {
                    resource,
                    warnings: w,
                } => {
                    resources.push((**resource).clone());
                    warnings.extend(w.iter().cloned());
                }
                Loaded::Bad(e) => errors.extend(e.iter().cloned()),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((Model::compile_as(&resources, workload, role), warnings))
    }
}

/// Loads one document; its id names it in diagnostics, as a file name does in local mode.
fn load(entry: &Entry) -> Loaded {
    let mut set = load_str(&entry.id, &entry.doc.to_string());
    if set.has_errors() {
        return Loaded::Bad(set.errors().map(ToString::to_string).collect());
    }
    let warnings = set.diagnostics.iter().map(ToString::to_string).collect();
    match (set.resources.pop(), set.resources.is_empty()) {
        (Some(resource), true) => Loaded::Good {
            resource: Box::new(resource),
            warnings,
        },
        (None, _) => Loaded::Bad(vec![format!(
            "{}: the document holds no resource sluice acts on",
            entry.id
        )]),
        (Some(_), false) => Loaded::Bad(vec![format!(
            "{}: the document holds more than one resource",
            entry.id
        )]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(id: &str, host: &str) -> Entry {
        Entry {
            id: id.into(),
            doc: json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": id, "namespace": "shop"},
                "spec": {"hosts": [host], "ports": [{"number": 80, "name": "http"}], "resolution": "NONE"}
            }),
        }
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
        bad.doc["spec"]["hosts"] = json!("not-a-list");
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
