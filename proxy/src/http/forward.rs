//! The request and response as they cross the proxy: HTTP version towards
//! the upstream, request target and authority, hop-by-hop headers, upgrades.

use http::header::{HOST, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, StatusCode, Uri};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sluice_api::model::Protocol;
use sluice_api::model::policy::Settings;

use super::pool::Version;
use super::{Body, headers};

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
pub fn authority(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    uri.authority().map(|a| a.as_str().to_string()).or_else(|| {
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    })
}

/// Builds the upstream request.
pub fn request(
    method: Method,
    authority: &str,
    path: &str,
    mut headers: HeaderMap,
    body: Body,
    version: Version,
) -> Request<Body> {
    if let Ok(v) = HeaderValue::from_str(authority) {
        headers.insert(HOST, v);
    }
    let uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    for_version(req, version)
}

/// Shapes a request for the version spoken upstream: HTTP/1.1 wants the
/// origin form and a Host header; HTTP/2 wants the authority in the URI.
pub fn for_version(mut req: Request<Body>, version: Version) -> Request<Body> {
    let authority = authority(req.uri(), req.headers());
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match version {
        Version::Http1 => {
            *req.version_mut() = http::Version::HTTP_11;
            if let Some(a) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
                req.headers_mut().insert(HOST, a);
            }
            *req.uri_mut() = Uri::from(path);
        }
        Version::Http2 => {
            *req.version_mut() = http::Version::HTTP_2;
            req.headers_mut().remove(HOST);
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = authority.and_then(|a| Authority::try_from(a).ok());
            parts.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Turns the upstream's answer into the client's: hop-by-hop headers
/// dropped, and a `101 Switching Protocols` joined into a tunnel between the
/// client's and the upstream's upgraded connections.
pub fn response(
    resp: Response<Body>,
    client: http::Version,
    client_upgrade: Option<OnUpgrade>,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if switching
        && let (Some(client), Some(upstream)) =
            (client_upgrade, parts.extensions.remove::<OnUpgrade>())
    {
        tokio::spawn(tunnel(client, upstream));
    }
    parts.version = client;
    Response::from_parts(parts, body)
}

async fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => return tracing::debug!("upgrade failed: {e}"),
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!("upgraded connection: {e}");
    }
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
        let h1 = request(
            Method::GET,
            "catalog:80",
            "/items?x=1",
            HeaderMap::new(),
            empty(),
            Version::Http1,
        );
        assert_eq!(h1.uri(), "/items?x=1");
        assert_eq!(h1.headers()[HOST], "catalog:80");
        let h2 = request(
            Method::GET,
            "catalog:80",
            "/items?x=1",
            HeaderMap::new(),
            empty(),
            Version::Http2,
        );
        assert_eq!(h2.uri(), "http://catalog:80/items?x=1");
        assert!(!h2.headers().contains_key(HOST));
    }
}
