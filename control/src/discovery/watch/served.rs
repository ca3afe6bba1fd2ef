//! API discovery: the Istio kinds the cluster serves, each at the first of `v1`,
//! `v1beta1`, `v1alpha3` it serves, and sluice's MeshConfig and ReleasePolicy when their
//! CRDs are installed.

use kube::Client;
use kube::discovery::{ApiGroup, ApiResource, Discovery, verbs};

/// Istio's traffic-management API group.
pub const ISTIO_GROUP: &str = "networking.istio.io";
/// The versions of [`ISTIO_GROUP`] sluice reads, most preferred first.
pub const ISTIO_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];
/// The kinds of [`ISTIO_GROUP`] sluice watches.
pub const ISTIO_KINDS: [&str; 4] = [
    "VirtualService",
    "DestinationRule",
    "ServiceEntry",
    "Gateway",
];
/// sluice's API group.
pub const SLUICE_GROUP: &str = "sluice.dev";
/// The version of [`SLUICE_GROUP`] sluice reads.
pub const SLUICE_VERSION: &str = "v1alpha1";
/// The kind of [`SLUICE_GROUP`] sluice watches for mesh-wide settings.
pub const MESH_CONFIG: &str = "MeshConfig";
/// The kind of [`SLUICE_GROUP`] sluice watches for gray releases.
pub const RELEASE_POLICY: &str = "ReleasePolicy";
/// The kinds of [`SLUICE_GROUP`] sluice watches, each optional.
pub const SLUICE_KINDS: [&str; 2] = [MESH_CONFIG, RELEASE_POLICY];

/// The custom kinds the cluster serves, as discovery found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Each served kind at the version to watch.
    pub kinds: Vec<ApiResource>,
}

impl Served {
    /// The kinds sluice reads that the cluster does not serve.
    pub fn missing(&self) -> Vec<&'static str> {
        ISTIO_KINDS
            .into_iter()
            .chain(SLUICE_KINDS)
            .filter(|kind| !self.kinds.iter().any(|r| r.kind == *kind))
            .collect()
    }

    /// Whether any `networking.istio.io` kind is served.
    pub fn has_istio(&self) -> bool {
        self.kinds.iter().any(|r| r.group == ISTIO_GROUP)
    }
}

/// Asks the API server which of sluice's custom kinds it serves, and at which version.
/// A group or kind that is not served is simply not in the answer.
pub async fn discover(client: Client) -> Result<Served, kube::Error> {
    let discovery = Discovery::new(client)
        .filter(&[ISTIO_GROUP, SLUICE_GROUP])
        .run()
        .await?;
    let mut kinds = Vec::new();
    if let Some(group) = discovery.get(ISTIO_GROUP) {
        kinds.extend(ISTIO_KINDS.iter().filter_map(|kind| {
            ISTIO_VERSIONS
                .iter()
                .find_map(|v| watchable(group, v, kind))
        }));
    }
    if let Some(group) = discovery.get(SLUICE_GROUP) {
        kinds.extend(
            SLUICE_KINDS
                .iter()
                .filter_map(|kind| watchable(group, SLUICE_VERSION, kind)),
        );
    }
    Ok(Served { kinds })
}

/// `kind` at `version` of `group`, when served there with list and watch.
fn watchable(group: &ApiGroup, version: &str, kind: &str) -> Option<ApiResource> {
    group
        .versioned_resources(version)
        .into_iter()
        .find(|(resource, caps)| {
            resource.kind == kind
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::WATCH)
        })
        .map(|(resource, _)| resource)
}
