//! Protected gray headers at the edge: the headers that choose a version (`x-gray-*`,
//! `x-swimlane`, `x-target-version`, ...) are removed from an outside request before
//! routing unless the request proves it may set them: a shared token in a header
//! (compared in constant time) or a source address in a trusted CIDR. So a leaked header
//! name cannot send arbitrary users to an unreleased version (seeds 002-03/06).
//!
//! The entry point is [`GrayGuard::apply`], called on an incoming request's headers and
//! peer address before route selection; the ingress gateway calls it (wired when the
//! gateway lands, #11).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// The default protected header names.
pub const DEFAULT_PROTECTED: [&str; 3] = ["x-gray-*", "x-swimlane", "x-target-version"];

/// A protected header name: exact, or a prefix written `prefix*`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NamePattern {
    Exact(String),
    Prefix(String),
}

impl NamePattern {
    fn parse(text: &str) -> Result<NamePattern, GuardError> {
        let lower = text.to_ascii_lowercase();
        let (name, prefix) = match lower.strip_suffix('*') {
            Some(p) => (p.to_string(), true),
            None => (lower, false),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match (valid, prefix) {
            (false, _) => Err(GuardError::Name(text.to_string())),
            (true, true) => Ok(NamePattern::Prefix(name)),
            (true, false) => Ok(NamePattern::Exact(name)),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == name,
            NamePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// A guard configuration that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// A protected name is not a header name (or `prefix*`).
    #[error("\"{0}\" is not a header name or a prefix pattern such as x-gray-*")]
    Name(String),
    /// The token header is not a header name, or the token is empty.
    #[error("the token check needs a header name and a non-empty token")]
    Token,
}

/// Who may set protected headers, and which headers those are.
#[derive(Clone, Debug)]
pub struct GrayGuard {
    protected: Vec<NamePattern>,
    token: Option<(HeaderName, Vec<u8>)>,
    trusted: Vec<IpNet>,
}

/// What the guard did to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The request passed a check: its protected headers stay.
    Trusted,
    /// The request passed no check: this many protected headers were removed.
    Stripped(usize),
}

impl GrayGuard {
    /// A guard of the `protected` names (`x-gray-*` for a prefix), trusting requests that
    /// carry `token` = (header, secret) or come from a `trusted` network.
    pub fn new(
        protected: &[String],
        token: Option<(&str, &[u8])>,
        trusted: Vec<IpNet>,
    ) -> Result<GrayGuard, GuardError> {
        let protected = protected
            .iter()
            .map(|p| NamePattern::parse(p))
            .collect::<Result<_, _>>()?;
        let token = match token {
            None => None,
            Some((_, [])) => return Err(GuardError::Token),
            Some((name, secret)) => Some((
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| GuardError::Token)?,
                secret.to_vec(),
            )),
        };
        Ok(GrayGuard {
            protected,
            token,
            trusted,
        })
    }

    /// Applies the guard to an incoming request from `peer`, before routing: the token
    /// header is always removed (the secret never travels upstream); protected headers
    /// stay only when the request passed a check.
    pub fn apply(&self, headers: &mut HeaderMap, peer: IpAddr) -> Verdict {
        let token_ok = self.token.as_ref().is_some_and(|(name, secret)| {
            let ok = headers
                .get_all(name)
                .iter()
                .any(|v| constant_time_eq(v.as_bytes(), secret));
            headers.remove(name);
            ok
        });
        if token_ok || self.trusted.iter().any(|net| net.contains(&peer)) {
            return Verdict::Trusted;
        }
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.protected.iter().any(|p| p.matches(k.as_str())))
            .cloned()
            .collect();
        for name in &names {
            headers.remove(name);
        }
        Verdict::Stripped(names.len())
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn guard() -> GrayGuard {
        let names: Vec<String> = DEFAULT_PROTECTED.iter().map(|s| s.to_string()).collect();
        GrayGuard::new(
            &names,
            Some(("X-Gray-Token", b"s3cret")),
            vec!["10.0.0.0/8".parse().unwrap()],
        )
        .unwrap()
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn an_outside_request_loses_its_gray_headers_and_keeps_the_rest() {
        let mut h = request(&[
            ("x-gray-tag", "v2"),
            ("x-gray-user", "u"),
            ("x-swimlane", "gray"),
            ("x-target-version", "v2"),
            ("x-user-id", "alice"),
            ("x-grayish", "kept: not the x-gray- prefix"),
        ]);
        let outside: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(guard().apply(&mut h, outside), Verdict::Stripped(4));
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["x-grayish", "x-user-id"]);
    }

    #[test]
    fn a_token_or_a_trusted_source_keeps_them_and_the_token_never_travels_on() {
        let outside: IpAddr = "203.0.113.9".parse().unwrap();
        let mut h = request(&[("x-gray-tag", "v2"), ("x-gray-token", "s3cret")]);
        assert_eq!(guard().apply(&mut h, outside), Verdict::Trusted);
        assert!(h.contains_key("x-gray-tag"));
        assert!(!h.contains_key("x-gray-token"), "the secret is removed");

        let mut wrong = request(&[("x-gray-tag", "v2"), ("x-gray-token", "s3cres")]);
        assert_eq!(guard().apply(&mut wrong, outside), Verdict::Stripped(1));
        assert!(wrong.is_empty(), "{wrong:?}");

        let mut inside = request(&[("x-swimlane", "gray")]);
        let office: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(guard().apply(&mut inside, office), Verdict::Trusted);
        assert!(inside.contains_key("x-swimlane"));
    }

    #[test]
    fn bad_names_and_empty_tokens_are_refused() {
        let bad = GrayGuard::new(&["x gray".into()], None, Vec::new()).unwrap_err();
        assert_eq!(bad, GuardError::Name("x gray".into()));
        assert!(GrayGuard::new(&["*".into()], None, Vec::new()).is_err());
        let empty = GrayGuard::new(&[], Some(("x-t", b"")), Vec::new()).unwrap_err();
        assert_eq!(empty, GuardError::Token);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
