//! `admission.k8s.io/v1` AdmissionReview in, AdmissionReview out: the pod from the request is
//! injected with [`crate::inject`] and the difference returned as a base64 RFC 6902 patch.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::metrics::ReviewLabels;
use crate::config::InjectConfig;
use crate::inject::{self, InjectError, Namespace, Outcome};

const API_VERSION: &str = "admission.k8s.io/v1";

/// A request that is not a usable AdmissionReview: answered with HTTP 400 and this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadReview(pub String);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReview {
    api_version: String,
    kind: String,
    request: Option<AdmissionRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionRequest {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// The response review, and how it ended (for metrics and logs).
#[derive(Debug)]
pub struct Reviewed {
    pub response: Value,
    pub labels: ReviewLabels,
    /// Why a pod was skipped or denied, for the log.
    pub detail: Option<String>,
}

/// Answers one AdmissionReview body. Never panics. A body that is not an AdmissionReview v1,
/// or whose pod is not shaped like a pod, is a [`BadReview`]; a pod that cannot take the
/// sidecar as annotated is denied with the reason (`allowed: false`).
pub fn review(body: &[u8], config: &InjectConfig) -> Result<Reviewed, BadReview> {
    let review: AdmissionReview = parse(body)?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(BadReview(format!(
            "expected apiVersion {API_VERSION}, kind AdmissionReview; got {}, {} (set \
             admissionReviewVersions: [v1] in the webhook configuration)",
            review.api_version, review.kind
        )));
    }
    let request = review
        .request
        .ok_or_else(|| BadReview("request: missing".into()))?;
    if request.uid.is_empty() {
        return Err(BadReview("request.uid: must not be empty".into()));
    }
    let is_pod_create = request.kind.group.is_empty()
        && request.kind.kind == "Pod"
        && request
            .sub_resource
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        && request.operation.as_deref() == Some("CREATE");
    if !is_pod_create {
        return Ok(answer(
            &request.uid,
            Answer::Allow,
            ("ignored", "not-pod-create"),
            None,
        ));
    }
    let pod = request.object.as_ref().filter(|o| o.is_object());
    let pod =
        pod.ok_or_else(|| BadReview("request.object: a pod creation needs the pod".into()))?;
    let namespace = request
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .or_else(|| pod.pointer("/metadata/namespace").and_then(Value::as_str))
        .unwrap_or("default");
    let uid = &request.uid;
    Ok(
        match inject::inject(
            pod,
            config,
            &Namespace {
                name: namespace,
                labels: None,
            },
        ) {
            Ok(Outcome::Injected {
                pod: injected,
                warnings,
            }) => {
                let patch = json_patch::diff(pod, &injected);
                let patch = serde_json::to_vec(&patch).unwrap_or_default();
                let patch = base64::engine::general_purpose::STANDARD.encode(patch);
                answer(
                    uid,
                    Answer::Patch { patch, warnings },
                    ("injected", ""),
                    None,
                )
            }
            Ok(Outcome::Skipped(skip)) => answer(
                uid,
                Answer::Allow,
                ("skipped", skip.kind()),
                Some(skip.to_string()),
            ),
            Err(InjectError::Malformed { path, reason }) => {
                return Err(BadReview(format!("request.object.{path}: {reason}")));
            }
            Err(e) => {
                let message = format!("sluice: cannot inject the sidecar: {e}");
                answer(
                    uid,
                    Answer::Deny(message.clone()),
                    ("denied", ""),
                    Some(message),
                )
            }
        },
    )
}

fn parse(body: &[u8]) -> Result<AdmissionReview, BadReview> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let review = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            BadReview(format!("not an AdmissionReview: {inner}"))
        } else {
            BadReview(format!("not an AdmissionReview: {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| BadReview(format!("not an AdmissionReview: {e}")))?;
    Ok(review)
}

enum Answer {
    Allow,
    Patch {
        patch: String,
        warnings: Vec<String>,
    },
    Deny(String),
}

fn answer(
    uid: &str,
    answer: Answer,
    (outcome, reason): (&'static str, &'static str),
    detail: Option<String>,
) -> Reviewed {
    let response = match answer {
        Answer::Allow => json!({ "uid": uid, "allowed": true }),
        Answer::Patch { patch, warnings } => {
            let mut response =
                json!({ "uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch });
            if !warnings.is_empty() {
                response["warnings"] = json!(warnings);
            }
            response
        }
        Answer::Deny(message) => json!({
            "uid": uid,
            "allowed": false,
            "status": { "status": "Failure", "code": 400, "reason": "BadRequest", "message": message },
        }),
    };
    Reviewed {
        response: json!({ "apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response }),
        labels: ReviewLabels { outcome, reason },
        detail,
    }
}
