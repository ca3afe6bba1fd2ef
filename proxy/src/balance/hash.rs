//! Consistent hashing: the request property hashed, jump hash over the
//! endpoints, and the cookie made up for a client that has none yet.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use sluice_api::model::policy::{HashKey, LoadBalancer};

use super::HashInput;

/// The hash of the request property `key` names; `None` when the request lacks it.
pub fn hash(key: &HashKey, input: &HashInput<'_>) -> Option<u64> {
    let mut h = DefaultHasher::new();
    match key {
        HashKey::Header(name) => input.headers?.get(name)?.as_bytes().hash(&mut h),
        HashKey::Cookie { name, .. } => input
            .headers
            .and_then(|headers| cookie(headers, name))
            .or(input.generated_cookie)?
            .hash(&mut h),
        HashKey::QueryParameter(name) => query_param(input.query, name)?.hash(&mut h),
        HashKey::SourceIp => input.source?.hash(&mut h),
    }
    Some(h.finish())
}

/// A cookie's value, without the quotes Envoy puts around generated values.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| unquote(v))
        })
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Jump consistent hash (Lamping & Veach): moves few keys when `n` changes.
pub fn jump_hash(mut key: u64, n: usize) -> usize {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

/// The cookie generated for consistent hashing on `httpCookie` with a `ttl`
/// when the request has none, as Envoy does: the value is a hash of the
/// client connection's addresses, the request is hashed on it, and the
/// answer sets it so the client's next requests stick to the same endpoint.
#[derive(Debug)]
pub struct SessionCookie {
    /// The generated value, hashed in place of the missing cookie.
    pub value: String,
    /// The `Set-Cookie` header for the answer.
    pub set_cookie: HeaderValue,
}

impl SessionCookie {
    /// The cookie to generate for a request from `client` to `local`, when
    /// `lb` hashes on a cookie with a ttl that the request does not carry.
    pub fn generate(
        lb: &LoadBalancer,
        headers: &HeaderMap,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Option<SessionCookie> {
        let LoadBalancer::ConsistentHash(HashKey::Cookie {
            name,
            path,
            ttl: Some(ttl),
            attributes,
        }) = lb
        else {
            return None;
        };
        if cookie(headers, name).is_some() {
            return None;
        }
        let mut h = DefaultHasher::new();
        format!("{client}{local}").hash(&mut h);
        let value = format!("{:016x}", h.finish());
        let header = set_cookie(name, &value, path.as_deref(), *ttl, attributes);
        Some(SessionCookie {
            set_cookie: HeaderValue::from_str(&header).ok()?,
            value,
        })
    }
}

/// `name="value"; Max-Age=N; Path=P; attributes; HttpOnly`, in Envoy's
/// order; a zero ttl makes a session cookie (no Max-Age).
fn set_cookie(
    name: &str,
    value: &str,
    path: Option<&str>,
    ttl: Duration,
    attributes: &[(String, String)],
) -> String {
    let mut out = format!("{name}=\"{value}\"");
    if !ttl.is_zero() {
        out += &format!("; Max-Age={}", ttl.as_secs());
    }
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        out += &format!("; Path={p}");
    }
    for (k, v) in attributes {
        out += &if v.is_empty() {
            format!("; {k}")
        } else {
            format!("; {k}={v}")
        };
    }
    out + "; HttpOnly"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_in_range() {
        for key in 0..1000u64 {
            let a = jump_hash(key, 7);
            assert!(a < 7);
            assert_eq!(a, jump_hash(key, 7));
        }
    }

    fn cookie_lb(ttl: Option<Duration>) -> LoadBalancer {
        LoadBalancer::ConsistentHash(HashKey::Cookie {
            name: "session".into(),
            path: Some("/app".into()),
            ttl,
            attributes: vec![
                ("SameSite".into(), "Strict".into()),
                ("Secure".into(), String::new()),
            ],
        })
    }

    #[test]
    fn a_cookie_is_generated_only_when_missing_and_a_ttl_is_set() {
        let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "10.96.0.10:80".parse().unwrap();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(COOKIE, HeaderValue::from_static(v));
            h
        };
        let hour = Some(Duration::from_secs(3600));
        // (balancer, request headers, generated)
        let cases = [
            (cookie_lb(hour), HeaderMap::new(), true),
            (cookie_lb(hour), with("other=1"), true),
            (cookie_lb(hour), with("a=1; session=\"abc\""), false),
            (cookie_lb(None), HeaderMap::new(), false),
            (LoadBalancer::RoundRobin, HeaderMap::new(), false),
        ];
        for (lb, headers, generated) in cases {
            let got = SessionCookie::generate(&lb, &headers, client, local);
            assert_eq!(got.is_some(), generated, "{lb:?} {headers:?}");
        }
        let made =
            SessionCookie::generate(&cookie_lb(hour), &HeaderMap::new(), client, local).unwrap();
        assert_eq!(
            made.set_cookie,
            format!(
                "session=\"{}\"; Max-Age=3600; Path=/app; SameSite=Strict; Secure; HttpOnly",
                made.value
            )
        );
        let again =
            SessionCookie::generate(&cookie_lb(hour), &HeaderMap::new(), client, local).unwrap();
        assert_eq!(made.value, again.value, "stable per connection");
        assert_eq!(
            set_cookie("s", "v", None, Duration::ZERO, &[]),
            "s=\"v\"; HttpOnly",
            "a zero ttl is a session cookie"
        );
    }

    #[test]
    fn the_generated_value_hashes_like_the_cookie_sent_back() {
        let key = HashKey::Cookie {
            name: "session".into(),
            path: None,
            ttl: Some(Duration::from_secs(60)),
            attributes: Vec::new(),
        };
        let generated = HashInput {
            generated_cookie: Some("00ff"),
            ..HashInput::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("session=\"00ff\""));
        let sent_back = HashInput {
            headers: Some(&headers),
            ..HashInput::default()
        };
        assert_eq!(hash(&key, &generated), hash(&key, &sent_back));
        assert!(hash(&key, &HashInput::default()).is_none());
    }
}
