//! The HTTP API: authentication, routing, and the JSON answers of discovery, reads, watches and
//! writes.

mod discovery;
mod list;
mod openapi;
pub mod query;
pub mod route;
mod watch;
mod write;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::sync::watch as channel;

use crate::catalog::{Catalog, ResourceType};
use crate::status::ApiError;
use crate::store::Store;
use query::ListQuery;
use route::{Route, Target};

/// A response body: a whole JSON document or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request as the server saw it (for tests that count lists and watches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Query string (empty if none).
    pub query: String,
}

impl RequestRecord {
    /// Whether this was a list (a GET of a collection without `watch`) of `path`.
    pub fn is_list_of(&self, path: &str) -> bool {
        self.method == "GET" && self.path == path && !self.is_watch()
    }

    /// Whether this was a watch request.
    pub fn is_watch(&self) -> bool {
        form_urlencoded::parse(self.query.as_bytes())
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
    }
}

/// What every request handler shares.
pub struct Shared {
    /// Served types.
    pub catalog: Catalog,
    /// Objects.
    pub store: Store,
    /// The bearer token clients must send.
    pub token: String,
    /// Bumped to end every open watch.
    pub ends: channel::Sender<u64>,
    /// How often watches with bookmarks get one.
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` lasts.
    pub watch_timeout: Duration,
    /// `host:port` clients reach the server at (for `/api`).
    pub address: String,
    /// Every request, in order.
    pub requests: Mutex<Vec<RequestRecord>>,
}

/// Answers one request.
pub async fn handle<B>(shared: Arc<Shared>, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let record = RequestRecord {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        query: request.uri().query().unwrap_or_default().to_string(),
    };
    tracing::debug!(method = %record.method, path = %record.path, query = %record.query, "request");
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(record);
    match respond(&shared, request).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(code = err.code, reason = err.reason, message = %err.message, "error");
            json_response(
                StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &err.to_status(),
            )
        }
    }
}

async fn respond<B>(shared: &Arc<Shared>, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    authenticate(&shared.token, &request)?;
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let method = request.method().clone();
    let aggregated = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(discovery::wants_aggregated);
    let route = route::parse(&shared.catalog, &path)?;
    let dry_run =
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "dryRun" && !v.is_empty());
    if dry_run && method != Method::GET {
        // Refused rather than ignored: ignoring it would make a dry run write.
        return Err(ApiError::bad_request(
            "dryRun is not supported by this stand-in (the request would have changed objects)",
        ));
    }
    let ok = |value: Value| Ok(json_response(StatusCode::OK, &value));
    match (&method, route) {
        (&Method::GET, Route::Version) => ok(discovery::version()),
        (&Method::GET, Route::Health) => Ok(text_response("ok")),
        (&Method::GET, route @ (Route::CoreVersions | Route::Groups)) if aggregated => {
            let core = route == Route::CoreVersions;
            let mut response = json_response(
                StatusCode::OK,
                &discovery::aggregated(&shared.catalog, core),
            );
            response.headers_mut().insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static(discovery::AGGREGATED_V2),
            );
            Ok(response)
        }
        (&Method::GET, Route::CoreVersions) => ok(discovery::core_versions(&shared.address)),
        (&Method::GET, Route::Groups) => ok(discovery::groups(&shared.catalog)),
        (&Method::GET, Route::Group(group)) => ok(discovery::group(&shared.catalog, group)),
        (&Method::GET, Route::Resources { group, version }) => {
            ok(discovery::resources(&shared.catalog, group, version))
        }
        (&Method::GET, Route::OpenApiV2) => {
            let protobuf = request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains(openapi::V2_PROTOBUF));
            if protobuf {
                let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    http::HeaderValue::from_static(openapi::V2_PROTOBUF_CONTENT_TYPE),
                );
                Ok(response)
            } else {
                ok(openapi::v2_json())
            }
        }
        (&Method::GET, Route::OpenApiRoot) => ok(openapi::root(&shared.catalog)),
        (&Method::GET, Route::OpenApi { group, version }) => {
            ok(openapi::group_version(&shared.catalog, group, version))
        }
        (&Method::GET, Route::Collection(target)) => {
            let q = ListQuery::parse(&query, target.resource)?;
            if q.watch {
                watch::start(shared.clone(), &target, q)
            } else {
                ok(list::list(&shared.store, &target, &q)?)
            }
        }
        (&Method::GET, Route::Object(target, name)) => {
            let q = ListQuery::parse(&query, target.resource)?;
            if q.watch {
                return Err(ApiError::bad_request(
                    "watching one object by URL is deprecated and not served: watch the collection with fieldSelector=metadata.name=NAME",
                ));
            }
            let object = shared
                .store
                .get(target.resource, namespace(&target), name)?;
            ok(present(&object, target.resource, target.version))
        }
        (&Method::POST, Route::Collection(target)) => {
            let Some(ns) = creation_namespace(&target) else {
                return Err(ApiError::method_not_allowed(method.as_str(), &path));
            };
            let (content_type, body) = read_body(request).await?;
            let created = write::create(&shared.store, &target, ns, &content_type, &body)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (&Method::PUT, Route::Object(target, name)) => {
            let (content_type, body) = read_body(request).await?;
            ok(write::replace(
                &shared.store,
                &target,
                name,
                &content_type,
                &body,
            )?)
        }
        (&Method::PATCH, Route::Object(target, name)) => {
            let (content_type, body) = read_body(request).await?;
            ok(write::patch(
                &shared.store,
                &target,
                name,
                &content_type,
                &body,
            )?)
        }
        (&Method::DELETE, Route::Object(target, name)) => {
            let deleted = shared
                .store
                .delete(target.resource, namespace(&target), name)?;
            ok(present(&deleted, target.resource, target.version))
        }
        _ => Err(ApiError::method_not_allowed(method.as_str(), &path)),
    }
}

/// Every request must carry `Authorization: Bearer TOKEN`.
fn authenticate<B>(token: &str, request: &Request<B>) -> Result<(), ApiError> {
    let sent = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if sent == Some(token) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// The namespace of an object URL (empty for cluster-scoped types).
fn namespace<'a>(target: &Target<'a>) -> &'a str {
    target.namespace.unwrap_or_default()
}

/// Where a POST creates: the URL's namespace for namespaced types (none given: not allowed,
/// as on the API server), nothing for cluster-scoped ones.
fn creation_namespace<'a>(target: &Target<'a>) -> Option<&'a str> {
    match (target.resource.namespaced, target.namespace) {
        (true, Some(ns)) => Some(ns),
        (true, None) => None,
        (false, _) => Some(""),
    }
}

/// The largest body accepted, as the API server's 3 MiB request limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

async fn read_body<B>(request: Request<B>) -> Result<(String, Bytes), ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = http_body_util::Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    Ok((content_type, body))
}

/// An object as served at `version`: `apiVersion` and `kind` of the URL.
pub fn present(object: &Value, resource: &ResourceType, version: &str) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(resource.api_version(version)),
        );
        map.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    object
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
