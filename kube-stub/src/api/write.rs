//! Writes over HTTP: POST creates, PUT replaces, PATCH merges (JSON merge patch, strategic merge
//! patch as a merge patch, JSON patch).

use serde_json::Value;

use super::present;
use super::route::Target;
use crate::status::ApiError;
use crate::store::{Store, prepare_new};

/// POST: creates the object of the body in `namespace`.
pub fn create(
    store: &Store,
    target: &Target<'_>,
    namespace: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut object = decode(target, content_type, body)?;
    check_namespace(&object, namespace)?;
    prepare_new(target.resource, namespace, &mut object)?;
    let created = store.create(target.resource, object)?;
    Ok(present(&created, target.resource, target.version))
}

/// PUT: replaces object `name` with the body.
pub fn replace(
    store: &Store,
    target: &Target<'_>,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let namespace = target.namespace.unwrap_or_default();
    let mut object = decode(target, content_type, body)?;
    check_namespace(&object, namespace)?;
    if target.resource.namespaced {
        object["metadata"]["namespace"] = Value::String(namespace.to_string());
    }
    let replaced = store.update(target.resource, namespace, name, |_| Ok(object))?;
    Ok(present(&replaced, target.resource, target.version))
}

/// PATCH: applies the body to object `name`, by its content type.
pub fn patch(
    store: &Store,
    target: &Target<'_>,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let kind = PatchKind::of(content_type, builtin_group(&target.resource.group))?;
    let namespace = target.namespace.unwrap_or_default();
    let patched = store.update(target.resource, namespace, name, |old| {
        let mut object = old.clone();
        kind.apply(&mut object, body)?;
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the patch made the object a non-object",
            ));
        }
        Ok(object)
    })?;
    Ok(present(&patched, target.resource, target.version))
}

enum PatchKind {
    Merge,
    StrategicMerge,
    Json,
}

impl PatchKind {
    fn of(content_type: &str, builtin: bool) -> Result<Self, ApiError> {
        match media_type(content_type) {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" if builtin => Ok(Self::StrategicMerge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" => Err(ApiError::unsupported_patch(
                "server-side apply (application/apply-patch+yaml) is not implemented by this \
                 stand-in: send a merge patch, a JSON patch, or PUT the object"
                    .into(),
            )),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    fn apply(&self, object: &mut Value, body: &[u8]) -> Result<(), ApiError> {
        let invalid = |e: String| ApiError::bad_request(format!("invalid patch: {e}"));
        match self {
            Self::Merge => {
                let patch: Value =
                    serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
                json_patch::merge(object, &patch);
            }
            Self::StrategicMerge => {
                let patch: Value =
                    serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
                if let Some(directive) = first_directive(&patch) {
                    return Err(ApiError::unsupported_patch(format!(
                        "strategic merge patch directive {directive:?} is not supported by this \
                         stand-in: it applies a strategic merge patch as a JSON merge patch, which \
                         is right for maps such as labels and annotations, not for lists; send a \
                         merge patch or a JSON patch"
                    )));
                }
                json_patch::merge(object, &patch);
            }
            Self::Json => {
                let patch: json_patch::Patch =
                    serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
                json_patch::patch(object, &patch).map_err(|e| {
                    ApiError::bad_request(format!("the JSON patch did not apply: {e}"))
                })?;
            }
        }
        Ok(())
    }
}

/// The first `$`-key (strategic merge directive) in a patch, if any.
fn first_directive(patch: &Value) -> Option<String> {
    match patch {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.starts_with('$') {
                Some(k.clone())
            } else {
                first_directive(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(first_directive),
        _ => None,
    }
}

/// Built-in types take strategic merge patches; custom resources do not (415, as on the API
/// server).
fn builtin_group(group: &str) -> bool {
    group.is_empty() || group == "apps" || group == "batch" || group.ends_with(".k8s.io")
}

fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// The body as an object of the URL's type.
fn decode(target: &Target<'_>, content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let object: Value = match media_type(content_type) {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?,
        "application/yaml" => serde_norway::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
        })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !object.is_object() {
        return Err(ApiError::bad_request("the request body is not an object"));
    }
    if object.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request(
            "metadata: the request body's metadata is not an object",
        ));
    }
    let resource = target.resource;
    let expected_api_version = resource.api_version(target.version);
    match object.get("apiVersion").and_then(Value::as_str) {
        None => {
            return Err(ApiError::bad_request(
                "Object 'apiVersion' is missing in the request body",
            ));
        }
        Some(v) if v != expected_api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_api_version})"
            )));
        }
        Some(_) => {}
    }
    match object.get("kind").and_then(Value::as_str) {
        None => Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        )),
        Some(k) if k != resource.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            resource.kind
        ))),
        Some(_) => Ok(object),
    }
}

/// A namespace in the body must be the URL's.
fn check_namespace(object: &Value, namespace: &str) -> Result<(), ApiError> {
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() && !namespace.is_empty() && ns != namespace => {
            Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(()),
    }
}
