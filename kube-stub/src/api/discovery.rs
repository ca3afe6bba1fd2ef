//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/GROUP` and the resource lists of each
//! group version in the plain form every client understands, and `/api` and `/apis` in the
//! aggregated form (`apidiscovery.k8s.io/v2`) for clients that ask for it.

use serde_json::{Value, json};

use crate::catalog::Catalog;

/// The verbs every served type supports here (no `deletecollection`).
const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": "v1.35.0-sluice-kube-stub",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "none",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// `/api`: APIVersions.
pub fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn group_document(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv),
    })
}

/// `/apis`: APIGroupList, each group's preferred version its first served one.
pub fn groups(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .iter()
        .map(|(name, versions)| group_document(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP`: APIGroup.
pub fn group(catalog: &Catalog, name: &str) -> Value {
    let groups = catalog.groups();
    let versions = groups
        .iter()
        .find(|(g, _)| g == name)
        .map(|(_, v)| v.as_slice())
        .unwrap_or_default();
    let mut document = group_document(name, versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    document
}

/// The media type of aggregated discovery v2, as clients name it in `Accept`.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .any(|media| media.replace(' ', "") == AGGREGATED_V2)
}

/// `/api` (`core`) or `/apis` as an APIGroupDiscoveryList: every group with its versions, most
/// preferred first, and their resources.
pub fn aggregated(catalog: &Catalog, core: bool) -> Value {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        catalog.groups()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| aggregated_version(catalog, group, version))
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_version(catalog: &Catalog, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = catalog
        .at_version(group, version)
        .map(|t| {
            json!({
                "resource": t.plural,
                "responseKind": {"group": t.group, "version": version, "kind": t.kind},
                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": t.singular,
                "verbs": VERBS,
                "shortNames": t.short_names,
                "categories": t.categories,
            })
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// `/api/v1` or `/apis/GROUP/VERSION`: APIResourceList.
pub fn resources(catalog: &Catalog, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = catalog
        .at_version(group, version)
        .map(|t| {
            let mut resource = json!({
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": VERBS,
            });
            if !t.short_names.is_empty() {
                resource["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                resource["categories"] = json!(t.categories);
            }
            resource
        })
        .collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}
