//! The Host rule of RFC 9112 §3.2 that hyper leaves to its user: an HTTP/1.1 request
//! without a Host header, or any HTTP/1 request with more than one, is answered 400 and goes
//! no further, since the proxy and the upstream could each take a different authority from it.
//! A request in absolute form (`GET http://host/path`) names its authority in its target, so
//! it is taken without a Host header, as Envoy and nginx take it (hyper's own client sends
//! such requests).

use http::header::HOST;
use http::{Request, Version};

/// Why `req` must be refused, if it must.
pub fn refusal<B>(req: &Request<B>) -> Option<&'static str> {
    let version = req.version();
    if version != Version::HTTP_11 && version != Version::HTTP_10 {
        return None;
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 && req.uri().authority().is_none() => {
            Some("an HTTP/1.1 request needs a Host header")
        }
        (Some(_), Some(_)) => Some("more than one Host header"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_per_http1_request() {
        let req = |version, hosts: &[&str]| {
            let mut b = Request::builder().version(version);
            for h in hosts {
                b = b.header(HOST, *h);
            }
            b.body(()).unwrap()
        };
        assert_eq!(refusal(&req(Version::HTTP_11, &["a"])), None);
        assert_eq!(refusal(&req(Version::HTTP_10, &[])), None);
        assert_eq!(refusal(&req(Version::HTTP_2, &[])), None);
        assert!(refusal(&req(Version::HTTP_11, &[])).is_some());
        let absolute = Request::get("http://catalog/plain").body(()).unwrap();
        assert_eq!(refusal(&absolute), None, "the target names the authority");
        assert!(refusal(&req(Version::HTTP_11, &["a", "b"])).is_some());
        assert!(refusal(&req(Version::HTTP_10, &["a", "a"])).is_some());
    }
}
