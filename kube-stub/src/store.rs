//! The object store: objects by type, namespace and name, one resourceVersion counter for all of
//! them, and the history of changes that watches replay and continue tokens read, until
//! compaction forgets it.

mod meta;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use tokio::sync::watch;

use crate::catalog::ResourceType;
use crate::status::ApiError;

/// Where an object lives: its type (group and plural, whatever the version), namespace (empty for
/// cluster-scoped objects) and name. Ordered as etcd orders the keys, so lists come out as the
/// API server's do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group.
    pub group: String,
    /// Resource name (plural).
    pub plural: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectKey {
    fn new(resource: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            group: resource.group.clone(),
            plural: resource.plural.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn is_type(&self, resource: &ResourceType) -> bool {
        self.group == resource.group && self.plural == resource.plural
    }
}

/// One change: the object before (`None` when created) and after (`None` when deleted).
#[derive(Clone, Debug)]
pub struct Change {
    /// The resourceVersion the change made.
    pub rv: u64,
    /// The changed object's key.
    pub key: ObjectKey,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
    /// The object after the change.
    pub cur: Option<Arc<Value>>,
}

/// The objects of one type as of one resourceVersion, in key order.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The resourceVersion the objects are as of.
    pub resource_version: u64,
    /// The objects with their keys.
    pub items: Vec<(ObjectKey, Arc<Value>)>,
}

/// The history before `oldest` was compacted away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The resourceVersion asked for.
    pub requested: u64,
    /// The oldest resourceVersion still answerable.
    pub oldest: u64,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    /// Changes after `oldest`, in order.
    history: Vec<Arc<Change>>,
    oldest: u64,
}

/// The shared store.
pub struct Store {
    state: Mutex<State>,
    latest: watch::Sender<u64>,
    /// Whether namespaced objects need their Namespace to exist (when Namespaces are served).
    namespaces_exist: bool,
}

impl Store {
    /// An empty store; with `namespaces_exist`, namespaced objects can only be made in a
    /// Namespace that exists, as the API server's NamespaceLifecycle admission requires.
    pub fn new(namespaces_exist: bool) -> Self {
        Self {
            state: Mutex::new(State::default()),
            latest: watch::Sender::new(0),
            namespaces_exist,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver of the latest resourceVersion, changed after every write.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The object `name` of `resource` in `namespace`.
    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.lock()
            .objects
            .get(&ObjectKey::new(resource, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// Creates `object` (metadata already names it and its namespace).
    pub fn create(&self, resource: &ResourceType, object: Value) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let (namespace, name) = placement(resource, &object)?;
        let key = ObjectKey::new(resource, &namespace, &name);
        if state.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource, &name));
        }
        self.check_namespace(&state, resource, &namespace)?;
        let created = self.insert(&mut state, key, None, object);
        Ok(created)
    }

    /// Replaces the object with what `change` makes of it. A resourceVersion in the result that
    /// differs from the stored one is a conflict, as with the API server's optimistic concurrency.
    pub fn update(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let key = ObjectKey::new(resource, namespace, name);
        let old = state
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        let new = change(&old)?;
        let (new_namespace, new_name) = placement(resource, &new)?;
        if new_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({new_name}) does not match the name on the URL ({name})"
            )));
        }
        if new_namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let sent_rv = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty());
        let stored_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if sent_rv.is_some_and(|rv| Some(rv) != stored_rv) {
            return Err(ApiError::conflict(resource, name));
        }
        Ok(self.insert(&mut state, key, Some(old), new))
    }

    /// Creates `object` or replaces the stored one regardless of its resourceVersion.
    pub fn upsert(&self, resource: &ResourceType, object: Value) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let (namespace, name) = placement(resource, &object)?;
        let key = ObjectKey::new(resource, &namespace, &name);
        let old = state.objects.get(&key).cloned();
        if old.is_none() {
            self.check_namespace(&state, resource, &namespace)?;
        }
        Ok(self.insert(&mut state, key, old, object))
    }

    /// Deletes an object (a Namespace with everything in it) and returns it as deleted.
    pub fn delete(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let key = ObjectKey::new(resource, namespace, name);
        if !state.objects.contains_key(&key) {
            return Err(ApiError::not_found(resource, name));
        }
        if resource.group.is_empty() && resource.plural == "namespaces" {
            let contents: Vec<ObjectKey> = state
                .objects
                .keys()
                .filter(|k| k.namespace == name)
                .cloned()
                .collect();
            for inner in contents {
                self.remove(&mut state, inner);
            }
        }
        Ok(self.remove(&mut state, key))
    }

    /// The objects of `resource` (in `namespace`, or all) as of resourceVersion `at` (or now),
    /// with the resourceVersion of the snapshot.
    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        at: Option<u64>,
    ) -> Result<Snapshot, Expired> {
        let state = self.lock();
        let wanted = |key: &ObjectKey| {
            key.is_type(resource) && namespace.is_none_or(|ns| key.namespace == ns)
        };
        let mut objects: BTreeMap<ObjectKey, Arc<Value>> = state
            .objects
            .iter()
            .filter(|(key, _)| wanted(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let at = at.unwrap_or(state.rv).min(state.rv);
        if at < state.oldest {
            return Err(Expired {
                requested: at,
                oldest: state.oldest,
            });
        }
        for change in state.history.iter().rev().take_while(|c| c.rv > at) {
            if wanted(&change.key) {
                match &change.prev {
                    Some(prev) => objects.insert(change.key.clone(), prev.clone()),
                    None => objects.remove(&change.key),
                };
            }
        }
        Ok(Snapshot {
            resource_version: at,
            items: objects.into_iter().collect(),
        })
    }

    /// The changes after resourceVersion `after`, and the current resourceVersion.
    pub fn changes_after(&self, after: u64) -> Result<(Vec<Arc<Change>>, u64), Expired> {
        let state = self.lock();
        if after < state.oldest {
            return Err(Expired {
                requested: after,
                oldest: state.oldest,
            });
        }
        let start = state.history.partition_point(|c| c.rv <= after);
        Ok((state.history[start..].to_vec(), state.rv))
    }

    /// Forgets the history: resourceVersions before the current one become too old (410
    /// Expired), as after an etcd compaction.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.oldest = state.rv;
        state.history.clear();
    }

    fn check_namespace(
        &self,
        state: &State,
        resource: &ResourceType,
        namespace: &str,
    ) -> Result<(), ApiError> {
        if !resource.namespaced || !self.namespaces_exist {
            return Ok(());
        }
        let key = ObjectKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.to_string(),
        };
        if state.objects.contains_key(&key) {
            Ok(())
        } else {
            Err(ApiError::not_found(
                &ResourceType::new("", &["v1"], "Namespace", false),
                namespace,
            ))
        }
    }

    fn insert(
        &self,
        state: &mut State,
        key: ObjectKey,
        old: Option<Arc<Value>>,
        mut object: Value,
    ) -> Arc<Value> {
        state.rv += 1;
        let rv = state.rv;
        match &old {
            Some(old) => meta::on_update(old, &mut object, rv),
            None => meta::on_create(&mut object, rv),
        }
        let object = Arc::new(object);
        state.objects.insert(key.clone(), object.clone());
        self.record(state, key, old, Some(object.clone()));
        object
    }

    fn remove(&self, state: &mut State, key: ObjectKey) -> Arc<Value> {
        state.rv += 1;
        let old = state.objects.remove(&key);
        let mut deleted = old.as_deref().cloned().unwrap_or_default();
        meta::set_resource_version(&mut deleted, state.rv);
        self.record(state, key, old, None);
        Arc::new(deleted)
    }

    fn record(
        &self,
        state: &mut State,
        key: ObjectKey,
        prev: Option<Arc<Value>>,
        cur: Option<Arc<Value>>,
    ) {
        state.history.push(Arc::new(Change {
            rv: state.rv,
            key,
            prev,
            cur,
        }));
        self.latest.send_replace(state.rv);
    }
}

/// Fills in what the API server fills in before storing a new object: a name from
/// `generateName`, the namespace of the request (none for cluster-scoped types), and a
/// Namespace's own label and phase.
pub fn prepare_new(
    resource: &ResourceType,
    namespace: &str,
    object: &mut Value,
) -> Result<(), ApiError> {
    let meta = meta::metadata(object);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                resource,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        let generated = format!("{prefix}{}", meta::name_suffix());
        meta.insert("name".into(), Value::String(generated));
    }
    if resource.namespaced {
        meta.insert("namespace".into(), Value::String(namespace.to_string()));
    } else {
        meta.remove("namespace");
    }
    if resource.group.is_empty() && resource.kind == "Namespace" {
        let name = meta.get("name").cloned().unwrap_or_default();
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
        if let Some(map) = object.as_object_mut() {
            map.insert("status".into(), serde_json::json!({"phase": "Active"}));
        }
    }
    Ok(())
}

/// The namespace (empty for cluster-scoped types) and name in an object's metadata.
fn placement(resource: &ResourceType, object: &Value) -> Result<(String, String), ApiError> {
    let text = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = text("name");
    if name.is_empty() {
        return Err(ApiError::invalid(
            resource,
            "",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    let namespace = if resource.namespaced {
        text("namespace")
    } else {
        String::new()
    };
    if resource.namespaced && namespace.is_empty() {
        return Err(ApiError::invalid(
            resource,
            &name,
            "metadata.namespace",
            "Required value",
        ));
    }
    Ok((namespace, name))
}

#[cfg(test)]
mod tests;
