//! The HTTP echo application: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port. Every
//! request is answered with a JSON description of itself ([`Seen`]) and an `x-app: <name>-<version>`
//! header; [`STATUS_HEADER`] and [`DELAY_HEADER`] shape the answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Response header naming the application that answered: `<name>-<version>`.
pub const APP_HEADER: &str = "x-app";
/// Request header asking for this response status, e.g. `503`.
pub const STATUS_HEADER: &str = "x-echo-status";
/// Request header asking to delay the answer by this many milliseconds.
pub const DELAY_HEADER: &str = "x-echo-delay-ms";

/// Who an application is: what `x-app` and [`Seen`] report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppId {
    /// Application name, e.g. `reviews`.
    pub name: String,
    /// Version, e.g. `v1`: what subsets select.
    pub version: String,
}

impl AppId {
    /// An application id from its name and version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }
}

/// One request as the application saw it; also the JSON body of its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Name of the application that answered.
    pub name: String,
    /// Version of the application that answered.
    pub version: String,
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Path and query of the request target, e.g. `/ratings?x=1`, for HTTP/1.1 and HTTP/2 alike.
    pub uri: String,
    /// The URI's authority, else the Host header.
    pub authority: Option<String>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub proto: String,
    /// Headers by lowercase name; the values of a repeated header are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// Length of the request body in bytes.
    pub body_len: usize,
}

impl Seen {
    fn new(id: &AppId, request: &Parts, body_len: usize) -> Self {
        let authority = match request.uri.authority() {
            Some(authority) => Some(authority.to_string()),
            None => request.headers.get(HOST).map(text),
        };
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &request.headers {
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&text(value));
                })
                .or_insert_with(|| text(value));
        }
        Self {
            name: id.name.clone(),
            version: id.version.clone(),
            method: request.method.to_string(),
            uri: request
                .uri
                .path_and_query()
                .map_or_else(|| request.uri.path(), |target| target.as_str())
                .to_owned(),
            authority,
            proto: format!("{:?}", request.version),
            headers,
            body_len,
        }
    }
}

/// The requests an in-process application answered, in order; clones share the log.
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Seen>>>);

impl RequestLog {
    /// A copy of the requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.entries().clone()
    }

    pub(super) fn record(&self, seen: Seen) {
        self.entries().push(seen);
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The application serving `listener`: the returned future accepts connections until dropped and
/// hands every request to `record` (before any delay, so even abandoned requests are seen). Fails
/// at once if the id cannot be sent as an `x-app` header value.
pub fn serve(
    listener: TcpListener,
    id: AppId,
    record: impl Fn(&Seen) + Send + Sync + 'static,
) -> io::Result<impl Future<Output = io::Result<()>> + Send + 'static> {
    let app_header = HeaderValue::try_from(format!("{}-{}", id.name, id.version))
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let app = Arc::new(App {
        id,
        app_header,
        record: Box::new(record),
    });
    Ok(super::accept_loop(listener, move |stream| {
        let app = Arc::clone(&app);
        async move {
            let service = service_fn(move |request| Arc::clone(&app).answer(request));
            // A client that goes away mid-request is no concern of a test application.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }))
}

/// What every connection of one application shares.
struct App {
    id: AppId,
    app_header: HeaderValue,
    record: Box<dyn Fn(&Seen) + Send + Sync>,
}

impl App {
    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let (parts, body) = request.into_parts();
        let body_len = body.collect().await?.to_bytes().len();
        let seen = Seen::new(&self.id, &parts, body_len);
        (self.record)(&seen);
        Ok(match requested(&parts.headers) {
            Ok((status, delay)) => {
                tokio::time::sleep(delay).await;
                let json = serde_json::to_vec(&seen).expect("Seen serializes to JSON");
                self.respond(status, "application/json", json)
            }
            Err(problem) => self.respond(StatusCode::BAD_REQUEST, "text/plain", problem.into()),
        })
    }

    fn respond(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(APP_HEADER, self.app_header.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// The status and delay a request asks for, or what is wrong with the asking.
fn requested(headers: &HeaderMap) -> Result<(StatusCode, Duration), String> {
    let status = match headers.get(STATUS_HEADER) {
        None => StatusCode::OK,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|value| StatusCode::from_bytes(value.as_bytes()).ok())
            .ok_or_else(|| format!("{STATUS_HEADER}: {value:?} is no HTTP status\n"))?,
    };
    let delay = match headers.get(DELAY_HEADER) {
        None => Duration::ZERO,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|value| value.parse().ok())
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{DELAY_HEADER}: {value:?} is no number of milliseconds\n"))?,
    };
    Ok((status, delay))
}

fn text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().uri("http://reviews:9080/r?x=1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn shaping_headers_set_status_and_delay() {
        // (header, value, Some((status, delay ms)) or None when rejected)
        let cases = [
            ("x-other", "1", Some((200, 0))),
            (STATUS_HEADER, "503", Some((503, 0))),
            (DELAY_HEADER, "250", Some((200, 250))),
            (STATUS_HEADER, "abc", None),
            (STATUS_HEADER, "1000", None),
            (DELAY_HEADER, "-1", None),
        ];
        for (header, value, expected) in cases {
            match requested(&parts(&[(header, value)]).headers) {
                Ok((status, delay)) => assert_eq!(
                    Some((status.as_u16(), delay)),
                    expected.map(|(status, ms)| (status, Duration::from_millis(ms))),
                    "{header}: {value}"
                ),
                Err(problem) => {
                    assert_eq!(expected, None, "{header}: {value}: {problem}");
                    assert!(problem.contains(header), "{problem}");
                }
            }
        }
    }

    #[test]
    fn seen_joins_repeated_headers_and_takes_the_uri_authority() {
        let request = parts(&[("X-Tag", "a"), ("x-tag", "b"), ("host", "ignored")]);
        let seen = Seen::new(&AppId::new("reviews", "v2"), &request, 3);
        assert_eq!(seen.headers["x-tag"], "a, b");
        assert_eq!(seen.authority.as_deref(), Some("reviews:9080"));
        assert_eq!(seen.uri, "/r?x=1");
        assert_eq!(seen.proto, "HTTP/1.1");
        assert_eq!((seen.name.as_str(), seen.body_len), ("reviews", 3));
    }
}
