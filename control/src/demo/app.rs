//! The demo's workload: an HTTP server that answers every request with who it is and remembers
//! the authority each request was sent to (so mirrored copies can be counted).

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running demo app; dropping it stops the listener and every connection it accepted.
#[derive(Debug)]
pub struct App {
    authorities: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<io::Result<()>>,
}

impl App {
    /// Starts the app `name` at `version` on `listener` as a task of the current tokio runtime
    /// (call it from a task of the pod's runtime). Every answer is `200` with the JSON body
    /// `{"app": NAME, "version": VERSION}`.
    pub fn serve(listener: TcpListener, name: &str, version: &str) -> App {
        let body = Bytes::from(serde_json::json!({"app": name, "version": version}).to_string());
        let authorities = Arc::new(Mutex::default());
        let task = tokio::spawn(accept(listener, body, Arc::clone(&authorities)));
        App { authorities, task }
    }

    /// The authority (else the Host header) of every request answered so far, in order.
    pub fn authorities(&self) -> Vec<String> {
        lock(&self.authorities).clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1.1 and h2c connections; they are tasks of this future, so they end with it.
async fn accept(
    listener: TcpListener,
    body: Bytes,
    authorities: Arc<Mutex<Vec<String>>>,
) -> io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await?;
        while connections.try_join_next().is_some() {}
        let (body, authorities) = (body.clone(), Arc::clone(&authorities));
        let service = service_fn(move |request: Request<Incoming>| {
            lock(&authorities).push(authority(&request));
            let mut response = Response::new(Full::new(body.clone()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            async { Ok::<_, Infallible>(response) }
        });
        connections.spawn(async move {
            // A client that goes away mid-request is no concern of the demo.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The request's URI authority, else its Host header, else empty.
fn authority(request: &Request<Incoming>) -> String {
    match request.uri().authority() {
        Some(authority) => authority.to_string(),
        None => request
            .headers()
            .get(HOST)
            .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
            .unwrap_or_default(),
    }
}

fn lock(authorities: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    authorities.lock().unwrap_or_else(PoisonError::into_inner)
}
