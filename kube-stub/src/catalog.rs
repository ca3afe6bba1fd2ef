//! Which resource types the stand-in serves: groups, versions, kinds and their discovery names.

use std::cmp::Ordering;

/// One resource type: a kind of one API group, served at one or more versions.
///
/// An object is stored once per type; each served version shows it with its `apiVersion`
/// rewritten, as the API server does for the versions of a CustomResourceDefinition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// The API group, `""` for the core group (`/api/v1`).
    pub group: String,
    /// Served versions, most preferred first (the order discovery reports them in).
    pub versions: Vec<String>,
    /// `kind`, e.g. `VirtualService`.
    pub kind: String,
    /// The resource name in URLs, e.g. `virtualservices`.
    pub plural: String,
    /// The singular name, e.g. `virtualservice`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts, e.g. `vs`.
    pub short_names: Vec<String>,
    /// Categories (`kubectl get istio-io`).
    pub categories: Vec<String>,
    /// Field selectors accepted besides `metadata.name` and `metadata.namespace`, as dotted
    /// paths into the object (e.g. `spec.nodeName`).
    pub field_selectors: Vec<String>,
}

impl ResourceType {
    /// A type with the usual derived names: plural = lowercase kind + `s`, singular = lowercase
    /// kind, no short names, categories or extra field selectors.
    pub fn new(group: &str, versions: &[&str], kind: &str, namespaced: bool) -> Self {
        let singular = kind.to_ascii_lowercase();
        let mut versions: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        versions.sort_by(|a, b| version_priority(a, b));
        Self {
            group: group.to_string(),
            versions,
            kind: kind.to_string(),
            plural: format!("{singular}s"),
            singular,
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            field_selectors: Vec::new(),
        }
    }

    /// Replaces the plural name.
    pub fn plural(mut self, plural: &str) -> Self {
        self.plural = plural.to_string();
        self
    }

    /// Sets the short names.
    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// Sets the categories.
    pub fn categories(mut self, categories: &[&str]) -> Self {
        self.categories = categories.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Sets the extra field selectors.
    pub fn field_selectors(mut self, fields: &[&str]) -> Self {
        self.field_selectors = fields.iter().map(|f| f.to_string()).collect();
        self
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

/// The versions of `networking.istio.io` the stand-in can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum IstioVersion {
    /// `v1` (Istio 1.22 and later).
    V1,
    /// `v1beta1`.
    V1beta1,
    /// `v1alpha3`, the oldest.
    V1alpha3,
}

impl IstioVersion {
    /// All three, as a current Istio serves them.
    pub const ALL: [IstioVersion; 3] = [Self::V1, Self::V1beta1, Self::V1alpha3];

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
            Self::V1alpha3 => "v1alpha3",
        }
    }
}

impl std::str::FromStr for IstioVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" => Ok(Self::V1),
            "v1beta1" => Ok(Self::V1beta1),
            "v1alpha3" => Ok(Self::V1alpha3),
            other => Err(format!(
                "unknown networking.istio.io version {other:?} (expected v1, v1beta1 or v1alpha3)"
            )),
        }
    }
}

/// The set of served resource types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    types: Vec<ResourceType>,
}

impl Default for Catalog {
    /// The core Kubernetes types, Istio's networking kinds at all three versions and sluice's
    /// MeshConfig and ReleasePolicy.
    fn default() -> Self {
        Self::kubernetes()
            .with_istio(&IstioVersion::ALL)
            .with_meshconfig()
            .with_release_policy()
    }
}

impl Catalog {
    /// The Kubernetes types a mesh control plane and kubectl users touch: Namespace, Service,
    /// Pod, ConfigMap, Secret, EndpointSlice, the webhook configurations,
    /// CustomResourceDefinition and Deployment.
    pub fn kubernetes() -> Self {
        let types = vec![
            ResourceType::new("", &["v1"], "Namespace", false)
                .short_names(&["ns"])
                .field_selectors(&["status.phase"]),
            ResourceType::new("", &["v1"], "Service", true)
                .short_names(&["svc"])
                .categories(&["all"]),
            ResourceType::new("", &["v1"], "Pod", true)
                .short_names(&["po"])
                .categories(&["all"])
                .field_selectors(&[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "status.phase",
                    "status.podIP",
                ]),
            ResourceType::new("", &["v1"], "ConfigMap", true).short_names(&["cm"]),
            ResourceType::new("", &["v1"], "Secret", true).field_selectors(&["type"]),
            ResourceType::new("discovery.k8s.io", &["v1"], "EndpointSlice", true),
            ResourceType::new(
                "admissionregistration.k8s.io",
                &["v1"],
                "MutatingWebhookConfiguration",
                false,
            )
            .categories(&["api-extensions"]),
            ResourceType::new(
                "admissionregistration.k8s.io",
                &["v1"],
                "ValidatingWebhookConfiguration",
                false,
            )
            .categories(&["api-extensions"]),
            ResourceType::new(
                "apiextensions.k8s.io",
                &["v1"],
                "CustomResourceDefinition",
                false,
            )
            .short_names(&["crd", "crds"])
            .categories(&["api-extensions"]),
            ResourceType::new("apps", &["v1"], "Deployment", true)
                .short_names(&["deploy"])
                .categories(&["all"]),
        ];
        Self { types }
    }

    /// Adds VirtualService, DestinationRule, ServiceEntry and Gateway of `networking.istio.io`,
    /// served at `versions` (none: the group is not served).
    pub fn with_istio(self, versions: &[IstioVersion]) -> Self {
        if versions.is_empty() {
            return self;
        }
        let versions: Vec<&str> = versions.iter().map(|v| v.as_str()).collect();
        let istio = |kind: &str, short: &str| {
            ResourceType::new("networking.istio.io", &versions, kind, true)
                .short_names(&[short])
                .categories(&["istio-io", "networking-istio-io"])
        };
        self.with_type(istio("VirtualService", "vs"))
            .with_type(istio("DestinationRule", "dr"))
            .with_type(istio("ServiceEntry", "se").plural("serviceentries"))
            .with_type(istio("Gateway", "gw"))
    }

    /// Adds sluice's `sluice.dev/v1alpha1` MeshConfig.
    pub fn with_meshconfig(self) -> Self {
        self.with_type(
            ResourceType::new("sluice.dev", &["v1alpha1"], "MeshConfig", true)
                .categories(&["sluice"]),
        )
    }

    /// Adds sluice's `sluice.dev/v1alpha1` ReleasePolicy.
    pub fn with_release_policy(self) -> Self {
        self.with_type(
            ResourceType::new("sluice.dev", &["v1alpha1"], "ReleasePolicy", true)
                .plural("releasepolicies")
                .categories(&["sluice"]),
        )
    }

    /// Adds (or replaces, by group and kind) a resource type.
    pub fn with_type(mut self, resource: ResourceType) -> Self {
        self.types
            .retain(|t| !(t.group == resource.group && t.kind == resource.kind));
        self.types.push(resource);
        self
    }

    /// All served types.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The served groups with their versions (union over the group's types, most preferred
    /// first), core group excluded, in the order types were added.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            let i = match groups.iter().position(|(g, _)| *g == t.group) {
                Some(i) => i,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            for v in &t.versions {
                if !groups[i].1.contains(v) {
                    groups[i].1.push(v.clone());
                }
            }
            groups[i].1.sort_by(|a, b| version_priority(a, b));
        }
        groups
    }

    /// The types served at `group`/`version`.
    pub fn at_version<'a>(
        &'a self,
        group: &str,
        version: &str,
    ) -> impl Iterator<Item = &'a ResourceType> {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.serves(version))
    }

    /// The type whose URL name is `plural` at `group`/`version`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.at_version(group, version).find(|t| t.plural == plural)
    }

    /// The type of `kind` in `group` (served at any version).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
    }
}

/// Splits an `apiVersion` into group and version (`v1` → `("", "v1")`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Kubernetes' version order: GA before beta before alpha, higher numbers first, versions that
/// do not look like Kubernetes versions last in lexical order.
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u32 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        let (stage, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (2, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (1, m)
        } else {
            return None;
        };
        Some((stage, major, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_does() {
        let mut v = vec![
            "v1alpha3", "foo", "v1", "v2beta1", "v1beta1", "v2", "v1alpha1",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            [
                "v2", "v1", "v2beta1", "v1beta1", "v1alpha3", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn istio_group_is_served_at_the_chosen_versions_only() {
        let catalog = Catalog::kubernetes().with_istio(&[IstioVersion::V1alpha3]);
        let groups = catalog.groups();
        let istio = groups
            .iter()
            .find(|(g, _)| g == "networking.istio.io")
            .unwrap();
        assert_eq!(istio.1, ["v1alpha3"]);
        assert!(
            catalog
                .by_plural("networking.istio.io", "v1", "virtualservices")
                .is_none()
        );
        let se = catalog
            .by_plural("networking.istio.io", "v1alpha3", "serviceentries")
            .unwrap();
        assert_eq!(se.kind, "ServiceEntry");
        assert!(catalog.by_kind("sluice.dev", "MeshConfig").is_none());
    }

    #[test]
    fn default_serves_istio_v1_first() {
        let groups = Catalog::default().groups();
        let istio = groups
            .iter()
            .find(|(g, _)| g == "networking.istio.io")
            .unwrap();
        assert_eq!(istio.1, ["v1", "v1beta1", "v1alpha3"]);
        assert!(
            groups
                .iter()
                .any(|(g, v)| g == "sluice.dev" && v == &["v1alpha1"])
        );
    }
}
