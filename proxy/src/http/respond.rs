//! The one place proxy errors become HTTP answers, and the other answers the
//! proxy makes itself (direct responses, redirects, fault aborts).

use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use hyper::Response;

use super::{Body, empty, full};
use crate::error::ProxyError;

/// Header naming what the proxy itself answered for, so a client can tell
/// the proxy's answers from the app's.
pub const ERROR_HEADER: &str = "x-sluice-error";

/// The status an error is answered with.
pub fn status(err: &ProxyError) -> StatusCode {
    match err {
        ProxyError::UnknownDestination(_) | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
        ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
        ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        ProxyError::MissingSubset { .. }
        | ProxyError::NoEndpoints(_)
        | ProxyError::NoHealthyEndpoints(_)
        | ProxyError::UnknownHost(_)
        | ProxyError::Resolve { .. }
        | ProxyError::Connect { .. }
        | ProxyError::Overflow(_)
        | ProxyError::Tls { .. }
        | ProxyError::TlsUnavailable { .. }
        | ProxyError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The answer to a request the proxy could not complete: a plain-text body
/// saying why, or for gRPC callers a trailers-only gRPC status.
pub fn error(err: &ProxyError, grpc: bool) -> Response<Body> {
    let status = status(err);
    let message = format!("sluice: {err}\n");
    let mut resp = if grpc {
        grpc_error(status, &message)
    } else {
        text(status.as_u16(), message)
    };
    resp.headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(kind(err)));
    resp
}

/// The answer to a caller outside the pod (inbound, a gateway's client): [`error`]'s status,
/// header and shape, but a fixed text per kind of error that names no address, host, port or
/// config object of the mesh (Envoy's `upstream connect error...` in spirit); the details go
/// to the proxy's log and access log only.
pub fn remote_error(err: &ProxyError, grpc: bool) -> Response<Body> {
    let status = status(err);
    let message = format!("sluice: {}\n", public_reason(err));
    let mut resp = if grpc {
        grpc_error(status, &message)
    } else {
        text(status.as_u16(), message)
    };
    resp.headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(kind(err)));
    resp
}

fn public_reason(err: &ProxyError) -> &'static str {
    match err {
        ProxyError::UnknownDestination(_) | ProxyError::UnknownHost(_) => "unknown destination",
        ProxyError::NoRoute { .. } => "no route matched the request",
        ProxyError::MissingSubset { .. } | ProxyError::NoEndpoints(_) => "no upstream",
        ProxyError::NoHealthyEndpoints(_) => "no healthy upstream",
        ProxyError::Resolve { .. } | ProxyError::Connect { .. } => "upstream connect error",
        ProxyError::Tls { .. } | ProxyError::TlsUnavailable { .. } => "upstream TLS error",
        ProxyError::Upstream { .. } => "upstream reset before the response completed",
        ProxyError::ClientBody(_) => "the request body could not be read",
        ProxyError::Timeout(_) => "upstream request timeout",
        ProxyError::Overflow(_) => "upstream overflow",
        ProxyError::NotReady => "proxy not ready",
    }
}

fn kind(err: &ProxyError) -> &'static str {
    match err {
        ProxyError::UnknownDestination(_) => "unknown-destination",
        ProxyError::NoRoute { .. } => "no-route",
        ProxyError::MissingSubset { .. } => "missing-subset",
        ProxyError::NoEndpoints(_) => "no-endpoints",
        ProxyError::NoHealthyEndpoints(_) => "no-healthy-upstream",
        ProxyError::UnknownHost(_) => "unknown-host",
        ProxyError::Resolve { .. } => "dns",
        ProxyError::Connect { .. } => "connect",
        ProxyError::Upstream { .. } => "upstream",
        ProxyError::ClientBody(_) => "request-body",
        ProxyError::Timeout(_) => "timeout",
        ProxyError::Overflow(_) => "overflow",
        ProxyError::Tls { .. } => "tls",
        ProxyError::TlsUnavailable { .. } => "tls-unavailable",
        ProxyError::NotReady => "not-ready",
    }
}

/// gRPC clients read errors from `grpc-status`, not the HTTP status.
fn grpc_error(status: StatusCode, message: &str) -> Response<Body> {
    let code = match status {
        StatusCode::GATEWAY_TIMEOUT => "4",
        StatusCode::NOT_FOUND => "12",
        _ => "14",
    };
    let mut resp = Response::new(empty());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static(code));
    if let Ok(v) = HeaderValue::from_str(message.trim()) {
        h.insert("grpc-message", v);
    }
    resp
}

/// A plain-text answer.
pub fn text(status: u16, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A redirect.
pub fn redirect(location: &str, code: u16) -> Response<Body> {
    let mut resp = text(code, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// True when the request comes from a gRPC client.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_says_why_and_what_it_is() {
        let cases = [
            (
                ProxyError::UnknownDestination("10.1.2.3:80".parse().unwrap()),
                502,
                "REGISTRY_ONLY",
            ),
            (
                ProxyError::MissingSubset {
                    host: "catalog.default.svc.cluster.local".into(),
                    subset: "v3".into(),
                },
                503,
                "\"v3\"",
            ),
            (
                ProxyError::NoEndpoints("catalog/v2".into()),
                503,
                "catalog/v2",
            ),
            (
                ProxyError::Connect {
                    addr: "10.1.7.9:8080".parse().unwrap(),
                    source: std::io::ErrorKind::ConnectionRefused.into(),
                },
                503,
                "10.1.7.9",
            ),
            (
                ProxyError::Timeout(std::time::Duration::from_secs(1)),
                504,
                "timeout",
            ),
            (
                ProxyError::NoRoute {
                    vs: "default/catalog".into(),
                    method: "GET".into(),
                    path: "/x".into(),
                },
                404,
                "default/catalog",
            ),
        ];
        for (err, code, needle) in cases {
            let remote = remote_error(&err, false);
            assert_eq!(remote.status().as_u16(), code, "{err}");
            let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                remote.into_body(),
            ))
            .unwrap()
            .unwrap()
            .to_bytes();
            let body = String::from_utf8_lossy(&body);
            for internal in ["10.1", "catalog", "cluster.local", "v2", "v3"] {
                assert!(!body.contains(internal), "{body} names {internal}");
            }
            let resp = error(&err, false);
            assert_eq!(resp.status().as_u16(), code, "{err}");
            assert!(err.to_string().contains(needle), "{err}");
            assert!(resp.headers().contains_key(ERROR_HEADER));
            let grpc = error(&err, true);
            assert_eq!(grpc.status(), 200);
            assert!(grpc.headers().contains_key("grpc-status"));
        }
    }
}
