//! Head shaping of a forwarded request: hop-by-hop headers out, the rule's and the
//! destination's header changes in, the authority and path rewritten, and the upstream head
//! built once for every try.

use http::HeaderValue;
use http::header::HOST;
use http::request::Parts;
use http::uri::PathAndQuery;
use hyper::Request;

use super::Route;
use crate::http::retry;
use crate::http::route::{rewrite_authority, rewrite_path};
use crate::http::upgrade::ClientUpgrade;
use crate::http::{Body, Version, forward, headers};

/// The client's request head as it goes upstream.
pub(super) struct Head {
    /// The authority after the rule's rewrite.
    pub authority: String,
    /// The Host header to send, when the authority makes a valid one.
    pub host: Option<HeaderValue>,
    /// The path and query after the rule's rewrite.
    pub path: PathAndQuery,
    /// The client asks for a protocol upgrade (WebSocket).
    pub upgrade: bool,
    /// The client's side of that upgrade, joined to the upstream's on `101`.
    pub client_upgrade: Option<ClientUpgrade>,
}

impl Head {
    /// Shapes the headers of `parts` in place and rewrites `authority` and the path as `route`
    /// asks.
    pub fn shape(route: &Route<'_>, authority: String, parts: &mut Parts) -> Head {
        let client_upgrade = ClientUpgrade::take(&mut parts.extensions, &parts.headers);
        let upgrade = headers::is_upgrade(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Some(rule) = route.rule {
            headers::apply(&rule.request_headers, &mut parts.headers);
        }
        if let Some(ops) = route.target_headers {
            headers::apply(ops, &mut parts.headers);
        }
        let rewrite = route.rule.and_then(|r| r.rewrite.as_ref());
        let authority = rewrite
            .and_then(rewrite_authority)
            .map_or(authority, str::to_string);
        // The client's own Host header serves as it is when the authority stays.
        let host = match parts.headers.get(HOST) {
            Some(h) if h.as_bytes() == authority.as_bytes() => Some(h.clone()),
            _ => forward::host(&authority),
        };
        let path = match rewrite {
            Some(rw) => PathAndQuery::try_from(rewrite_path(
                rw,
                route.matched_prefix,
                parts.uri.path(),
                parts.uri.query(),
            ))
            .unwrap_or_else(|_| PathAndQuery::from_static("/")),
            None => forward::path(&parts.uri),
        };
        Head {
            authority,
            host,
            path,
            upgrade,
            client_upgrade,
        }
    }
}

/// The upstream request's head, cloned for each try.
pub(super) struct Outgoing {
    head: Parts,
    /// The HTTP version spoken upstream.
    pub version: Version,
}

impl Outgoing {
    /// The head for `version`, from the shaped client head.
    pub fn new(
        parts: &Parts,
        host: Option<HeaderValue>,
        path: PathAndQuery,
        version: Version,
    ) -> Outgoing {
        let head = forward::head(
            parts.method.clone(),
            host,
            path,
            parts.headers.clone(),
            version,
        );
        Outgoing { head, version }
    }

    /// True when the request may be sent again after the upstream received it
    /// ([`retry::is_idempotent`]).
    pub fn idempotent(&self) -> bool {
        retry::is_idempotent(&self.head.method)
    }

    /// The request of one try.
    pub fn build(&self, body: Body) -> Request<Body> {
        Request::from_parts(self.head.clone(), body)
    }
}
