//! Just enough OpenAPI for kubectl: v3 shows every type taking server-side field validation
//! (`fieldValidation`), so a current `kubectl create -f` leaves validation to the server; v2 is
//! an empty document, so an older kubectl's client-side validation finds no schema and skips.
//! No schemas are served: objects are stored as sent.

use serde_json::{Map, Value, json};

use crate::catalog::Catalog;

/// The media type of OpenAPI v2 in protobuf, which kubectl asks for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The same as a `Content-Type` Go's MIME parser accepts (no `@`), as the API server sends it.
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` in JSON: a document without paths or definitions. (In protobuf, the same
/// empty document is zero bytes.)
pub fn v2_json() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": {},
        "definitions": {},
    })
}

/// `/openapi/v3`: the group versions and where their documents are.
pub fn root(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    for prefix in group_versions(catalog) {
        paths.insert(
            prefix.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{prefix}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`: a PATCH operation per type, tagged
/// with its group, version and kind, taking `fieldValidation`.
pub fn group_version(catalog: &Catalog, group: &str, version: &str) -> Value {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    for resource in catalog.at_version(group, version) {
        let path = if resource.namespaced {
            format!(
                "{prefix}/namespaces/{{namespace}}/{}/{{name}}",
                resource.plural
            )
        } else {
            format!("{prefix}/{}/{{name}}", resource.plural)
        };
        let patch = json!({
            "operationId": format!("patch{}", resource.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {
                "group": resource.group, "version": version, "kind": resource.kind,
            },
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": patch}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

/// The URL prefixes of the served group versions (`api/v1`, `apis/GROUP/VERSION`).
fn group_versions(catalog: &Catalog) -> Vec<String> {
    let core = catalog
        .at_version("", "v1")
        .next()
        .map(|_| "api/v1".to_string());
    let groups = catalog.groups().into_iter().flat_map(|(group, versions)| {
        versions
            .into_iter()
            .map(move |version| format!("apis/{group}/{version}"))
    });
    core.into_iter().chain(groups).collect()
}
