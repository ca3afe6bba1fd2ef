//! CORS, as Envoy's CORS filter applies a route's `corsPolicy`: preflights
//! from allowed origins are answered here, other preflights go upstream or
//! get a bare 200, and answers to allowed origins carry the CORS headers.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderName, HeaderValue, ORIGIN,
};
use http::{HeaderMap, Method};
use hyper::Response;
use sluice_api::model::routes::Cors;

use super::{Body, empty};

/// What the CORS policy does with one request.
#[derive(Debug)]
pub enum Decision {
    /// Not a cross-origin request for this policy: go on, change nothing.
    Pass,
    /// Answer the preflight here.
    Answer(Response<Body>),
    /// Go on; the answer gets the CORS headers for this origin.
    Allow(HeaderValue),
}

/// Decides for a request under `cors`.
pub fn decide(cors: &Cors, method: &Method, headers: &HeaderMap) -> Decision {
    let Some(origin) = headers.get(ORIGIN).filter(|o| !o.is_empty()) else {
        return Decision::Pass;
    };
    let preflight = method == Method::OPTIONS
        && headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| !m.is_empty());
    let allowed = origin.to_str().is_ok_and(|o| cors.allows(o));
    match (preflight, allowed) {
        (true, true) => Decision::Answer(preflight_answer(cors, origin)),
        (true, false) if !cors.forward_unmatched_preflights => {
            Decision::Answer(Response::new(empty()))
        }
        (false, true) => Decision::Allow(origin.clone()),
        _ => Decision::Pass,
    }
}

fn preflight_answer(cors: &Cors, origin: &HeaderValue) -> Response<Body> {
    let mut resp = Response::new(empty());
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if cors.allow_credentials {
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let listed = [
        (ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods),
        (ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers),
        (ACCESS_CONTROL_MAX_AGE, &cors.max_age),
    ];
    insert_listed(h, listed);
    resp
}

/// Adds the CORS headers of an allowed cross-origin request to its answer.
pub fn allow(cors: &Cors, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if cors.allow_credentials {
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    insert_listed(
        headers,
        [(ACCESS_CONTROL_EXPOSE_HEADERS, &cors.expose_headers)],
    );
}

fn insert_listed<const N: usize>(
    headers: &mut HeaderMap,
    listed: [(HeaderName, &Option<String>); N],
) {
    for (name, value) in listed {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::model::string_match::StrMatch;

    use super::*;

    fn policy(forward: bool) -> Cors {
        Cors {
            origins: vec![StrMatch::Exact("https://web.example".into())],
            allow_methods: Some("GET,POST".into()),
            allow_headers: Some("x-token".into()),
            expose_headers: Some("x-trace".into()),
            max_age: Some("600".into()),
            allow_credentials: true,
            forward_unmatched_preflights: forward,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn decisions() {
        let allowed = ("origin", "https://web.example");
        let other = ("origin", "https://evil.example");
        let asks = ("access-control-request-method", "POST");
        // (forward unmatched, method, headers, expected: pass / answer with allow-origin / bare answer / allow)
        type Case<'a> = (bool, Method, Vec<(&'a str, &'a str)>, &'a str);
        let cases: [Case<'_>; 7] = [
            (true, Method::GET, vec![], "pass"),
            (true, Method::GET, vec![allowed], "allow"),
            (true, Method::GET, vec![other], "pass"),
            (true, Method::OPTIONS, vec![allowed, asks], "preflight"),
            (true, Method::OPTIONS, vec![allowed], "allow"),
            (true, Method::OPTIONS, vec![other, asks], "pass"),
            (false, Method::OPTIONS, vec![other, asks], "bare"),
        ];
        for (forward, method, pairs, expected) in cases {
            let got = match decide(&policy(forward), &method, &headers(&pairs)) {
                Decision::Pass => "pass",
                Decision::Allow(_) => "allow",
                Decision::Answer(r) if r.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) => {
                    "preflight"
                }
                Decision::Answer(_) => "bare",
            };
            assert_eq!(got, expected, "{forward} {method} {pairs:?}");
        }
    }

    #[test]
    fn preflight_and_actual_headers() {
        let origin = HeaderValue::from_static("https://web.example");
        let pre = preflight_answer(&policy(true), &origin);
        assert_eq!(pre.status(), 200);
        let h = pre.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://web.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET,POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "x-token");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(!h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS));

        let mut actual = HeaderMap::new();
        allow(&policy(true), origin, &mut actual);
        assert_eq!(actual[ACCESS_CONTROL_ALLOW_ORIGIN], "https://web.example");
        assert_eq!(actual[ACCESS_CONTROL_EXPOSE_HEADERS], "x-trace");
        assert_eq!(actual[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(!actual.contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    }
}
