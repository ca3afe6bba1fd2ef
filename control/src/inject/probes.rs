//! Kubelet probes under inbound capture: httpGet, tcpSocket and grpc probes on captured ports
//! are rewritten to httpGet on the proxy's health port at `/app-health/CONTAINER/KIND`; the
//! proxy runs the original check from inside the pod (its own connections are not captured).
//!
//! Without this a tcpSocket probe would always succeed (the proxy accepts every captured
//! connection), and probes would break once inbound traffic needs mTLS. Exec probes, probes
//! with a `host`, and probes on ports that are not captured are left alone.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::config::InjectConfig;

/// Probe fields and the path segment the proxy serves them at.
const PROBES: [(&str, &str); 3] = [
    ("livenessProbe", "livez"),
    ("readinessProbe", "readyz"),
    ("startupProbe", "startupz"),
];
const ACTIONS: [&str; 3] = ["httpGet", "tcpSocket", "grpc"];

/// What rewriting did to a pod.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// For the proxy (`SLUICE_APP_PROBES`): path → the original check with a numeric port and
    /// its timeout.
    pub app_probes: BTreeMap<String, Value>,
    /// For the status annotation: container → probe field → the original probe.
    pub originals: BTreeMap<String, BTreeMap<String, Value>>,
    /// Probes left alone that the user may want to know about.
    pub warnings: Vec<String>,
}

/// Rewrites the probes of the app containers and of the app's own native sidecars
/// (init containers with `restartPolicy: Always`, the only init containers with probes).
pub fn rewrite(
    spec: &mut Map<String, Value>,
    captured: &dyn Fn(u16) -> bool,
    config: &InjectConfig,
) -> Rewrite {
    let mut out = Rewrite::default();
    for field in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(field) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let restartable = container.get("restartPolicy") == Some(&json!("Always"));
            if field == "containers" || restartable {
                rewrite_container(container, captured, config.proxy.ports.health, &mut out);
            }
        }
    }
    out
}

fn rewrite_container(
    container: &mut Map<String, Value>,
    captured: &dyn Fn(u16) -> bool,
    health_port: u16,
    out: &mut Rewrite,
) {
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for (field, kind) in PROBES {
        let Some(probe) = container.get(field).and_then(Value::as_object) else {
            continue;
        };
        let Some((action, check)) = ACTIONS
            .iter()
            .find_map(|a| Some((*a, probe.get(*a)?.as_object()?)))
        else {
            continue;
        };
        if check
            .get("host")
            .and_then(Value::as_str)
            .is_some_and(|h| !h.is_empty())
        {
            continue;
        }
        let port = match resolve_port(container, check.get("port")) {
            Ok(port) => port,
            Err(reason) => {
                out.warnings.push(format!(
                    "container {name:?} {field}: {reason}; the probe is left as it was"
                ));
                continue;
            }
        };
        if !captured(port) {
            continue;
        }
        let path = format!("/app-health/{name}/{kind}");
        let mut original_check = check.clone();
        original_check.insert("port".into(), json!(port));
        let timeout = probe.get("timeoutSeconds").cloned().unwrap_or(json!(1));
        out.app_probes.insert(
            path.clone(),
            json!({ action: original_check, "timeoutSeconds": timeout }),
        );

        let original = Value::Object(probe.clone());
        let mut rewritten = probe.clone();
        for a in ACTIONS {
            rewritten.remove(a);
        }
        rewritten.insert(
            "httpGet".into(),
            json!({ "path": path, "port": health_port, "scheme": "HTTP" }),
        );
        container.insert(field.into(), Value::Object(rewritten));
        out.originals
            .entry(name.clone())
            .or_default()
            .insert(field.into(), original);
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn resolve_port(container: &Map<String, Value>, port: Option<&Value>) -> Result<u16, String> {
    match port {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {n} is out of range")),
        Some(Value::String(name)) => {
            let ports = container.get("ports").and_then(Value::as_array);
            ports
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|p| p.get("containerPort")?.as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("port {name:?} is not the name of a port of the container"))
        }
        _ => Err("the probe has no port".into()),
    }
}
