//! The request headers an edge proxy sets: the client address appended to
//! `x-forwarded-for`, `x-forwarded-proto`, `x-envoy-external-address`, and a request id.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};

const XFF: &str = "x-forwarded-for";
const XFP: &str = "x-forwarded-proto";
const EXTERNAL: &str = "x-envoy-external-address";
const REQUEST_ID: &str = "x-request-id";

/// Sets the edge headers of a request from `peer` arriving over `scheme`; returns the client
/// address: the peer, or with `trusted` proxies in front, the address that many hops from the
/// right of the `x-forwarded-for` the request came with (as Envoy's `xff_num_trusted_hops`).
pub fn prepare(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    scheme: &'static str,
    trusted: u32,
) -> SocketAddr {
    let sent: Vec<String> = headers
        .get_all(XFF)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let client = match trusted {
        0 => peer.ip(),
        n => sent
            .iter()
            .rev()
            .nth(n as usize - 1)
            .and_then(|a| a.parse::<IpAddr>().ok())
            .unwrap_or(peer.ip()),
    };
    let peer_ip = peer.ip().to_canonical();
    let xff = if sent.is_empty() {
        peer_ip.to_string()
    } else {
        format!("{}, {peer_ip}", sent.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(XFF, v);
    }
    // A trusted proxy in front already said how the client connected.
    if trusted == 0 || !headers.contains_key(XFP) {
        headers.insert(XFP, HeaderValue::from_static(scheme));
    }
    let client = client.to_canonical();
    if let Ok(v) = HeaderValue::from_str(&client.to_string()) {
        headers.insert(EXTERNAL, v);
    }
    if headers.get(REQUEST_ID).is_none_or(|v| v.is_empty())
        && let Ok(v) = HeaderValue::from_str(&request_id())
    {
        headers.insert(REQUEST_ID, v);
    }
    SocketAddr::new(client, 0)
}

/// A random (version 4) UUID, as Envoy generates request ids.
fn request_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "203.0.113.7:40000".parse().unwrap()
    }

    #[test]
    fn the_peer_is_appended_and_ids_are_made_or_kept() {
        let mut h = HeaderMap::new();
        let client = prepare(&mut h, peer(), "http", 0);
        assert_eq!(client.ip().to_string(), "203.0.113.7");
        assert_eq!(h[XFF], "203.0.113.7");
        assert_eq!(h[XFP], "http");
        let id = h[REQUEST_ID].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");

        let mut h = HeaderMap::new();
        h.insert(XFF, HeaderValue::from_static("198.51.100.1"));
        h.insert(XFP, HeaderValue::from_static("https"));
        h.insert(REQUEST_ID, HeaderValue::from_static("given"));
        let client = prepare(&mut h, peer(), "http", 0);
        assert_eq!(h[XFF], "198.51.100.1, 203.0.113.7");
        assert_eq!(
            h[XFP], "http",
            "an untrusted client cannot choose the scheme"
        );
        assert_eq!(h[REQUEST_ID], "given");
        assert_eq!(
            client.ip().to_string(),
            "203.0.113.7",
            "the header is not trusted"
        );
    }

    #[test]
    fn trusted_hops_choose_the_client_from_the_right() {
        let mut h = HeaderMap::new();
        h.append(XFF, HeaderValue::from_static("1.1.1.1, 10.0.0.1"));
        h.append(XFF, HeaderValue::from_static("10.0.0.2"));
        h.insert(XFP, HeaderValue::from_static("https"));
        let client = prepare(&mut h, peer(), "http", 1);
        assert_eq!(client.ip().to_string(), "10.0.0.2");
        assert_eq!(h[XFF], "1.1.1.1, 10.0.0.1, 10.0.0.2, 203.0.113.7");
        assert_eq!(h[XFP], "https", "a trusted proxy's scheme stays");
        assert_eq!(h[EXTERNAL], "10.0.0.2");
        let mut h = HeaderMap::new();
        h.insert(XFF, HeaderValue::from_static("1.1.1.1, 10.0.0.1"));
        assert_eq!(
            prepare(&mut h, peer(), "http", 2).ip().to_string(),
            "1.1.1.1"
        );
        let mut h = HeaderMap::new();
        h.insert(XFF, HeaderValue::from_static("1.1.1.1"));
        assert_eq!(
            prepare(&mut h, peer(), "http", 3).ip(),
            peer().ip(),
            "too few hops: the peer"
        );
    }
}
