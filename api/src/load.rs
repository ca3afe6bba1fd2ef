//! Loading config from YAML: files, directories, multi-document streams and
//! Kubernetes `List`s, with strict field checking.
//!
//! Every problem becomes a [`Diagnostic`]; nothing here panics on bad input.

mod flow_scalars;
mod strict;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};

use crate::diagnostic::{Diagnostic, Severity};
use crate::resource::{Meta, Origin, Resource, Spec};

/// The API versions of `networking.istio.io` sluice reads, all treated the same.
pub const ISTIO_VERSIONS: [&str; 3] = ["v1alpha3", "v1beta1", "v1"];

/// Resources loaded from one or more sources, with what was found wrong.
#[derive(Clone, Debug, Default)]
pub struct ConfigSet {
    /// Resources that parsed; validation may still report errors about them.
    pub resources: Vec<Resource>,
    /// Errors, warnings and notes, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigSet {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Appends another set.
    pub fn extend(&mut self, other: ConfigSet) {
        self.resources.extend(other.resources);
        self.diagnostics.extend(other.diagnostics);
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Loads files and directories (their `.yaml`, `.yml` and `.json` files, sorted
/// by name, not recursing into hidden entries). `-` reads standard input.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> ConfigSet {
    let mut set = ConfigSet::default();
    for path in paths {
        let path = path.as_ref();
        if path == Path::new("-") {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => set.extend(load_str("-", &text)),
                Err(e) => set.diagnostics.push(Diagnostic::file(
                    "-",
                    format!("cannot read standard input: {e}"),
                )),
            }
            continue;
        }
        match config_files(path) {
            Ok(files) => {
                for file in files {
                    set.extend(load_file(&file));
                }
            }
            Err(e) => set
                .diagnostics
                .push(Diagnostic::file(&path.display().to_string(), e)),
        }
    }
    set
}

/// The config files a path stands for: itself, or a directory's YAML/JSON files.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                pending.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn load_file(path: &Path) -> ConfigSet {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&name, &text),
        Err(e) => ConfigSet {
            diagnostics: vec![Diagnostic::file(&name, format!("cannot read: {e}"))],
            ..ConfigSet::default()
        },
    }
}

/// Loads a YAML (or JSON) text of one or more documents; `file` names it in
/// diagnostics. Plain scalars with a `:` before a flow indicator
/// (`[2001:db8::]`) read as kubectl reads them (see `flow_scalars`).
pub fn load_str(file: &str, text: &str) -> ConfigSet {
    let file: Arc<str> = Arc::from(file);
    let mut text = Cow::Borrowed(text);
    // Each round quotes one more scalar, around one of the text's colons.
    for _ in 0..=text.matches(':').count() {
        match load_documents(&file, &text) {
            Ok(set) => return set,
            Err((set, (line, column))) => match flow_scalars::quote_at(&text, line, column) {
                Some(quoted) => text = Cow::Owned(quoted),
                None => return set,
            },
        }
    }
    load_documents(&file, &text).unwrap_or_else(|(set, _)| set)
}

/// The documents of `text`; on a plain scalar libyaml rejects for a colon
/// before a flow indicator, also the (1-based) line and column of that colon.
fn load_documents(file: &Arc<str>, text: &str) -> Result<ConfigSet, (ConfigSet, (usize, usize))> {
    let mut set = ConfigSet::default();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.clone(),
            doc: index + 1,
            item: None,
        };
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => load_document(&mut set, origin, value),
            Err(e) => {
                set.diagnostics.push(Diagnostic::new(
                    Severity::Error,
                    &origin,
                    format!("not valid YAML: {e}"),
                ));
                return match flow_scalars::rejected_colon(&e) {
                    Some(at) => Err((set, at)),
                    None => Ok(set),
                };
            }
        }
    }
    Ok(set)
}

fn load_document(set: &mut ConfigSet, origin: Origin, value: Value) {
    let Value::Mapping(mut map) = value else {
        let what = type_name(&value);
        set.diagnostics.push(Diagnostic::new(
            Severity::Error,
            &origin,
            format!("expected a resource (a mapping with apiVersion and kind), found {what}"),
        ));
        return;
    };
    let api_version = take_string(&mut map, "apiVersion");
    let kind = take_string(&mut map, "kind");
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        set.diagnostics.push(Diagnostic::new(
            Severity::Error,
            &origin,
            "document has no apiVersion and kind; every document must name both (is it a fragment of a larger resource?)",
        ));
        return;
    };
    if kind == "List" && api_version == "v1" {
        load_list(set, origin, map);
        return;
    }
    let subject = format!("{kind} {}", meta_title(&map));
    match classify(&api_version, &kind) {
        Class::Spec(parse) => match parse_resource(&map, parse) {
            Ok((meta, spec)) => set.resources.push(Resource { meta, spec, origin }),
            Err(errors) => set
                .diagnostics
                .extend(errors.into_iter().map(|(path, message)| {
                    Diagnostic::new(Severity::Error, &origin, message)
                        .subject(subject.clone())
                        .at(path)
                })),
        },
        Class::Skip(severity, message) => {
            set.diagnostics
                .push(Diagnostic::new(severity, &origin, message).subject(subject));
        }
    }
}

fn load_list(set: &mut ConfigSet, origin: Origin, mut map: Mapping) {
    let items = match map.remove("items") {
        Some(Value::Sequence(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            let what = type_name(&other);
            set.diagnostics.push(
                Diagnostic::new(
                    Severity::Error,
                    &origin,
                    format!("expected a list, found {what}"),
                )
                .at("items"),
            );
            return;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        load_document(
            set,
            Origin {
                item: Some(i),
                ..origin.clone()
            },
            item,
        );
    }
}

type SpecParser = fn(Value) -> Result<Spec, Vec<(String, String)>>;

enum Class {
    Spec(SpecParser),
    Skip(Severity, String),
}

fn classify(api_version: &str, kind: &str) -> Class {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    match (group, kind) {
        ("networking.istio.io", _) if !ISTIO_VERSIONS.contains(&version) => Class::Skip(
            Severity::Error,
            format!("unsupported apiVersion {api_version}; networking.istio.io is read in versions v1alpha3, v1beta1 and v1"),
        ),
        ("networking.istio.io", "VirtualService") => Class::Spec(|v| strict::parse(v, "spec", "VirtualService").map(Spec::VirtualService)),
        ("networking.istio.io", "DestinationRule") => Class::Spec(|v| strict::parse(v, "spec", "DestinationRule").map(Spec::DestinationRule)),
        ("networking.istio.io", "ServiceEntry") => Class::Spec(|v| strict::parse(v, "spec", "ServiceEntry").map(Spec::ServiceEntry)),
        ("networking.istio.io", "Gateway") => Class::Spec(|v| strict::parse(v, "spec", "Gateway").map(Spec::Gateway)),
        ("networking.istio.io", "EnvoyFilter") => Class::Skip(
            Severity::Warning,
            "EnvoyFilter is not acted on by sluice: it patches Envoy's own configuration, which sluice does not use; skipped".into(),
        ),
        ("networking.istio.io", other) => Class::Skip(
            Severity::Warning,
            format!("{other} is not acted on by sluice (it reads VirtualService, DestinationRule, ServiceEntry and Gateway); skipped"),
        ),
        ("sluice.dev", "MeshConfig") if version == "v1alpha1" => {
            Class::Spec(|v| strict::parse(v, "spec", "MeshConfig").map(Spec::MeshConfig))
        }
        ("sluice.dev", "ReleasePolicy") if version == "v1alpha1" => {
            Class::Spec(|v| strict::parse(v, "spec", "ReleasePolicy").map(Spec::ReleasePolicy))
        }
        ("sluice.dev", _) => Class::Skip(
            Severity::Error,
            format!("unknown sluice kind {kind} ({api_version}); sluice.dev/v1alpha1 defines MeshConfig and ReleasePolicy"),
        ),
        (g, _) if is_kubernetes_group(g) => Class::Skip(
            Severity::Note,
            format!("Kubernetes {kind} skipped: not a mesh config kind"),
        ),
        _ => Class::Skip(
            Severity::Warning,
            format!("{kind} ({api_version}) is not a kind sluice acts on; skipped"),
        ),
    }
}

fn is_kubernetes_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// Top-level fields a resource may have besides apiVersion and kind.
const RESOURCE_FIELDS: [&str; 3] = ["metadata", "spec", "status"];

fn parse_resource(map: &Mapping, parse: SpecParser) -> Result<(Meta, Spec), Vec<(String, String)>> {
    let mut errors = Vec::new();
    for key in map.keys() {
        let name = key.as_str().unwrap_or("?");
        if !RESOURCE_FIELDS.contains(&name) {
            errors.push((
                name.to_string(),
                format!(
                    "unknown field \"{name}\" (allowed: apiVersion, kind, metadata, spec, status)"
                ),
            ));
        }
    }
    let meta: Meta = match map.get("metadata").cloned().map(parse_lenient) {
        None => {
            errors.push((
                "metadata.name".into(),
                "required: every resource needs a name".into(),
            ));
            Meta::default()
        }
        Some(Ok(meta)) => meta,
        Some(Err(e)) => {
            errors.push(("metadata".into(), e));
            Meta::default()
        }
    };
    if map.contains_key("metadata") && meta.name.is_empty() {
        errors.push((
            "metadata.name".into(),
            "required: every resource needs a name".into(),
        ));
    }
    let spec = match map.get("spec") {
        Some(spec) => parse(spec.clone()),
        None => Err(vec![(
            "spec".into(),
            "required: the resource has no spec".into(),
        )]),
    };
    match spec {
        Ok(spec) if errors.is_empty() => Ok((meta, spec)),
        Ok(_) => Err(errors),
        Err(spec_errors) => {
            errors.extend(spec_errors);
            Err(errors)
        }
    }
}

fn parse_lenient<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })
}

fn take_string(map: &mut Mapping, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn meta_title(map: &Mapping) -> String {
    let field = |key: &str| {
        map.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = field("name").unwrap_or_else(|| "<unnamed>".into());
    let namespace = field("namespace").unwrap_or_else(|| crate::resource::DEFAULT_NAMESPACE.into());
    format!("{namespace}/{name}")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
