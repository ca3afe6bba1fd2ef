//! The admission webhook: HTTPS (rustls; plain HTTP without a certificate, for local tests)
//! with `POST /inject`, `GET /healthz`, `GET /metrics`; certificate and config reloaded from
//! their files when they change.

mod metrics;
mod review;
mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::InjectConfig;
pub use metrics::{Exposed, Metrics, ReviewLabels};
pub use review::{BadReview, Reviewed, review};
pub use tls::{CertStore, TlsError, server_config};

/// Pods are at most a few MiB (etcd's limit); anything larger is not a review.
const BODY_LIMIT: usize = 8 << 20;

/// The webhook's shared state: current config and certificate, and metrics.
#[derive(Debug)]
pub struct Injector {
    config: ArcSwap<InjectConfig>,
    config_path: Option<PathBuf>,
    certs: Option<Arc<CertStore>>,
    metrics: Metrics,
    exposed: Mutex<Vec<Arc<dyn Exposed>>>,
}

impl Injector {
    /// `config_path` is watched for changes if given (`config` is what it held at start).
    /// Without `certs` the webhook serves plain HTTP (local tests only: the API server
    /// calls webhooks over HTTPS).
    pub fn new(
        config: InjectConfig,
        config_path: Option<PathBuf>,
        certs: Option<CertStore>,
    ) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            config_path,
            certs: certs.map(Arc::new),
            metrics: Metrics::default(),
            exposed: Mutex::default(),
        }
    }

    /// The metrics (also served at `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves `metrics` at `/metrics` too, after the webhook's own.
    pub fn expose(&self, metrics: Arc<dyn Exposed>) {
        self.exposed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(metrics);
    }

    /// The serving certificate, to serve the discovery stream with the same one (reloaded
    /// with the webhook's); none when serving plain HTTP.
    pub fn certs(&self) -> Option<Arc<CertStore>> {
        self.certs.clone()
    }

    /// Re-reads the certificate and the config; what fails to load keeps its last good value.
    pub fn reload(&self) {
        if let Some(certs) = &self.certs {
            let ok = match certs.reload() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "certificate not reloaded; serving the previous one");
                    false
                }
            };
            self.metrics.reload("certificate", ok);
        }
        if let Some(path) = &self.config_path {
            match InjectConfig::load(path) {
                Ok(config) => {
                    if **self.config.load() != config {
                        tracing::info!(path = %path.display(), "injector config reloaded");
                        self.config.store(Arc::new(config));
                    }
                    self.metrics.reload("config", true);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "injector config not reloaded; keeping the previous one");
                    self.metrics.reload("config", false);
                }
            }
        }
    }

    fn watched(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = self.certs.iter().flat_map(|c| c.paths()).collect();
        paths.extend(self.config_path.as_deref());
        paths
    }
}

/// Watches the certificate, key and config files (their directories, so that the atomic
/// symlink swap of a mounted Secret or ConfigMap is seen) and reloads on any change.
pub fn watch(injector: Arc<Injector>) -> notify::Result<notify::RecommendedWatcher> {
    let mut dirs: Vec<PathBuf> = injector
        .watched()
        .iter()
        .map(|p| match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let target = injector.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files ourselves makes access events; only changes matter.
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
        {
            target.reload();
        }
    })?;
    for dir in dirs {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// Longest time for one request, from its headers to the answer: reading the body (a client
/// trickling it is cut off) and the review. The API server gives up after the webhook's
/// `timeoutSeconds` (10 s by default, 30 at most) anyway.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP routes.
pub fn router(injector: Arc<Injector>) -> Router {
    Router::new()
        .route("/inject", post(inject))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(within_request_timeout))
        .with_state(injector)
}

/// Answers 408 when a request (its body included) takes longer than [`REQUEST_TIMEOUT`].
async fn within_request_timeout(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!("request not received and answered within {REQUEST_TIMEOUT:?}\n"),
        )
            .into_response(),
    }
}

async fn inject(State(injector): State<Arc<Injector>>, body: Bytes) -> Response {
    let start = Instant::now();
    let config = injector.config.load();
    let result = review(&body, &config);
    let took = start.elapsed();
    match result {
        Ok(reviewed) => {
            if let Some(detail) = &reviewed.detail {
                tracing::info!(outcome = reviewed.labels.outcome, %detail, "review answered");
            }
            injector.metrics.review(reviewed.labels, took);
            axum::Json(reviewed.response).into_response()
        }
        Err(bad) => respond_bad(&injector, bad, took),
    }
}

/// The one place a review error becomes an HTTP answer.
fn respond_bad(injector: &Injector, bad: BadReview, took: Duration) -> Response {
    tracing::warn!(reason = %bad, "malformed admission review");
    let labels = ReviewLabels {
        outcome: "malformed",
        reason: "",
    };
    injector.metrics.review(labels, took);
    (StatusCode::BAD_REQUEST, format!("{bad}\n")).into_response()
}

async fn metrics(State(injector): State<Arc<Injector>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let exposed = injector
        .exposed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    (
        [(header::CONTENT_TYPE, content_type)],
        injector.metrics.encode(&exposed),
    )
        .into_response()
}

/// Serves HTTPS (plain HTTP without a certificate) on `listener` until `shutdown`
/// completes, then lets open connections finish for up to ten seconds.
pub async fn serve(
    listener: TcpListener,
    injector: Arc<Injector>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = match injector.certs() {
        Some(certs) => Some(TlsAcceptor::from(server_config(certs)?)),
        None => None,
    };
    crate::serve::serve(listener, router(injector), acceptor, shutdown).await;
    Ok(())
}
