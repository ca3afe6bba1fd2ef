//! The operator's endpoints: admin on loopback (`/config_dump`,
//! `/logging?level=`), health (`/healthz/ready`) and Prometheus (`/metrics`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::{CONTENT_TYPE, HeaderValue};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::Store;
use crate::http::{Body, full};
use crate::metrics::Metrics;

/// Changes the log filter at run time (`info`, `debug`, `sluice_proxy=trace`...).
pub type SetLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The admin endpoints.
pub struct Admin {
    store: Arc<Store>,
    set_level: SetLevel,
    level: Mutex<String>,
}

impl Admin {
    /// Admin over the config store, with the log level control and the level at start.
    pub fn new(store: Arc<Store>, set_level: SetLevel, level: String) -> Admin {
        Admin {
            store,
            set_level,
            level: Mutex::new(level),
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/config_dump" => self.config_dump(),
            "/logging" => self.logging(req.uri().query().unwrap_or("")),
            _ => text(
                StatusCode::NOT_FOUND,
                "endpoints: /config_dump, /logging?level=LEVEL\n",
            ),
        }
    }

    fn config_dump(&self) -> Response<Body> {
        let snap = self.store.current();
        let dump = serde_json::json!({
            "status": self.store.status(),
            "model": snap.as_ref().map(|s| &*s.model),
        });
        let mut resp = Response::new(full(serde_json::to_vec_pretty(&dump).unwrap_or_default()));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }

    fn logging(&self, query: &str) -> Response<Body> {
        let level = query.split('&').find_map(|kv| kv.strip_prefix("level="));
        let mut current = self.level.lock().unwrap_or_else(PoisonError::into_inner);
        match level {
            None => text(StatusCode::OK, format!("level: {current}\n")),
            Some(level) => match (self.set_level)(level) {
                Ok(()) => {
                    tracing::info!(level, "log level changed");
                    *current = level.to_string();
                    text(StatusCode::OK, format!("level: {level}\n"))
                }
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    format!("bad level {level:?}: {e}\n"),
                ),
            },
        }
    }
}

/// Serves the admin endpoints.
pub async fn serve_admin(listener: TcpListener, admin: Arc<Admin>) {
    serve(listener, move |req| admin.answer(&req)).await;
}

/// Serves `/healthz/ready`: 200 once a good config is in force, else 503.
pub async fn serve_health(listener: TcpListener, store: Arc<Store>) {
    serve(listener, move |req| match req.uri().path() {
        "/healthz/ready" if store.is_ready() => text(StatusCode::OK, "ready\n"),
        "/healthz/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid config loaded yet\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "endpoint: /healthz/ready\n"),
    })
    .await;
}

/// Serves Prometheus `/metrics`.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    serve(listener, move |req| match req.uri().path() {
        "/metrics" | "/stats/prometheus" => {
            let mut resp = text(StatusCode::OK, metrics.encode());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "endpoint: /metrics\n"),
    })
    .await;
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp
}

async fn serve<F>(listener: TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Response<Body> + Clone + Send + Sync + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = answer(req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
