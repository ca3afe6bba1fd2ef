//! Retries: which failures and answers are retried, with what pause, and the request body's
//! retry buffer ([`RequestBody`]).

mod replay;

use std::time::Duration;

use hyper::Response;
use sluice_api::model::routes::RetryOn;

use crate::error::ProxyError;

pub use replay::RequestBody;

/// The gRPC status of a trailers-only answer.
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// True for a method a request may be sent again with after the upstream received it (RFC
/// 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE); POST, PATCH and the rest are sent
/// again only when they never left.
pub fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// True when a failure before an answer is retried under `on`.
pub fn retry_error(on: &RetryOn, err: &ProxyError) -> bool {
    let any_5xx = on.server_error || on.gateway_error;
    match err {
        ProxyError::Connect { .. } | ProxyError::Tls { .. } => any_5xx || on.connect_failure,
        ProxyError::Upstream { .. } | ProxyError::Timeout(_) => any_5xx || on.reset,
        _ => false,
    }
}

/// True for failures that count against the endpoint (outlier detection).
pub fn is_endpoint_failure(err: &ProxyError) -> bool {
    matches!(
        err,
        ProxyError::Connect { .. }
            | ProxyError::Tls { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::Timeout(_)
    )
}

/// True when an answer is retried under `on`: by HTTP status, or by the gRPC
/// status of a trailers-only answer.
pub fn retry_response<B>(on: &RetryOn, resp: &Response<B>) -> bool {
    if on.status(resp.status().as_u16()) {
        return true;
    }
    let grpc = resp
        .headers()
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok());
    let name = match grpc {
        Some("1") => "cancelled",
        Some("4") => "deadline-exceeded",
        Some("8") => "resource-exhausted",
        Some("13") => "internal",
        Some("14") => "unavailable",
        _ => return false,
    };
    on.grpc.iter().any(|g| g == name)
}

/// Pause before try `n` (2, 3, ...): exponential from `base`, capped at ten
/// times it, with full jitter.
pub fn backoff(base: Duration, n: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1 << n.saturating_sub(2).min(8))
        .min(base * 10);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        let connect = ProxyError::Connect {
            addr: "10.0.0.1:80".parse().unwrap(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let cases = [
            ("connect-failure", &connect, true),
            ("5xx", &connect, true),
            ("retriable-4xx", &connect, false),
            ("reset", &ProxyError::Timeout(Duration::from_secs(1)), true),
            (
                "connect-failure",
                &ProxyError::NoEndpoints("x".into()),
                false,
            ),
        ];
        for (on, err, expected) in cases {
            assert_eq!(
                retry_error(&RetryOn::parse(on), err),
                expected,
                "{on} {err}"
            );
        }
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let base = Duration::from_millis(25);
        for n in 2..20 {
            assert!(backoff(base, n) <= base * 10);
        }
    }
}
