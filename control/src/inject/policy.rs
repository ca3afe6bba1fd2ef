//! Whether a pod gets the sidecar: hostNetwork, the pod's `sluice.dev/inject` label, system
//! namespaces, and the namespace's `sluice-injection` label, in that order.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;

use super::{INIT_CONTAINER, InjectError, Namespace, PROXY_CONTAINER, annotation};

/// Namespaces never injected, whatever the labels say: the cluster's own components must not
/// depend on the mesh.
pub const SYSTEM_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];

/// Why a pod was left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `sluice.dev/status` is present: injected before.
    AlreadyInjected,
    /// A container is already named sluice-init or sluice-proxy (added by hand?).
    HasSidecar(String),
    /// The pod shares the node's network namespace; capturing would capture the node.
    HostNetwork,
    /// The pod is labelled `sluice.dev/inject: "false"`.
    PodOptOut,
    /// kube-system or kube-public.
    SystemNamespace(String),
    /// The namespace is labelled `sluice-injection=disabled`.
    NamespaceDisabled(String),
    /// The namespace's labels are known and do not enable injection.
    NamespaceNotEnabled(String),
}

impl Skip {
    /// A short, stable name (metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Skip::AlreadyInjected => "already-injected",
            Skip::HasSidecar(_) => "has-sidecar",
            Skip::HostNetwork => "host-network",
            Skip::PodOptOut => "pod-label",
            Skip::SystemNamespace(_) => "system-namespace",
            Skip::NamespaceDisabled(_) => "namespace-disabled",
            Skip::NamespaceNotEnabled(_) => "namespace-not-enabled",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::AlreadyInjected => write!(f, "already injected ({} is set)", annotation::STATUS),
            Skip::HasSidecar(name) => {
                write!(
                    f,
                    "the pod already has a container named {name:?} (added by hand?)"
                )
            }
            Skip::HostNetwork => write!(f, "the pod uses hostNetwork"),
            Skip::PodOptOut => write!(
                f,
                "the pod is labelled {}: \"false\"",
                annotation::POD_INJECT
            ),
            Skip::SystemNamespace(ns) => write!(f, "namespace {ns} is never injected"),
            Skip::NamespaceDisabled(ns) => {
                write!(
                    f,
                    "namespace {ns} is labelled {}=disabled",
                    annotation::NAMESPACE_INJECTION
                )
            }
            Skip::NamespaceNotEnabled(ns) => write!(
                f,
                "namespace {ns} is not labelled {}=enabled and the pod not {}: \"true\"",
                annotation::NAMESPACE_INJECTION,
                annotation::POD_INJECT
            ),
        }
    }
}

/// `None` to inject, or why not. The pod's label overrides the namespace's, both ways.
pub fn decide(
    labels: &BTreeMap<String, String>,
    spec: &PodSpec,
    namespace: &Namespace,
) -> Result<Option<Skip>, InjectError> {
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    if let Some(c) = all
        .into_iter()
        .find(|c| [INIT_CONTAINER, PROXY_CONTAINER].contains(&c.name.as_str()))
    {
        return Ok(Some(Skip::HasSidecar(c.name.clone())));
    }
    if spec.host_network == Some(true) {
        return Ok(Some(Skip::HostNetwork));
    }
    if SYSTEM_NAMESPACES.contains(&namespace.name) {
        return Ok(Some(Skip::SystemNamespace(namespace.name.into())));
    }
    match labels.get(annotation::POD_INJECT).map(|v| v.trim()) {
        Some("true") => return Ok(None),
        Some("false") => return Ok(Some(Skip::PodOptOut)),
        Some(other) => {
            return Err(InjectError::Annotation {
                key: format!("{} (label)", annotation::POD_INJECT),
                value: other.into(),
                reason: "must be \"true\" or \"false\"".into(),
            });
        }
        None => {}
    }
    let Some(ns_labels) = namespace.labels else {
        return Ok(None);
    };
    let name = namespace.name.to_string();
    Ok(
        match ns_labels
            .get(annotation::NAMESPACE_INJECTION)
            .map(String::as_str)
        {
            Some("enabled") => None,
            Some("disabled") => Some(Skip::NamespaceDisabled(name)),
            _ => Some(Skip::NamespaceNotEnabled(name)),
        },
    )
}
