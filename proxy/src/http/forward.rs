//! The request and response as they cross the proxy: HTTP version towards
//! the upstream, request target and authority, hop-by-hop headers, upgrades.

use http::header::{CONTENT_LENGTH, HOST, HeaderValue, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, StatusCode, Uri};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response};
use sluice_api::model::Protocol;
use sluice_api::model::policy::Settings;

use super::pool::Version;
use super::upgrade::ClientUpgrade;
use super::{Body, headers, respond};

/// The HTTP version to speak upstream: as the client spoke when the
/// DestinationRule says `useClientProtocol`, else as the port declares it,
/// else HTTP/2 when it says `h2UpgradePolicy: UPGRADE`, else as the client
/// spoke; upgrades (WebSocket) always go over HTTP/1.1.
pub fn version(
    protocol: Protocol,
    client: http::Version,
    upgrade: bool,
    settings: &Settings,
) -> Version {
    let as_client = if client == http::Version::HTTP_2 {
        Version::Http2
    } else {
        Version::Http1
    };
    match protocol {
        _ if upgrade => Version::Http1,
        _ if settings.use_client_protocol() => as_client,
        Protocol::Http2 | Protocol::Grpc => Version::Http2,
        _ if settings.h2_upgrade() => Version::Http2,
        Protocol::Http => Version::Http1,
        _ => as_client,
    }
}

/// The authority a request names: its URI's (HTTP/2, absolute form) or its Host header.
pub fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(Authority::as_str)
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
}

/// The head of an upstream request, built once and cloned for each try:
/// HTTP/1.1 gets the origin form and `host` as its Host header; HTTP/2 the
/// authority in the URI and no Host header.
pub fn head(
    method: Method,
    host: Option<HeaderValue>,
    path: PathAndQuery,
    headers: HeaderMap,
    version: Version,
) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = method;
    head.headers = headers;
    match version {
        Version::Http1 => {
            head.version = http::Version::HTTP_11;
            if let Some(host) = host {
                head.headers.insert(HOST, host);
            }
            head.uri = Uri::from(path);
        }
        Version::Http2 => {
            head.version = http::Version::HTTP_2;
            head.headers.remove(HOST);
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = host.and_then(|h| Authority::try_from(h.as_bytes()).ok());
            parts.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(parts) {
                head.uri = uri;
            }
        }
    }
    head
}

/// A Host header value for `authority`, when it is a valid one.
pub fn host(authority: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(authority).ok()
}

/// The request's path and query, `/` when it has none.
pub fn path(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// Shapes a request for the version spoken upstream, as [`head`] does.
pub fn for_version(req: Request<Body>, version: Version) -> Request<Body> {
    let (parts, body) = req.into_parts();
    let host = authority(&parts.uri, &parts.headers).and_then(host);
    let path = path(&parts.uri);
    let mut shaped = head(parts.method, host, path, parts.headers, version);
    shaped.extensions = parts.extensions;
    Request::from_parts(shaped, body)
}

/// Turns the upstream's answer into the client's: hop-by-hop headers
/// dropped, and a `101 Switching Protocols` joined into a tunnel between the
/// client's and the upstream's upgraded connections. A `101` the client did not ask for (or
/// asked for a protocol the proxy does not tunnel) becomes a 502; one beyond the connection
/// limit a 503.
pub fn response(
    resp: Response<Body>,
    client: http::Version,
    client_upgrade: Option<ClientUpgrade>,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    // Transfer-Encoding overrides Content-Length, and a proxy must drop the latter (RFC 9112
    // §6.3): kept, it would frame the decoded body wrongly once the coding is stripped.
    if parts.headers.contains_key(TRANSFER_ENCODING) {
        parts.headers.remove(CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if switching {
        let tunnelled = match (client_upgrade, parts.extensions.remove::<OnUpgrade>()) {
            (Some(client), Some(upstream)) => client.tunnel(upstream),
            _ => {
                return respond::text(502, "sluice: upstream switched protocols unasked\n");
            }
        };
        if !tunnelled {
            return respond::text(503, "sluice: connection limit reached\n");
        }
    }
    // hyper answers an HTTP/1.0 client in HTTP/1.0 whatever the head says, and keeps its
    // connection open (`Connection: keep-alive`) when it asked, unless the head says 1.0.
    parts.version = if client == http::Version::HTTP_10 {
        http::Version::HTTP_11
    } else {
        client
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::empty;

    #[test]
    fn version_follows_the_policy_then_the_port_then_the_client() {
        use sluice_api::istio::destination_rule::{
            ConnectionPoolSettings, H2UpgradePolicy, HttpSettings,
        };
        let policy = |upgrade: bool, client_protocol: bool| Settings {
            connection_pool: Some(ConnectionPoolSettings {
                http: Some(HttpSettings {
                    h2_upgrade_policy: upgrade.then_some(H2UpgradePolicy::Upgrade),
                    use_client_protocol: Some(client_protocol),
                    ..HttpSettings::default()
                }),
                ..ConnectionPoolSettings::default()
            }),
            ..Settings::default()
        };
        let none = Settings::default();
        let (h1, h2) = (http::Version::HTTP_11, http::Version::HTTP_2);
        let cases = [
            (Protocol::Grpc, h1, false, &none, Version::Http2),
            (Protocol::Http, h2, false, &none, Version::Http1),
            (Protocol::Detect, h2, false, &none, Version::Http2),
            (Protocol::Detect, h1, false, &none, Version::Http1),
            (Protocol::Http2, h1, true, &none, Version::Http1),
            (
                Protocol::Http,
                h1,
                false,
                &policy(true, false),
                Version::Http2,
            ),
            (
                Protocol::Detect,
                h1,
                false,
                &policy(true, false),
                Version::Http2,
            ),
            (
                Protocol::Http,
                h1,
                true,
                &policy(true, false),
                Version::Http1,
            ),
            (
                Protocol::Http,
                h2,
                false,
                &policy(false, true),
                Version::Http2,
            ),
            (
                Protocol::Grpc,
                h1,
                false,
                &policy(true, true),
                Version::Http1,
            ),
        ];
        for (protocol, client, upgrade, settings, expected) in cases {
            assert_eq!(
                version(protocol, client, upgrade, settings),
                expected,
                "{protocol:?} {client:?} {upgrade} {settings:?}"
            );
        }
    }

    #[test]
    fn http1_gets_origin_form_and_host_http2_gets_the_authority_in_the_uri() {
        let shape = |version| {
            head(
                Method::GET,
                host("catalog:80"),
                PathAndQuery::from_static("/items?x=1"),
                HeaderMap::new(),
                version,
            )
        };
        let h1 = shape(Version::Http1);
        assert_eq!(h1.uri, "/items?x=1");
        assert_eq!(h1.headers[HOST], "catalog:80");
        let h2 = shape(Version::Http2);
        assert_eq!(h2.uri, "http://catalog:80/items?x=1");
        assert!(!h2.headers.contains_key(HOST));
        let again = for_version(Request::from_parts(h2, empty()), Version::Http1);
        assert_eq!(again.uri(), "/items?x=1");
        assert_eq!(again.headers()[HOST], "catalog:80");
    }
}
