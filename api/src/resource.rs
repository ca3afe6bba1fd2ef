//! A loaded resource: its kind, metadata, spec and where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::istio::{DestinationRule, Gateway, ServiceEntry, VirtualService};
use crate::mesh_config::MeshConfig;
use crate::release_policy::ReleasePolicy;

/// The namespace of resources that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The metadata sluice reads; other metadata fields are accepted and ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Resource name.
    pub name: String,
    /// Namespace; absent means the namespace the config is applied to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Meta {
    /// The namespace, `default` when the resource names none.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// The spec of a resource sluice acts on. The two kinds much larger than the others are
/// boxed: a proxy holds thousands of ServiceEntries, and each would otherwise take a
/// DestinationRule's ~1 KB.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    /// networking.istio.io VirtualService.
    VirtualService(VirtualService),
    /// networking.istio.io DestinationRule.
    DestinationRule(Box<DestinationRule>),
    /// networking.istio.io ServiceEntry.
    ServiceEntry(ServiceEntry),
    /// networking.istio.io Gateway.
    Gateway(Gateway),
    /// sluice.dev MeshConfig.
    MeshConfig(MeshConfig),
    /// sluice.dev ReleasePolicy.
    ReleasePolicy(Box<ReleasePolicy>),
}

impl Spec {
    /// The resource kind, as written in `kind:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::VirtualService(_) => "VirtualService",
            Spec::DestinationRule(_) => "DestinationRule",
            Spec::ServiceEntry(_) => "ServiceEntry",
            Spec::Gateway(_) => "Gateway",
            Spec::MeshConfig(_) => "MeshConfig",
            Spec::ReleasePolicy(_) => "ReleasePolicy",
        }
    }
}

/// Where a document came from: file and 1-based document index (and item
/// index inside a Kubernetes `List`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Origin {
    /// File name as given (or `-` for standard input).
    pub file: Arc<str>,
    /// 1-based index of the YAML document in the file.
    pub doc: usize,
    /// 0-based index inside a `List` document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: doc {}", self.file, self.doc)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        Ok(())
    }
}

/// A validated resource sluice acts on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resource {
    /// Metadata.
    pub meta: Meta,
    /// The spec.
    pub spec: Spec,
    /// Where it was loaded from.
    pub origin: Origin,
}

impl Resource {
    /// True when a workload of `namespace` sees this resource, by its
    /// `exportTo`: empty or `*` everywhere, `.` its own namespace, `~`
    /// nowhere, else the namespaces named.
    pub fn visible_from(&self, namespace: &str) -> bool {
        let export_to = match &self.spec {
            Spec::VirtualService(vs) => &vs.export_to,
            Spec::DestinationRule(dr) => &dr.export_to,
            Spec::ServiceEntry(se) => &se.export_to,
            Spec::Gateway(_) | Spec::MeshConfig(_) | Spec::ReleasePolicy(_) => return true,
        };
        export_to.is_empty()
            || export_to.iter().any(|to| match to.as_str() {
                "*" => true,
                "." => self.meta.namespace() == namespace,
                other => other == namespace,
            })
    }

    /// `Kind namespace/name`, as the CLI prints it.
    pub fn title(&self) -> String {
        format!(
            "{} {}/{}",
            self.spec.kind(),
            self.meta.namespace(),
            self.meta.name
        )
    }
}
