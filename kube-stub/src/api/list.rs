//! Lists: a consistent snapshot of one type, filtered by selectors and cut into pages whose
//! continue tokens hold the snapshot's resourceVersion and the last key returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::query::ListQuery;
use super::route::Target;
use crate::status::ApiError;
use crate::store::{Expired, Store};

/// What a continue token holds (base64 of this JSON, as the API server's tokens are).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ContinueToken {
    /// Always `meta.k8s.io/v1`.
    v: String,
    /// The snapshot's resourceVersion.
    rv: u64,
    /// The namespace of the last object returned.
    ns: String,
    /// The name of the last object returned.
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid =
            |why: String| ApiError::bad_request(format!("continue key is not valid: {why}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| invalid(e.to_string()))?;
        let token: Self = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if token.v != "meta.k8s.io/v1" {
            return Err(invalid(format!("unknown version {:?}", token.v)));
        }
        Ok(token)
    }
}

/// The `XList` answer to a list request.
pub fn list(store: &Store, target: &Target<'_>, q: &ListQuery) -> Result<Value, ApiError> {
    let resource = target.resource;
    let (at, after) = match &q.continue_token {
        Some(token) => {
            if !matches!(q.resource_version.as_str(), "" | "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let token = ContinueToken::decode(token)?;
            (Some(token.rv), Some((token.ns, token.name)))
        }
        None => (snapshot_version(store, q)?, None),
    };
    let snapshot = store
        .list(resource, target.namespace, at)
        .map_err(|e| expired(e, q.continue_token.is_some()))?;
    let rv = snapshot.resource_version;
    let selected = snapshot
        .items
        .into_iter()
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&key.namespace, &key.name) > (ns, name))
        })
        .filter(|(_, object)| {
            q.labels.matches(
                object
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object),
            ) && q.fields.matches(object)
        });
    // Only the page is presented: presenting everything after the continue key for each
    // page made listing a large collection quadratic.
    let selected: Vec<_> = selected.collect();
    let total = selected.len();
    let page = if q.limit > 0 {
        q.limit.min(total)
    } else {
        total
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if page < total {
        let (last, _) = &selected[page - 1];
        let token = ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv,
            ns: last.namespace.clone(),
            name: last.name.clone(),
        };
        metadata["continue"] = json!(token.encode());
        if q.labels.is_empty() && q.fields.is_empty() {
            metadata["remainingItemCount"] = json!(total - page);
        }
    }
    let items: Vec<Value> = selected
        .into_iter()
        .take(page)
        .map(|(_, object)| super::present(&object, resource, target.version))
        .collect();
    Ok(json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(target.version),
        "metadata": metadata,
        "items": items,
    }))
}

/// Which snapshot a list without a continue token reads: the latest, unless
/// `resourceVersionMatch=Exact` names an older one.
fn snapshot_version(store: &Store, q: &ListQuery) -> Result<Option<u64>, ApiError> {
    let rv = q.resource_version_number()?;
    let current = store.resource_version();
    if rv > current {
        return Err(ApiError::too_large_resource_version(rv, current));
    }
    Ok((q.resource_version_match.as_deref() == Some("Exact")).then_some(rv))
}

fn expired(e: Expired, continuing: bool) -> ApiError {
    if continuing {
        ApiError::expired(format!(
            "The provided continue parameter is too old to display a consistent list result (resourceVersion {} was compacted; the oldest kept is {}). Start a new list without the continue parameter.",
            e.requested, e.oldest
        ))
    } else {
        ApiError::expired(format!(
            "too old resource version: {} ({})",
            e.requested, e.oldest
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_garbage() {
        let token = ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv: 42,
            ns: "shop".into(),
            name: "web".into(),
        };
        assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
        for bad in [
            "%%%",
            "bm90IGpzb24",
            &URL_SAFE_NO_PAD.encode(r#"{"v":"x","rv":1,"ns":"","name":""}"#),
        ] {
            let err = ContinueToken::decode(bad).unwrap_err();
            assert_eq!(err.code, 400, "{bad}");
        }
    }
}
