//! YAML documents to objects: multi-document text, `List`s unpacked, each object placed by its
//! apiVersion and kind among the served types.

use serde::Deserialize;
use serde_json::Value;

use crate::catalog::{Catalog, ResourceType, split_api_version};
use crate::status::ApiError;

/// Why objects could not be applied or deleted.
#[derive(Debug, thiserror::Error)]
pub enum StubError {
    /// A document is not YAML.
    #[error("doc {doc}: not valid YAML: {message}")]
    Yaml {
        /// 1-based document number.
        doc: usize,
        /// The parser's message.
        message: String,
    },
    /// A document lacks a field every object has.
    #[error("doc {doc}: {field}: {message}")]
    Document {
        /// 1-based document number.
        doc: usize,
        /// Field path.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The apiVersion and kind are not served.
    #[error(
        "{place}: no matches for kind {kind:?} in version {api_version:?} (not served by this stand-in)"
    )]
    NotServed {
        /// `doc N` or the object named.
        place: String,
        /// The apiVersion asked for.
        api_version: String,
        /// The kind asked for.
        kind: String,
    },
    /// The store refused the object, as the API server would.
    #[error("{place}: {error}")]
    Rejected {
        /// `doc N (Kind namespace/name)` or the object named.
        place: String,
        /// The API error (in the message, so not also a source).
        error: ApiError,
    },
}

/// One object of a YAML text, with the type it belongs to.
pub struct Document<'a> {
    /// 1-based number of the YAML document (items of a `List` share their list's).
    pub doc: usize,
    /// Its type.
    pub resource: &'a ResourceType,
    /// The object.
    pub object: Value,
}

impl Document<'_> {
    /// `doc N (Kind namespace/name)`, for messages.
    pub fn place(&self) -> String {
        let meta = |f: &str| {
            self.object
                .pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let name = match meta("namespace") {
            "" => meta("name").to_string(),
            ns => format!("{ns}/{}", meta("name")),
        };
        format!("doc {} ({} {name})", self.doc, self.resource.kind)
    }
}

/// Parses every object of `yaml` and finds its type.
pub fn parse<'a>(catalog: &'a Catalog, yaml: &str) -> Result<Vec<Document<'a>>, StubError> {
    let mut documents = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let doc = i + 1;
        let value = Value::deserialize(de).map_err(|e| StubError::Yaml {
            doc,
            message: e.to_string(),
        })?;
        match value {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => {
                return Err(StubError::Document {
                    doc,
                    field: "(root)",
                    message: "not an object".into(),
                });
            }
        }
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            let items = value.get("items").and_then(Value::as_array);
            for item in items.into_iter().flatten() {
                documents.push(locate(catalog, doc, item.clone())?);
            }
        } else {
            documents.push(locate(catalog, doc, value)?);
        }
    }
    Ok(documents)
}

fn locate(catalog: &Catalog, doc: usize, object: Value) -> Result<Document<'_>, StubError> {
    let text = |field: &'static str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(StubError::Document {
                doc,
                field,
                message: "Required value".into(),
            })
    };
    let api_version = text("apiVersion")?;
    let kind = text("kind")?;
    let (group, version) = split_api_version(&api_version);
    match catalog.by_kind(group, &kind) {
        Some(resource) if resource.serves(version) => Ok(Document {
            doc,
            resource,
            object,
        }),
        _ => Err(StubError::NotServed {
            place: format!("doc {doc}"),
            api_version,
            kind,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::IstioVersion;

    #[test]
    fn documents_and_lists_are_located() {
        let catalog = Catalog::default();
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: shop}}\n\
                    - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, metadata: {name: b}}\n";
        let docs = parse(&catalog, yaml).unwrap();
        let places: Vec<String> = docs.iter().map(Document::place).collect();
        assert_eq!(
            places,
            [
                "doc 1 (Namespace shop)",
                "doc 3 (Service shop/a)",
                "doc 3 (VirtualService b)"
            ]
        );
    }

    #[test]
    fn unserved_versions_and_bad_documents_are_named() {
        let catalog = Catalog::kubernetes().with_istio(&[IstioVersion::V1alpha3]);
        let err = parse(
            &catalog,
            "apiVersion: networking.istio.io/v1\nkind: Gateway\n",
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "doc 1: no matches for kind \"Gateway\" in version \"networking.istio.io/v1\" (not served by this stand-in)"
        );
        let err = parse(&catalog, "kind: Service\n").err().unwrap();
        assert_eq!(err.to_string(), "doc 1: apiVersion: Required value");
        let err = parse(&catalog, "a: [\n").err().unwrap();
        assert!(
            err.to_string().starts_with("doc 1: not valid YAML"),
            "{err}"
        );
    }
}
