//! The request headers an edge proxy sets: the client address appended to
//! `x-forwarded-for`, `x-forwarded-proto`, `x-envoy-external-address`, and a request id.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue};

// Names made once: a `&str` name is parsed, and a custom one allocated, on every use.
static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
static EXTERNAL: HeaderName = HeaderName::from_static("x-envoy-external-address");
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        .get_all(&XFF)
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
    let peer_value = address(peer_ip);
    let xff = if sent.is_empty() {
        peer_value.clone()
    } else {
        HeaderValue::from_str(&format!("{}, {peer_ip}", sent.join(", "))).ok()
    };
    if let Some(v) = xff {
        headers.insert(XFF.clone(), v);
    }
    // A trusted proxy in front already said how the client connected.
    if trusted == 0 || !headers.contains_key(&XFP) {
        headers.insert(XFP.clone(), HeaderValue::from_static(scheme));
    }
    let client = client.to_canonical();
    let external = if client == peer_ip {
        peer_value
    } else {
        address(client)
    };
    if let Some(v) = external {
        headers.insert(EXTERNAL.clone(), v);
    }
    if headers.get(&REQUEST_ID).is_none_or(|v| v.is_empty()) {
        headers.insert(REQUEST_ID.clone(), request_id());
    }
    SocketAddr::new(client, 0)
}

/// `ip` as a header value (an IPv4 address written digit by digit: `Display` is slow).
fn address(ip: IpAddr) -> Option<HeaderValue> {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).ok();
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            text[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len]).ok()
}

/// A random (version 4) UUID, as Envoy generates request ids.
fn request_id() -> HeaderValue {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    let mut text = [0u8; 36];
    let _ = write!(
        &mut text[..],
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    );
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
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
        assert_eq!(h[&XFF], "203.0.113.7");
        assert_eq!(h[&XFP], "http");
        let id = h[&REQUEST_ID].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");

        let mut h = HeaderMap::new();
        h.insert(XFF.clone(), HeaderValue::from_static("198.51.100.1"));
        h.insert(XFP.clone(), HeaderValue::from_static("https"));
        h.insert(REQUEST_ID.clone(), HeaderValue::from_static("given"));
        let client = prepare(&mut h, peer(), "http", 0);
        assert_eq!(h[&XFF], "198.51.100.1, 203.0.113.7");
        assert_eq!(
            h[&XFP], "http",
            "an untrusted client cannot choose the scheme"
        );
        assert_eq!(h[&REQUEST_ID], "given");
        assert_eq!(
            client.ip().to_string(),
            "203.0.113.7",
            "the header is not trusted"
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "100.200.255.9",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address(ip).unwrap(), ip.to_string().as_str());
        }
    }

    #[test]
    fn trusted_hops_choose_the_client_from_the_right() {
        let mut h = HeaderMap::new();
        h.append(XFF.clone(), HeaderValue::from_static("1.1.1.1, 10.0.0.1"));
        h.append(XFF.clone(), HeaderValue::from_static("10.0.0.2"));
        h.insert(XFP.clone(), HeaderValue::from_static("https"));
        let client = prepare(&mut h, peer(), "http", 1);
        assert_eq!(client.ip().to_string(), "10.0.0.2");
        assert_eq!(h[&XFF], "1.1.1.1, 10.0.0.1, 10.0.0.2, 203.0.113.7");
        assert_eq!(h[&XFP], "https", "a trusted proxy's scheme stays");
        assert_eq!(h[&EXTERNAL], "10.0.0.2");
        let mut h = HeaderMap::new();
        h.insert(XFF.clone(), HeaderValue::from_static("1.1.1.1, 10.0.0.1"));
        assert_eq!(
            prepare(&mut h, peer(), "http", 2).ip().to_string(),
            "1.1.1.1"
        );
        let mut h = HeaderMap::new();
        h.insert(XFF.clone(), HeaderValue::from_static("1.1.1.1"));
        assert_eq!(
            prepare(&mut h, peer(), "http", 3).ip(),
            peer().ip(),
            "too few hops: the peer"
        );
    }
}
