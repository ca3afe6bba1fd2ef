//! Protected gray headers at the edge: the headers that choose a version (`x-gray-*`,
//! `x-swimlane`, `x-target-version`, ...) are removed from an outside request before
//! routing unless the request proves it may set them: a shared token in a header
//! (compared in constant time), a source address in a trusted CIDR, or a JWT with a claim
//! ([`JwtVerifier`]). So a leaked header
//! name cannot send arbitrary users to an unreleased version (seeds 002-03/06).
//!
//! A ReleasePolicy's `protectedHeaders` names the Gateways it guards; [`EdgeGuards`] holds
//! the guards of a config version by Gateway, and the gateway applies those of a request's
//! port with [`GrayGuard::apply`] where it prepares an edge request, before routing.

mod jwt;

use std::collections::HashMap;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use sluice_api::model::Model;
use sluice_api::model::release::Protect;

pub use jwt::JwtVerifier;

/// A protected header name: exact, or a prefix written `prefix*`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NamePattern {
    Exact(String),
    Prefix(String),
}

impl NamePattern {
    /// The pattern of a validated name; `None` for a name validation refuses.
    fn parse(text: &str) -> Option<NamePattern> {
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
            (false, _) => None,
            (true, true) => Some(NamePattern::Prefix(name)),
            (true, false) => Some(NamePattern::Exact(name)),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == name,
            NamePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// Who may set protected headers, and which headers those are.
#[derive(Debug)]
pub struct GrayGuard {
    protected: Vec<NamePattern>,
    /// The token header and its secret; `None` when the secret could not be read (the
    /// header is still removed, and no token passes).
    token: Option<(HeaderName, Option<Vec<u8>>)>,
    trusted: Vec<IpNet>,
    jwt: Option<JwtVerifier>,
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
    /// The guard of a compiled `protectedHeaders`, reading its secret and JWKS files. A
    /// file that cannot be read fails closed: that check lets no request pass.
    pub fn from_protect(p: &Protect, policy: &str) -> GrayGuard {
        let protected = p
            .headers
            .iter()
            .filter_map(|h| NamePattern::parse(h))
            .collect();
        let token = p.token.as_ref().and_then(|(name, file)| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let secret = match std::fs::read(file) {
                Ok(bytes) if !bytes.trim_ascii().is_empty() => Some(bytes.trim_ascii().to_vec()),
                Ok(_) => {
                    tracing::warn!(policy, file, "protectedHeaders token file is empty; no token passes");
                    None
                }
                Err(e) => {
                    tracing::warn!(policy, file, error = %e, "protectedHeaders token file unreadable; no token passes");
                    None
                }
            };
            Some((name, secret))
        });
        let jwt = p.jwt.as_ref().map(|j| JwtVerifier::load(j, policy));
        GrayGuard {
            protected,
            token,
            trusted: p.trusted.clone(),
            jwt,
        }
    }

    /// Applies the guard to an incoming request from `peer`, before routing: the token
    /// header is always removed (the secret never travels upstream); protected headers
    /// stay only when the request passed a check.
    pub fn apply(&self, headers: &mut HeaderMap, peer: IpAddr) -> Verdict {
        let token_ok = self.token.as_ref().is_some_and(|(name, secret)| {
            let ok = secret.as_ref().is_some_and(|secret| {
                headers
                    .get_all(name)
                    .iter()
                    .any(|v| constant_time_eq(v.as_bytes(), secret))
            });
            headers.remove(name);
            ok
        });
        let peer = peer.to_canonical();
        if token_ok
            || self.trusted.iter().any(|net| net.contains(&peer))
            || self.jwt.as_ref().is_some_and(|j| j.allows(headers))
        {
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

/// The guards of one config version, by Gateway (`namespace/name`).
#[derive(Debug, Default)]
pub struct EdgeGuards {
    by_gateway: HashMap<String, Vec<std::sync::Arc<GrayGuard>>>,
}

impl EdgeGuards {
    /// The guards of the ReleasePolicies in `model` that protect headers at a gateway;
    /// empty for a model without Gateways.
    pub fn build(model: &Model) -> EdgeGuards {
        let mut by_gateway: HashMap<String, Vec<std::sync::Arc<GrayGuard>>> = HashMap::new();
        if model.edge.ports.is_empty() {
            return EdgeGuards::default();
        }
        for release in model.releases.iter() {
            let Some(p) = &release.protect else { continue };
            let guard = std::sync::Arc::new(GrayGuard::from_protect(p, &release.name));
            for gw in &p.gateways {
                by_gateway
                    .entry(gw.clone())
                    .or_default()
                    .push(guard.clone());
            }
        }
        EdgeGuards { by_gateway }
    }

    /// Applies the guards of the Gateways with a server on `port` to a request from
    /// `client`: each removes its headers unless the request passes one of its checks.
    pub fn apply(&self, model: &Model, port: u16, headers: &mut HeaderMap, client: IpAddr) {
        if self.by_gateway.is_empty() {
            return;
        }
        let Some(edge_port) = model.edge.ports.get(&port) else {
            return;
        };
        let mut gateways: Vec<&str> = edge_port
            .servers
            .iter()
            .map(|s| s.gateway.as_str())
            .collect();
        gateways.dedup();
        let mut seen: Vec<*const GrayGuard> = Vec::new();
        for gw in gateways {
            for guard in self.by_gateway.get(gw).into_iter().flatten() {
                let id = std::sync::Arc::as_ptr(guard);
                if !seen.contains(&id) {
                    seen.push(id);
                    guard.apply(headers, client);
                }
            }
        }
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
    use sluice_api::model::release::DEFAULT_PROTECTED;

    use super::*;

    /// The default names, the token `s3cret` in `x-gray-token` (from a file) and 10/8.
    fn guard() -> GrayGuard {
        let file = std::env::temp_dir().join(format!("sluice-gray-token-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let protect = Protect {
            gateways: vec!["istio-system/edge".into()],
            headers: DEFAULT_PROTECTED.iter().map(|s| s.to_string()).collect(),
            token: Some(("x-gray-token".into(), file.display().to_string())),
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
            jwt: None,
        };
        let guard = GrayGuard::from_protect(&protect, "t/p");
        let _ = std::fs::remove_file(&file);
        guard
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
    fn an_unreadable_token_file_lets_no_token_pass_and_still_removes_it() {
        let protect = Protect {
            gateways: vec!["istio-system/edge".into()],
            headers: vec!["x-gray-*".into()],
            token: Some(("x-gray-token".into(), "/nonexistent/token".into())),
            trusted: Vec::new(),
            jwt: None,
        };
        let guard = GrayGuard::from_protect(&protect, "t/p");
        let mut h = request(&[("x-gray-tag", "v2"), ("x-gray-token", "")]);
        let outside: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(guard.apply(&mut h, outside), Verdict::Stripped(1));
        assert!(h.is_empty(), "{h:?}");
        assert!(NamePattern::parse("x gray").is_none());
        assert!(NamePattern::parse("*").is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
