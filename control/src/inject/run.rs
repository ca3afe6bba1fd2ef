//! The injected processes as the kubelet would start them: arguments and environment of
//! sluice-init and sluice-proxy with the downward API resolved, and the files of the podinfo
//! volume. For running an injected pod without Kubernetes (the end-to-end tests).

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

use super::{INIT_CONTAINER, InjectError, PODINFO_PATH, PROXY_CONTAINER, malformed, typed};

/// What the kubelet would know about the running pod.
#[derive(Clone, Debug)]
pub struct PodRuntime {
    pub pod_name: String,
    pub namespace: String,
    pub pod_ip: String,
}

/// One process: image, arguments (after the image's entrypoint) and environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// The two injected processes and the downward-API files the proxy reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    pub init: Process,
    pub proxy: Process,
    /// Path → content, as the kubelet would write them.
    pub files: Vec<(PathBuf, String)>,
}

/// Reads an injected pod's sluice-init and sluice-proxy as they would run.
pub fn run_spec(pod: &Value, runtime: &PodRuntime) -> Result<RunSpec, InjectError> {
    let spec: PodSpec = typed(pod.get("spec").unwrap_or(&Value::Null), "spec")?;
    let labels: BTreeMap<String, String> = match pod.pointer("/metadata/labels") {
        Some(labels) if !labels.is_null() => typed(labels, "metadata.labels")?,
        _ => BTreeMap::new(),
    };
    let find = |name: &str| {
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        all.into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| malformed("spec", &format!("no container {name:?}: not injected")))
    };
    let fields = |path: &str| -> Option<String> {
        match path {
            "metadata.name" => Some(runtime.pod_name.clone()),
            "metadata.namespace" => Some(runtime.namespace.clone()),
            "status.podIP" => Some(runtime.pod_ip.clone()),
            "spec.serviceAccountName" => Some(
                spec.service_account_name
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            _ => None,
        }
    };
    let labels_file = labels
        .iter()
        .map(|(k, v)| format!("{k}={}\n", quote(v)))
        .collect::<String>();
    Ok(RunSpec {
        init: process(find(INIT_CONTAINER)?, &fields),
        proxy: process(find(PROXY_CONTAINER)?, &fields),
        files: vec![(PathBuf::from(PODINFO_PATH).join("labels"), labels_file)],
    })
}

fn process(container: &Container, fields: &dyn Fn(&str) -> Option<String>) -> Process {
    let env = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => fields(&from.field_ref.as_ref()?.field_path)?,
                (None, None) => String::new(),
            };
            Some((e.name.clone(), value))
        })
        .collect();
    Process {
        image: container.image.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        env,
    }
}

/// Quotes a label value the way the downward API writes it (Go's `%q`).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
