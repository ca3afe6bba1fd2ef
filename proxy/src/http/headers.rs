//! Header handling: hop-by-hop headers stay on their connection, and the
//! VirtualService's header operations apply.

use http::header::{
    CONNECTION, HeaderMap, HeaderName, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use sluice_api::model::routes::HeaderOps;

/// Headers that describe one connection and never travel on.
const HOP_BY_HOP: [&str; 4] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes hop-by-hop headers, keeping `te: trailers` (gRPC needs it) and,
/// when `upgrade` is set, the `connection: upgrade` + `upgrade` pair.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names, and nothing to remove.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !(upgrade && *name == UPGRADE))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(TRANSFER_ENCODING);
    if !upgrade {
        headers.remove(CONNECTION);
        headers.remove(UPGRADE);
    }
    let trailers = headers
        .get(TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !trailers {
        headers.remove(TE);
    }
}

/// True for a header that is hop-by-hop whatever `Connection` lists.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        CONNECTION,
        TRANSFER_ENCODING,
        UPGRADE,
        TE,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || HOP_BY_HOP.contains(&name.as_str())
}

/// True when the request asks to switch to a protocol the proxy tunnels (WebSocket only,
/// see [`super::upgrade`]); any other upgrade is stripped as hop-by-hop.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    super::upgrade::is_allowed(headers)
}

/// Applies remove, set (overwrite) and add (append), in Envoy's order; the names and values
/// were parsed when the config was compiled.
pub fn apply(ops: &HeaderOps, headers: &mut HeaderMap) {
    for name in &ops.remove {
        headers.remove(name);
    }
    for (name, value) in &ops.set {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &ops.add {
        headers.append(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_are_removed_but_grpc_and_upgrades_survive() {
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a [&'a str]);
        let cases: [Case<'_>; 4] = [
            (
                &[
                    ("connection", "keep-alive, x-trace"),
                    ("keep-alive", "5"),
                    ("x-trace", "1"),
                    ("x-app", "a"),
                ],
                false,
                &["x-app"],
            ),
            (
                &[("te", "trailers"), ("content-type", "application/grpc")],
                false,
                &["content-type", "te"],
            ),
            (
                &[("te", "gzip"), ("transfer-encoding", "chunked")],
                false,
                &[],
            ),
            (
                &[("connection", "Upgrade"), ("upgrade", "websocket")],
                true,
                &["connection", "upgrade"],
            ),
        ];
        for (input, upgrade, kept) in cases {
            let mut h = map(input);
            strip_hop_by_hop(&mut h, upgrade);
            let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            names.sort();
            assert_eq!(names, kept, "{input:?}");
        }
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(is_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
        assert!(!is_upgrade(&map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c")
        ])));
    }

    #[test]
    fn operations_remove_then_set_then_add() {
        use http::HeaderValue;

        let name = HeaderName::from_static;
        let ops = HeaderOps {
            set: vec![(name("x-set"), HeaderValue::from_static("new"))],
            add: vec![(name("x-add"), HeaderValue::from_static("two"))],
            remove: vec![name("x-gone")],
        };
        let mut h = map(&[("x-set", "old"), ("x-add", "one"), ("x-gone", "bye")]);
        apply(&ops, &mut h);
        assert_eq!(h.get("x-set").unwrap(), "new");
        assert_eq!(h.get_all("x-add").iter().count(), 2);
        assert!(!h.contains_key("x-gone"));
    }
}
