//! The inverse of injection, driven by `sluice.dev/status`: removes what was added, restores
//! the rewritten probes, and drops fields that injection created and that are empty again.

use serde_json::{Map, Value};

use super::{InjectError, Status, annotation, malformed};

/// Removes the sidecar from a pod or template; `None` when it was not injected.
pub fn uninject(pod: &Value) -> Result<Option<Value>, InjectError> {
    let status = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotation::STATUS))
        .map(|s| {
            s.as_str()
                .ok_or_else(|| InjectError::Status("must be a string".into()))
        })
        .transpose()?;
    let Some(status) = status else {
        return Ok(None);
    };
    let status = Status::parse(status)?;

    let mut out = pod.clone();
    let object = out
        .as_object_mut()
        .ok_or_else(|| malformed("", "not an object"))?;
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        remove_named(spec, "initContainers", &status.init_containers);
        remove_named(spec, "containers", &status.containers);
        remove_named(spec, "volumes", &status.volumes);
        restore_probes(spec, &status);
        drop_created(spec, "spec", &status);
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(annotation::STATUS);
            for key in &status.annotations {
                annotations.remove(key);
            }
        }
        drop_created(metadata, "metadata", &status);
    }
    drop_created(object, "", &status);
    Ok(Some(out))
}

fn remove_named(object: &mut Map<String, Value>, field: &str, names: &[String]) {
    if let Some(Value::Array(items)) = object.get_mut(field) {
        items.retain(|item| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            !names.iter().any(|n| n == name)
        });
    }
}

fn restore_probes(spec: &mut Map<String, Value>, status: &Status) {
    for field in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(field) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(probes) = status.probes.get(name) {
                for (probe, original) in probes.clone() {
                    container.insert(probe, original);
                }
            }
        }
    }
}

/// Removes `prefix.FIELD` entries of `status.created` that are empty now.
fn drop_created(object: &mut Map<String, Value>, prefix: &str, status: &Status) {
    for path in &status.created {
        let field = match path.strip_prefix(prefix) {
            Some(rest) if prefix.is_empty() => rest,
            Some(rest) => match rest.strip_prefix('.') {
                Some(field) => field,
                None => continue,
            },
            None => continue,
        };
        if field.contains('.') {
            continue;
        }
        let empty = match object.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if empty {
            object.remove(field);
        }
    }
}
