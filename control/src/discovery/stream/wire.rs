//! The discovery stream's JSON lines, as the control plane writes and reads them.
//!
//! Proxy → control plane: a [`Hello`], then a [`Reply`] per version received.
//! Control plane → proxy: one [`Update`] per version that changed the proxy's view. Each
//! resource travels as `{"id", "doc"}`: `id` names the object it was made from (unique
//! where `kind/namespace/name` is not: a Service and a ServiceEntry may share a name) and
//! `doc` is the resource as a Kubernetes-style object the proxy's strict loader reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use sluice_api::{Origin, Resource, Spec};

/// Who is asking: the first line a proxy sends.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hello {
    /// The proxy's namespace: its view is what this namespace sees.
    pub namespace: String,
    /// Its pod.
    #[serde(default)]
    pub pod_name: String,
    /// Its pod's labels (DestinationRule `workloadSelector`s select by them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its pod's IP address.
    #[serde(default)]
    pub pod_ip: Option<String>,
    /// Its pod's service account.
    #[serde(default)]
    pub service_account: Option<String>,
}

/// What a proxy says about a version it received.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged, deny_unknown_fields)]
pub enum Reply {
    /// The version is in force.
    Ack {
        /// The version.
        ack: u64,
    },
    /// The version could not be applied; the proxy keeps its last good config.
    Nack {
        /// The version.
        nack: u64,
        /// Why, naming the resources and fields.
        error: String,
    },
}

/// A resource rendered for the wire: its id and its document as JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The object the resource was made from.
    pub id: Arc<str>,
    /// `{"apiVersion", "kind", "metadata", "spec"}`.
    pub doc: Arc<str>,
}

/// The id of a resource: its origin's file (discovery names each Kubernetes object there,
/// `kubernetes Service shop/reviews`), with the document index when a file holds several.
pub fn id(origin: &Origin) -> String {
    if origin.doc == 1 && origin.item.is_none() {
        origin.file.to_string()
    } else {
        origin.to_string()
    }
}

/// The document of a resource, as a Kubernetes object of its kind.
pub fn doc(resource: &Resource) -> serde_json::Result<String> {
    let api_version = match resource.spec {
        Spec::MeshConfig(_) | Spec::ReleasePolicy(_) => "sluice.dev/v1alpha1",
        _ => "networking.istio.io/v1",
    };
    serde_json::to_string(&json!({
        "apiVersion": api_version,
        "kind": resource.spec.kind(),
        "metadata": resource.meta,
        "spec": resource.spec,
    }))
}

/// One line of the stream: a full state, or the changes since the last line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// The cluster config version this brings the proxy to.
    pub version: u64,
    /// True: `upsert` is everything, replacing what the proxy holds.
    pub full: bool,
    /// Resources new or changed, in the view's order.
    pub upsert: Vec<Rendered>,
    /// Ids of the resources gone.
    pub remove: Vec<Arc<str>>,
    /// Every id in the view's order, when removing and appending at the end does not give it.
    pub order: Option<Vec<Arc<str>>>,
}

impl Update {
    /// The JSON line, ending in `\n`. Documents are spliced in as they were rendered (once
    /// per version for every proxy), not parsed again.
    pub fn line(&self) -> String {
        let entries = |list: &[Rendered]| {
            let items: Vec<String> = list
                .iter()
                .map(|r| format!(r#"{{"id":{},"doc":{}}}"#, quote(&r.id), r.doc))
                .collect();
            format!("[{}]", items.join(","))
        };
        let ids = |list: &[Arc<str>]| {
            let items: Vec<String> = list.iter().map(|id| quote(id)).collect();
            format!("[{}]", items.join(","))
        };
        let mut line = format!(r#"{{"version":{},"full":{}"#, self.version, self.full);
        if self.full {
            line += &format!(r#","resources":{}"#, entries(&self.upsert));
        } else {
            line += &format!(
                r#","upsert":{},"remove":{}"#,
                entries(&self.upsert),
                ids(&self.remove)
            );
            if let Some(order) = &self.order {
                line += &format!(r#","order":{}"#, ids(order));
            }
        }
        line + "}\n"
    }
}

fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_json_with_the_documents_spliced_in() {
        let rendered = Rendered {
            id: "kubernetes Service shop/\"odd\"".into(),
            doc: r#"{"kind":"ServiceEntry"}"#.into(),
        };
        let full = Update {
            version: 3,
            full: true,
            upsert: vec![rendered.clone()],
            ..Update::default()
        };
        let value: serde_json::Value = serde_json::from_str(&full.line()).unwrap();
        assert_eq!(
            value,
            json!({"version": 3, "full": true, "resources": [
                {"id": "kubernetes Service shop/\"odd\"", "doc": {"kind": "ServiceEntry"}}
            ]})
        );
        let delta = Update {
            version: 4,
            upsert: vec![rendered],
            remove: vec!["gone".into()],
            order: Some(vec!["b".into(), "a".into()]),
            ..Update::default()
        };
        let line = delta.line();
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["remove"], json!(["gone"]));
        assert_eq!(value["order"], json!(["b", "a"]));
        assert_eq!(value["upsert"][0]["doc"]["kind"], "ServiceEntry");
    }

    #[test]
    fn replies_and_hellos_parse_strictly() {
        let ack: Reply = serde_json::from_str(r#"{"ack":2}"#).unwrap();
        assert_eq!(ack, Reply::Ack { ack: 2 });
        let nack: Reply = serde_json::from_str(r#"{"nack":3,"error":"bad"}"#).unwrap();
        assert_eq!(
            nack,
            Reply::Nack {
                nack: 3,
                error: "bad".into()
            }
        );
        assert!(serde_json::from_str::<Reply>(r#"{"ok":1}"#).is_err());
        let hello: Hello = serde_json::from_str(
            r#"{"namespace":"shop","podName":"web-1","labels":{"app":"web"},"podIp":"10.0.0.1","serviceAccount":"web"}"#,
        )
        .unwrap();
        assert_eq!(hello.labels["app"], "web");
        assert!(serde_json::from_str::<Hello>(r#"{"namespace":"a","pod":"x"}"#).is_err());
    }

    #[test]
    fn documents_load_back_as_the_same_resources() {
        let yaml = "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: r, namespace: shop, labels: {a: b}}\nspec:\n  hosts: [reviews]\n  http:\n  - timeout: 2s\n    retries: {attempts: 3, perTryTimeout: 500ms}\n    route: [{destination: {host: reviews, subset: v2}, weight: 100}]\n---\napiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: shop}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n---\napiVersion: sluice.dev/v1alpha1\nkind: ReleasePolicy\nmetadata: {name: reviews, namespace: shop}\nspec:\n  host: reviews\n  sticky: {cookie: {name: u, ttl: 1h, attributes: [Secure]}}\n  fallback: {subsets: [{from: v2, to: v1}]}\n  accessLog: {headers: [x-swimlane]}\n";
        let set = sluice_api::load_str("in.yaml", yaml);
        assert_eq!(set.resources.len(), 3);
        assert!(!set.has_errors(), "{:?}", set.diagnostics);
        for r in &set.resources {
            let again = sluice_api::load_str(&id(&r.origin), &doc(r).unwrap());
            assert!(!again.has_errors(), "{:?}", again.diagnostics);
            assert_eq!(again.resources[0].spec, r.spec);
            assert_eq!(again.resources[0].meta, r.meta);
        }
        assert_eq!(id(&set.resources[1].origin), "in.yaml: doc 2");
    }

    #[test]
    fn translated_services_load_back_as_the_same_resources() {
        use crate::discovery::fixtures;
        use crate::discovery::translate::{Pods, Settings, translate_all};
        let (services, slices, pods) = fixtures::shop();
        let translated = translate_all(&services, &slices, &Pods::new(&pods), &Settings::default());
        assert!(translated.resources.len() >= 3);
        for r in &translated.resources {
            let again = sluice_api::load_str(&id(&r.origin), &doc(r).unwrap());
            assert!(
                !again.has_errors(),
                "{}: {:?}",
                r.title(),
                again.diagnostics
            );
            assert_eq!(again.resources[0].spec, r.spec, "{}", r.title());
            assert_eq!(&*again.resources[0].origin.file, &*r.origin.file);
        }
    }
}
