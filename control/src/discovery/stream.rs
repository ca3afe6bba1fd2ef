//! The discovery stream: each connected proxy gets the part of the cluster's mesh config
//! it needs (its [`view`](super::view::view)), versioned: the full state on connect, then
//! only what changed; it acknowledges or rejects each version.
//!
//! HTTP/2 with JSON lines (see [`wire`]): `POST /v1/discovery` carries the proxy's hello
//! and replies up, the updates down, on one long-lived stream. Beside it on the same
//! listener: `GET /v1/proxies` (each proxy's versions, for `sluice check`),
//! `GET /v1/rejected` (objects left out of the config), `GET /healthz/ready` (200 once the
//! watchers have synced) and `GET /metrics`.

mod diff;
mod metrics;
mod proxies;
mod session;
mod shared;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_api::Resource;
use sluice_api::model::Workload;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::state::{ClusterConfig, Subscriber};
use super::view::view;
use crate::webhook::{CertStore, server_config};
pub use metrics::Metrics;
use proxies::Proxies;
pub use proxies::{Nack, ProxyStatus};
use shared::{View, Views};
use sluice_body_lines::Lines;
use wire::{Hello, Rendered};

/// A proxy's lines are a hello, acks and nacks: a MiB is plenty.
const MAX_LINE: usize = 1 << 20;
/// How long a proxy has to say who it is once its stream is open.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The stream's shared state: the published config, the connected proxies, metrics.
#[derive(Debug)]
pub struct Discovery {
    config: Subscriber,
    proxies: Arc<Proxies>,
    metrics: Arc<Metrics>,
    rendered: Mutex<Option<Arc<Rendering>>>,
    closing: watch::Sender<bool>,
}

/// Every resource of one version rendered for the wire, once for all proxies, and the
/// views picked from them, once per kind of proxy.
#[derive(Debug)]
struct Rendering {
    config: Arc<ClusterConfig>,
    /// Each resource of `config` rendered, at its position; none when it is left out (a
    /// second resource with the id of an earlier one, or one that cannot be rendered).
    rendered: Vec<Option<Rendered>>,
    views: Views,
}

impl Discovery {
    /// A stream serving the versions published to `config`.
    pub fn new(config: Subscriber) -> Arc<Discovery> {
        let metrics = Arc::new(Metrics::default());
        Arc::new(Discovery {
            config,
            proxies: Arc::new(Proxies::new(metrics.clone())),
            metrics,
            rendered: Mutex::default(),
            closing: watch::channel(false).0,
        })
    }

    /// The connected proxies, by namespace and pod.
    pub fn proxies(&self) -> Vec<ProxyStatus> {
        self.proxies.list()
    }

    /// The metrics (also served at `/metrics`).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Ends every stream (the proxies reconnect, to another replica).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// `proxy`'s view of `config`: its resources rendered, in order; shared by every proxy
    /// with the same namespace and labels.
    fn view_of(&self, config: &Arc<ClusterConfig>, proxy: &Workload) -> Arc<View> {
        let rendering = self.rendering(config);
        rendering.views.get(shared::key(proxy), || {
            let resources = view(&config.resources, proxy)
                .into_iter()
                .filter_map(|at| rendering.rendered[at].clone())
                .collect();
            View::new(config.version, resources)
        })
    }

    /// The rendering of `config`: made by the first proxy that needs it. A resource that
    /// is the same `Arc` as one of the last rendering, or equal to the one of the same id
    /// there, keeps its document (not rendered again, and compared by pointer when the
    /// proxies' deltas are made).
    fn rendering(&self, config: &Arc<ClusterConfig>) -> Arc<Rendering> {
        let mut cached = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        let last = match cached.as_ref() {
            Some(r) if r.config.version == config.version => return r.clone(),
            Some(r) => Some(r.clone()),
            None => None,
        };
        // The last version's documents by resource (its `Arc`, alive while `last` is), and
        // by id for a resource made again but equal.
        let mut by_pointer: HashMap<*const Resource, &Rendered> = HashMap::new();
        let mut by_id: HashMap<&str, (&Resource, &Rendered)> = HashMap::new();
        if let Some(last) = &last {
            for (r, rendered) in last.config.resources.iter().zip(&last.rendered) {
                if let Some(rendered) = rendered {
                    by_pointer.insert(Arc::as_ptr(r), rendered);
                    by_id.insert(&rendered.id, (r, rendered));
                }
            }
        }
        let mut ids = HashSet::with_capacity(config.resources.len());
        let mut rendered = Vec::with_capacity(config.resources.len());
        for r in &config.resources {
            let made = match by_pointer.get(&Arc::as_ptr(r)) {
                Some(kept) => Some((*kept).clone()),
                None => render(r, &by_id),
            };
            let made = made.filter(|made| {
                let first = ids.insert(made.id.clone());
                if !first {
                    tracing::warn!(resource = %r.title(), id = %made.id, "two resources come from the same object; the first is served");
                }
                first
            });
            rendered.push(made);
        }
        let rendering = Arc::new(Rendering {
            config: config.clone(),
            rendered,
            views: Views::default(),
        });
        *cached = Some(rendering.clone());
        rendering
    }
}

/// `r` rendered: the document of the last version's equal resource of the same id if
/// there is one, else a new one; none when it cannot be rendered.
fn render(r: &Resource, last: &HashMap<&str, (&Resource, &Rendered)>) -> Option<Rendered> {
    let id = wire::id(&r.origin);
    if let Some((_, kept)) = last.get(id.as_str()).filter(|(before, _)| *before == r) {
        return Some((*kept).clone());
    }
    match wire::doc(r) {
        Ok(doc) => Some(Rendered {
            id: id.into(),
            doc: doc.into(),
        }),
        Err(e) => {
            tracing::error!(resource = %r.title(), origin = %r.origin, error = %e, "cannot render the resource for the proxies; left out");
            None
        }
    }
}

/// The HTTP routes.
pub fn router(discovery: Arc<Discovery>) -> Router {
    Router::new()
        .route("/v1/discovery", post(discover))
        .route("/v1/proxies", get(proxies))
        .route("/v1/rejected", get(rejected))
        .route("/healthz/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(discovery)
}

/// Serves the stream on `listener` (TLS with the certificate of `certs`, else plain text,
/// for local tests only) until `shutdown` completes; then ends every stream.
pub async fn serve(
    listener: TcpListener,
    discovery: Arc<Discovery>,
    certs: Option<Arc<CertStore>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), rustls::Error> {
    let tls = match certs {
        Some(certs) => Some(TlsAcceptor::from(server_config(certs)?)),
        None => None,
    };
    let closing = discovery.clone();
    let shutdown = async move {
        shutdown.await;
        closing.close();
    };
    crate::serve::serve(listener, router(discovery), tls, shutdown).await;
    Ok(())
}

/// `POST /v1/discovery`: reads the hello, then streams updates while a task reads replies.
async fn discover(State(discovery): State<Arc<Discovery>>, req: Request) -> Response {
    let mut lines = Lines::new(req.into_body(), MAX_LINE);
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, lines.next()).await {
        Ok(Some(Ok(line))) => match serde_json::from_slice::<Hello>(&line) {
            Ok(hello) if hello.namespace.is_empty() => Err("the hello names no namespace".into()),
            Ok(hello) => Ok(hello),
            Err(e) => Err(format!("the first line is no hello: {e}")),
        },
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("the stream ended before the hello".into()),
        Err(_) => Err(format!("no hello within {HELLO_TIMEOUT:?}")),
    };
    let hello = match hello {
        Ok(hello) => hello,
        Err(reason) => {
            tracing::info!(%reason, "discovery stream refused");
            let text = format!(
                "{reason}; send {{\"namespace\",\"podName\",\"labels\",\"podIp\",\"serviceAccount\"}} as the first line\n"
            );
            return (StatusCode::BAD_REQUEST, text).into_response();
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(session::run(discovery, hello, lines, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn proxies(State(discovery): State<Arc<Discovery>>) -> Response {
    axum::Json(discovery.proxies()).into_response()
}

async fn rejected(State(discovery): State<Arc<Discovery>>) -> Response {
    let config = discovery.config.borrow().clone();
    axum::Json(&config.rejected).into_response()
}

async fn ready(State(discovery): State<Arc<Discovery>>) -> Response {
    if discovery.config.borrow().synced() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let text = "the cluster's config is not synced yet\n";
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

async fn metrics(State(discovery): State<Arc<Discovery>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        discovery.metrics.encode(),
    )
        .into_response()
}
