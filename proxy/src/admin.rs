//! The operator's endpoints: admin on loopback (`/config_dump`, `/logging`,
//! `POST /logging?level=`, `POST /quitquitquit`), health (`/healthz/ready`, the
//! app's rewritten probes at `/app-health/...`) and Prometheus (`/metrics`);
//! and `wait`, the client of `/healthz/ready`.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HeaderValue};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Store;
use crate::drain::Draining;
use crate::http::{Body, full};
use crate::metrics::Metrics;
use crate::probe::AppProbes;

/// Changes the log filter at run time (`info`, `debug`, `sluice_proxy=trace`...).
pub type SetLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The admin endpoints.
pub struct Admin {
    store: Arc<Store>,
    set_level: SetLevel,
    level: Mutex<String>,
    quit: Arc<Notify>,
}

/// Marks the answer to `POST /quitquitquit`: once it has been sent and its
/// connection closed, the proxy is told to drain and exit.
#[derive(Clone, Copy, Debug)]
struct QuitAfterReply;

impl Admin {
    /// Admin over the config store, with the log level control and the level
    /// at start; `quit` is notified by `POST /quitquitquit`.
    pub fn new(store: Arc<Store>, set_level: SetLevel, level: String, quit: Arc<Notify>) -> Admin {
        Admin {
            store,
            set_level,
            level: Mutex::new(level),
            quit,
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/config_dump" => self.config_dump(),
            "/logging" => self.logging(req.method(), req.uri().query().unwrap_or("")),
            "/quitquitquit" => quitquitquit(req.method()),
            _ => text(
                StatusCode::NOT_FOUND,
                "endpoints: /config_dump, /logging, POST /logging?level=LEVEL, POST /quitquitquit\n",
            ),
        }
    }

    fn config_dump(&self) -> Response<Body> {
        let snap = self.store.current();
        let dump = serde_json::json!({
            "status": self.store.status(),
            "model": snap.as_ref().map(|s| &*s.model),
            "clusters": snap.as_ref().map(|s| s.clusters.dump()),
        });
        let mut resp = Response::new(full(serde_json::to_vec_pretty(&dump).unwrap_or_default()));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }

    /// `GET /logging` shows the level; only `POST /logging?level=` changes it (a GET that
    /// changes state can be triggered by anything that fetches a URL: a browser, a prefetcher,
    /// an SSRF), as Envoy's admin requires POST for its mutations.
    fn logging(&self, method: &Method, query: &str) -> Response<Body> {
        let level = query.split('&').find_map(|kv| kv.strip_prefix("level="));
        let mut current = self.level.lock().unwrap_or_else(PoisonError::into_inner);
        match (level, method) {
            (None, &Method::GET | &Method::HEAD) => {
                text(StatusCode::OK, format!("level: {current}\n"))
            }
            (None, _) => method_not_allowed("GET, HEAD", "GET /logging shows the level\n"),
            (Some(_), m) if m != Method::POST => method_not_allowed(
                "POST",
                "use POST /logging?level=LEVEL to change the level\n",
            ),
            (Some(level), _) => match (self.set_level)(level) {
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

/// `POST /quitquitquit`: drain and exit, as Envoy's endpoint of that name
/// (Jobs call it when their work is done so the pod can complete).
fn quitquitquit(method: &Method) -> Response<Body> {
    if method != Method::POST {
        return method_not_allowed("POST", "use POST /quitquitquit to drain and exit\n");
    }
    tracing::info!("POST /quitquitquit: draining, then exiting");
    let mut resp = text(StatusCode::OK, "OK: draining, then exiting\n");
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp.extensions_mut().insert(QuitAfterReply);
    resp
}

/// 405 with the methods `allow`ed.
fn method_not_allowed(allow: &'static str, why: &'static str) -> Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, why);
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Serves the admin endpoints.
pub async fn serve_admin(listener: TcpListener, admin: Arc<Admin>) {
    let quit = admin.quit.clone();
    let answer = move |req: Request<Incoming>| {
        let resp = admin.answer(&req);
        async move { resp }
    };
    serve(listener, answer, Some(quit)).await;
}

/// Serves `/healthz/ready`: 200 once a good config is in force, 503 before
/// that and again once draining has started (so endpoints stop sending);
/// and the app's probes at their `/app-health/...` paths.
pub async fn serve_health(
    listener: TcpListener,
    store: Arc<Store>,
    draining: Draining,
    probes: Arc<AppProbes>,
) {
    let answer = move |req: Request<Incoming>| {
        let ready = readiness(store.is_ready(), draining.is_draining());
        let probes = probes.clone();
        async move {
            match req.uri().path() {
                "/healthz/ready" => ready,
                path if path.starts_with("/app-health/") => app_health(&probes, path).await,
                _ => text(
                    StatusCode::NOT_FOUND,
                    "endpoints: /healthz/ready, /app-health/CONTAINER/KIND\n",
                ),
            }
        }
    };
    serve(listener, answer, None).await;
}

/// Runs the app's probe at `path`: 200, or 503 with the reason (logged, as the kubelet
/// shows only the status code in events).
async fn app_health(probes: &AppProbes, path: &str) -> Response<Body> {
    match probes.run(path).await {
        Some(Ok(())) => text(StatusCode::OK, "ok\n"),
        Some(Err(reason)) => {
            tracing::info!(path, %reason, "app probe failed");
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"))
        }
        None => text(
            StatusCode::NOT_FOUND,
            format!("no app probe at {path} (SLUICE_APP_PROBES has none)\n"),
        ),
    }
}

/// `sluice-proxy wait`: polls `/healthz/ready` on the health port of this pod until it
/// answers 200 (Ok) or `timeout` passes (Err with the last answer or error).
pub async fn wait_ready(health_port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, health_port));
    let deadline = Instant::now() + timeout;
    loop {
        let last = match ready_status(addr).await {
            Ok(200) => return Ok(()),
            Ok(status) => format!("last answer: {status}"),
            Err(e) => format!("last error: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "sluice-proxy was not ready within {timeout:?} (GET http://{addr}/healthz/ready; {last})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready_status(addr: SocketAddr) -> Result<u16, String> {
    let ask = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get("/healthz/ready")
            .header(http::header::HOST, addr.to_string())
            .body(crate::http::empty())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok(resp.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .unwrap_or_else(|_| Err("no answer within 1s".into()))
}

fn readiness(ready: bool, draining: bool) -> Response<Body> {
    match (ready, draining) {
        (_, true) => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        (true, false) => text(StatusCode::OK, "ready\n"),
        (false, false) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid config loaded yet\n",
        ),
    }
}

/// Serves Prometheus `/metrics`.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    serve(
        listener,
        move |req: Request<Incoming>| {
            let resp = match req.uri().path() {
                "/metrics" | "/stats/prometheus" => {
                    let mut resp = text(StatusCode::OK, metrics.encode());
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    resp
                }
                _ => text(StatusCode::NOT_FOUND, "endpoint: /metrics\n"),
            };
            async move { resp }
        },
        None,
    )
    .await;
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp
}

/// Serves HTTP/1.1 with `answer`; `quit` is notified after a connection that
/// carried a [`QuitAfterReply`] answer has closed, so the answer is sent
/// before the proxy begins to exit.
async fn serve<F, Fut>(listener: TcpListener, answer: F, quit: Option<Arc<Notify>>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        let quit = quit.clone();
        tokio::spawn(async move {
            let asked = Arc::new(AtomicBool::new(false));
            let flag = asked.clone();
            let service = hyper::service::service_fn(move |req| {
                let answering = answer(req);
                let flag = flag.clone();
                async move {
                    let resp = answering.await;
                    if resp.extensions().get::<QuitAfterReply>().is_some() {
                        flag.store(true, Ordering::Relaxed);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Some(quit) = quit
                && asked.load(Ordering::Relaxed)
            {
                quit.notify_one();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_config_and_not_draining() {
        let cases = [
            (false, false, 503, "no valid config"),
            (true, false, 200, "ready"),
            (true, true, 503, "draining"),
            (false, true, 503, "draining"),
        ];
        for (ready, draining, status, text) in cases {
            let resp = readiness(ready, draining);
            assert_eq!(resp.status().as_u16(), status, "{ready} {draining}");
            let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                resp.into_body(),
            ))
            .unwrap()
            .unwrap()
            .to_bytes();
            assert!(String::from_utf8_lossy(&body).contains(text));
        }
    }

    #[test]
    fn quitquitquit_wants_post() {
        let cases = [(Method::POST, 200, true), (Method::GET, 405, false)];
        for (method, status, quits) in cases {
            let resp = quitquitquit(&method);
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.extensions().get::<QuitAfterReply>().is_some(), quits);
        }
    }

    #[test]
    fn the_log_level_changes_only_on_post() {
        let set: SetLevel = Arc::new(|level: &str| match level {
            "debug" | "info" => Ok(()),
            _ => Err("unknown".into()),
        });
        let metrics = Metrics::new(false);
        let model = sluice_api::model::Model::compile(&[], &Default::default());
        let store = Arc::new(Store::with_model(model, metrics.config.clone()));
        let admin = Admin::new(store, set, "info".into(), Arc::default());
        let cases = [
            (Method::GET, "level=debug", 405, Some("POST"), "info"),
            (Method::PUT, "level=debug", 405, Some("POST"), "info"),
            (Method::GET, "", 200, None, "info"),
            (Method::POST, "level=bogus", 400, None, "info"),
            (Method::POST, "level=debug", 200, None, "debug"),
            (Method::DELETE, "", 405, Some("GET, HEAD"), "debug"),
        ];
        for (method, query, status, allow, level) in cases {
            let resp = admin.logging(&method, query);
            assert_eq!(resp.status().as_u16(), status, "{method} {query}");
            let allowed = resp.headers().get(http::header::ALLOW);
            assert_eq!(allowed.map(|v| v.to_str().unwrap()), allow, "{method}");
            assert_eq!(*admin.level.lock().unwrap(), level, "{method} {query}");
        }
    }

    #[tokio::test]
    async fn wait_ready_polls_until_ready_or_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = wait_ready(port, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("not ready within"), "{err}");
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let answer = move |_: Request<Incoming>| {
            let ready = seen.fetch_add(1, Ordering::Relaxed) >= 2;
            async move { readiness(ready, false) }
        };
        tokio::spawn(serve(listener, answer, None));
        wait_ready(port, Duration::from_secs(5)).await.unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3, "503 twice, then 200");
    }
}
