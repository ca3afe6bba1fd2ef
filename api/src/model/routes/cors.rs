//! A route's CORS policy compiled for the request path: origin matchers
//! compiled and the header values the proxy sends joined once, as Istio
//! hands them to Envoy's CORS filter.

use serde::Serialize;

use crate::istio::virtual_service::{CorsPolicy, UnmatchedPreflights};
use crate::model::string_match::StrMatch;

/// A compiled `corsPolicy`.
#[derive(Debug, Serialize)]
pub struct Cors {
    /// Allowed origins: `allowOrigins`, else the deprecated `allowOrigin` as exact matches.
    pub origins: Vec<StrMatch>,
    /// `Access-Control-Allow-Methods`, when methods are listed.
    pub allow_methods: Option<String>,
    /// `Access-Control-Allow-Headers`, when headers are listed.
    pub allow_headers: Option<String>,
    /// `Access-Control-Expose-Headers`, when headers are listed.
    pub expose_headers: Option<String>,
    /// `Access-Control-Max-Age` in seconds, when set.
    pub max_age: Option<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// Preflights from origins not allowed go upstream (`FORWARD`, the
    /// default) rather than being answered here without CORS headers (`IGNORE`).
    pub forward_unmatched_preflights: bool,
}

impl Cors {
    /// Compiles a policy (regexes were validated at load time).
    pub fn compile(p: &CorsPolicy) -> Cors {
        let origins = if p.allow_origins.is_empty() {
            p.allow_origin
                .iter()
                .map(|o| StrMatch::Exact(o.clone()))
                .collect()
        } else {
            p.allow_origins
                .iter()
                .map(|m| StrMatch::compile(m, false))
                .collect()
        };
        let joined = |list: &[String]| (!list.is_empty()).then(|| list.join(","));
        Cors {
            origins,
            allow_methods: joined(&p.allow_methods),
            allow_headers: joined(&p.allow_headers),
            expose_headers: joined(&p.expose_headers),
            max_age: p.max_age.map(|d| d.get().as_secs().to_string()),
            allow_credentials: p.allow_credentials == Some(true),
            forward_unmatched_preflights: p.unmatched_preflights
                != Some(UnmatchedPreflights::Ignore),
        }
    }

    /// True when `origin` may make cross-origin requests: a matcher that
    /// matches `*` allows every origin, as in Envoy.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|m| m.matches("*") || m.matches(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::StringMatch;

    fn exact(s: &str) -> StringMatch {
        StringMatch {
            exact: Some(s.into()),
            ..StringMatch::default()
        }
    }

    #[test]
    fn origins_and_header_values() {
        let regex = StringMatch {
            regex: Some(r"https://.*\.example\.com".into()),
            ..StringMatch::default()
        };
        // (policy, origin, allowed)
        let cases = [
            (
                CorsPolicy {
                    allow_origins: vec![exact("https://a.com")],
                    ..CorsPolicy::default()
                },
                "https://a.com",
                true,
            ),
            (
                CorsPolicy {
                    allow_origins: vec![exact("https://a.com")],
                    ..CorsPolicy::default()
                },
                "https://b.com",
                false,
            ),
            (
                CorsPolicy {
                    allow_origins: vec![regex.clone()],
                    ..CorsPolicy::default()
                },
                "https://shop.example.com",
                true,
            ),
            (
                CorsPolicy {
                    allow_origins: vec![regex],
                    ..CorsPolicy::default()
                },
                "https://example.com.evil",
                false,
            ),
            (
                CorsPolicy {
                    allow_origin: vec!["https://old.com".into()],
                    ..CorsPolicy::default()
                },
                "https://old.com",
                true,
            ),
            (
                CorsPolicy {
                    allow_origin: vec!["*".into()],
                    ..CorsPolicy::default()
                },
                "https://any.com",
                true,
            ),
            (CorsPolicy::default(), "https://a.com", false),
        ];
        for (policy, origin, allowed) in cases {
            assert_eq!(
                Cors::compile(&policy).allows(origin),
                allowed,
                "{origin} {policy:?}"
            );
        }
        let full = Cors::compile(&CorsPolicy {
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-a".into(), "x-b".into()],
            max_age: Some(crate::duration::Duration::parse("24h").unwrap()),
            allow_credentials: Some(true),
            unmatched_preflights: Some(UnmatchedPreflights::Ignore),
            ..CorsPolicy::default()
        });
        assert_eq!(full.allow_methods.as_deref(), Some("GET,POST"));
        assert_eq!(full.allow_headers.as_deref(), Some("x-a,x-b"));
        assert_eq!(full.expose_headers, None);
        assert_eq!(full.max_age.as_deref(), Some("86400"));
        assert!(full.allow_credentials);
        assert!(!full.forward_unmatched_preflights);
        assert!(Cors::compile(&CorsPolicy::default()).forward_unmatched_preflights);
    }
}
