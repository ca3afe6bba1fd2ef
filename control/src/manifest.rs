//! Kubernetes manifests for `sluice inject` / `sluice uninject`: multi-document YAML (or JSON),
//! `List`s, and the workload kinds whose pod template gets the sidecar. Every other kind, and
//! every document left unchanged, is passed through as written, in order.

mod documents;
mod emit;

use serde_json::Value;

use crate::config::InjectConfig;
use crate::inject::{self, InjectError, Namespace, Outcome};
use documents::Chunk;
pub use emit::to_yaml;

/// What to do to each pod template.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    Inject(&'a InjectConfig),
    Uninject,
}

/// One input: a name for messages (file path or `-`) and its text.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// The transformed manifests, and notes for the user (skips, warnings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub notes: Vec<String>,
}

/// Transforms every document of every source, or returns every error (each naming its file,
/// document and resource) and no output at all.
pub fn process(sources: &[Source], action: Action) -> Result<Output, Vec<String>> {
    let mut documents = Vec::new();
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        for chunk in documents::split(&source.text) {
            let place = format!("{}: doc {}", source.name, chunk.index);
            match transform_chunk(&chunk, &place, action, &mut notes) {
                Ok(Some(text)) => documents.push(text),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Output {
        text: documents.join("---\n"),
        notes,
    })
}

/// Parses every document of a source as the API server would receive it (for comparing
/// manifests by content); empty documents are left out.
pub fn parse_all(source: &Source) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    for chunk in documents::split(&source.text) {
        let place = format!("{}: doc {}", source.name, chunk.index);
        let parsed = documents::parse(&chunk.text).map_err(|e| format!("{place}: {e}"))?;
        if let Some(value) = parsed {
            values.push(documents::to_json(value).map_err(|e| format!("{place}: {e}"))?);
        }
    }
    Ok(values)
}

/// The text of one output document (`None` for an empty document).
fn transform_chunk(
    chunk: &Chunk,
    place: &str,
    action: Action,
    notes: &mut Vec<String>,
) -> Result<Option<String>, String> {
    let value =
        documents::parse(&chunk.text).map_err(|e| format!("{place}: not valid YAML: {e}"))?;
    let Some(value) = value else { return Ok(None) };
    let verbatim = || format!("{}\n", chunk.text.trim_end());
    if !is_list(&value) && workload(&value).is_none() {
        check_object(&value).map_err(|e| format!("{place}: {e}"))?;
        return Ok(Some(verbatim()));
    }
    let mut value = documents::to_json(value).map_err(|e| format!("{place}: {e}"))?;
    let changed = transform(&mut value, place, action, notes)?;
    if !changed {
        return Ok(Some(verbatim()));
    }
    Ok(Some(to_yaml(&value)))
}

/// Transforms a resource (or each item of a List) in place; true when anything changed.
fn transform(
    value: &mut Value,
    place: &str,
    action: Action,
    notes: &mut Vec<String>,
) -> Result<bool, String> {
    if is_list_json(value) {
        let Some(Value::Array(items)) = value.get_mut("items") else {
            return Err(format!("{place}: items: a List needs an items list"));
        };
        let mut changed = false;
        let mut errors = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let place = format!("{place} item {}", i + 1);
            match transform(item, &place, action, notes) {
                Ok(c) => changed |= c,
                Err(e) => errors.push(e),
            }
        }
        return if errors.is_empty() {
            Ok(changed)
        } else {
            Err(errors.join("\n"))
        };
    }
    let title = title(value);
    let place = format!("{place} ({title})");
    let Some(pointer) = workload_json(value) else {
        return check_object_json(value)
            .map(|()| false)
            .map_err(|e| format!("{place}: {e}"));
    };
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = namespace.to_string();
    let field = pointer.trim_start_matches('/').replace('/', ".");
    let Some(template) = value.pointer_mut(pointer) else {
        return Err(format!(
            "{place}: {field}: missing: a {} needs a pod template",
            kind(value)
        ));
    };
    let error = |e: InjectError| match e {
        InjectError::Malformed { path, reason } if !field.is_empty() => {
            format!("{place}: {field}.{path}: {reason}")
        }
        e => format!("{place}: {e}"),
    };
    let replacement = match action {
        Action::Inject(config) => {
            let ns = Namespace {
                name: &namespace,
                labels: None,
            };
            match inject::inject(template, config, &ns).map_err(error)? {
                Outcome::Injected { pod, warnings } => {
                    notes.extend(
                        warnings
                            .into_iter()
                            .map(|w| format!("{place}: warning: {w}")),
                    );
                    Some(pod)
                }
                Outcome::Skipped(skip) => {
                    notes.push(format!("{place}: skipped: {skip}"));
                    None
                }
            }
        }
        Action::Uninject => inject::uninject(template).map_err(error)?,
    };
    Ok(match replacement {
        Some(pod) => {
            *template = pod;
            true
        }
        None => false,
    })
}

/// Where the pod template of a workload kind is (`""`: the object is the pod).
fn template_pointer(api_version: &str, kind: &str) -> Option<&'static str> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("", "Pod") => Some(""),
        ("", "ReplicationController") => Some("/spec/template"),
        ("apps" | "extensions", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            Some("/spec/template")
        }
        ("batch", "Job") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn field<'a>(value: &'a serde_norway::Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(serde_norway::Value::as_str)
}

fn is_list(value: &serde_norway::Value) -> bool {
    field(value, "kind").is_some_and(|k| k.ends_with("List")) && value.get("items").is_some()
}

fn is_list_json(value: &Value) -> bool {
    kind(value).ends_with("List") && value.get("items").is_some()
}

fn workload(value: &serde_norway::Value) -> Option<&'static str> {
    template_pointer(field(value, "apiVersion")?, field(value, "kind")?)
}

fn workload_json(value: &Value) -> Option<&'static str> {
    let api_version = value.get("apiVersion").and_then(Value::as_str)?;
    template_pointer(api_version, kind(value))
}

fn kind(value: &Value) -> &str {
    value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn title(value: &Value) -> String {
    let meta = |key: &str| {
        value
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
    };
    let name = meta("name").or(meta("generateName")).unwrap_or("?");
    match meta("namespace") {
        Some(ns) => format!("{} {ns}/{name}", kind(value)),
        None => format!("{} {name}", kind(value)),
    }
}

fn check_object(value: &serde_norway::Value) -> Result<(), String> {
    if !value.is_mapping() {
        return Err("expected a Kubernetes resource (a mapping with apiVersion and kind)".into());
    }
    if field(value, "apiVersion").is_none() || field(value, "kind").is_none() {
        return Err("not a Kubernetes resource: apiVersion and kind are required".into());
    }
    Ok(())
}

fn check_object_json(value: &Value) -> Result<(), String> {
    if value.get("apiVersion").and_then(Value::as_str).is_none() || kind(value).is_empty() {
        return Err("not a Kubernetes resource: apiVersion and kind are required".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
