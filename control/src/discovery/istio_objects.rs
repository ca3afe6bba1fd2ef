//! Istio objects (and sluice MeshConfigs) watched in the cluster, read with the proxy's
//! strict loader and validated one at a time: a bad object is reported and left out,
//! the others are kept.
//!
//! The API server adds fields of its own. In `metadata` (`uid`, `resourceVersion`,
//! `generation`, `managedFields`, `creationTimestamp`, `ownerReferences`,
//! `finalizers`...) the loader reads name, namespace, labels and annotations and
//! ignores the rest; a top-level `status` is allowed. So objects are loaded as the
//! API server serves them, nothing stripped; the spec is read as strictly as a file.

use serde_json::Value;
use sluice_api::diagnostic::{Diagnostic, Severity};
use sluice_api::load::{ConfigSet, load_str};
use sluice_api::resource::DEFAULT_NAMESPACE;
use sluice_api::validate::validate;
use sluice_api::{Resource, Spec};

use super::view;

#[cfg(test)]
mod tests;

/// Loads one watched object (`networking.istio.io` VirtualService, DestinationRule,
/// ServiceEntry or Gateway in v1, v1beta1 or v1alpha3, or `sluice.dev/v1alpha1`
/// MeshConfig) and validates it on its own. An object with errors is left out, with the
/// errors (naming the object, its kind, namespace, name and the field) and a note
/// saying so; its warnings, and those about valid objects, come from [`analyze`].
pub fn load_object(object: &Value) -> ConfigSet {
    let field = |key: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("<no kind>");
    let namespace = field("namespace").unwrap_or(DEFAULT_NAMESPACE);
    let name = field("name").unwrap_or("<unnamed>");
    let origin = super::origin(kind, namespace, name);
    // JSON is YAML: the proxy's loader reads the object's JSON text as it is.
    let loaded = load_str(&origin.file, &object.to_string());
    let mut out = ConfigSet {
        resources: Vec::new(),
        diagnostics: loaded.diagnostics,
    };
    for resource in loaded.resources {
        let title = resource.title();
        let mut alone = ConfigSet {
            resources: vec![resource],
            diagnostics: Vec::new(),
        };
        validate(&mut alone);
        if !alone.has_errors() {
            out.resources.append(&mut alone.resources);
            continue;
        }
        out.diagnostics
            .extend(alone.diagnostics.into_iter().filter(Diagnostic::is_error));
        out.diagnostics.push(
            Diagnostic::new(
                Severity::Note,
                &origin,
                format!("{title} is left out until it is fixed; the rest of the mesh config stays in force"),
            )
            .subject(title),
        );
    }
    out
}

/// The warnings about valid resources, each alone and all together, as `sluice
/// validate` reports them (subsets no DestinationRule defines, missing delegates,
/// shadowed hosts...), and the MeshConfigs that do not apply
/// ([`view::mesh_config_conflicts`]). Local mode's rule of one MeshConfig per config
/// set does not hold here: MeshConfigs apply per namespace (see [`view`]).
pub fn analyze(resources: &[Resource]) -> Vec<Diagnostic> {
    let mut set = ConfigSet {
        resources: resources
            .iter()
            .filter(|r| !matches!(r.spec, Spec::MeshConfig(_)))
            .cloned()
            .collect(),
        diagnostics: Vec::new(),
    };
    validate(&mut set);
    set.diagnostics
        .extend(view::mesh_config_conflicts(resources));
    set.diagnostics
}
