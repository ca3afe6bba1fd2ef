//! Sticky weighted routing: a user's key (header, cookie or client address) hashed to a
//! fixed bucket, so a weighted route sends each user to the same destination while the
//! weights change; a cookie the request lacks is made up and set on the answer.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use sluice_api::model::release::StickyKey;
use sluice_api::model::weighted::bucket;

/// A user of sticky routing.
#[derive(Debug)]
pub struct StickyUser {
    /// The user's bucket.
    pub bucket: u16,
    /// The `Set-Cookie` for a cookie the proxy made up for this user.
    pub set_cookie: Option<HeaderValue>,
}

/// The user of a request by `key`; `None` when the request lacks the header (such
/// requests are spread by the weights alone) or the client address is unknown.
pub fn user(key: &StickyKey, headers: &HeaderMap, client: Option<IpAddr>) -> Option<StickyUser> {
    let known = |bucket| StickyUser {
        bucket,
        set_cookie: None,
    };
    match key {
        StickyKey::Header(name) => Some(known(bucket(headers.get(name)?.as_bytes()))),
        StickyKey::ClientAddress => Some(known(bucket(client?.to_string().as_bytes()))),
        StickyKey::Cookie(c) => match cookie(headers, &c.name) {
            Some(value) => Some(known(bucket(value.as_bytes()))),
            None => {
                let value = format!("{:032x}", fastrand::u128(..));
                Some(StickyUser {
                    bucket: bucket(value.as_bytes()),
                    set_cookie: HeaderValue::from_str(&c.set_cookie(&value)).ok(),
                })
            }
        },
    }
}

/// The value of cookie `name` (quotes removed), from any `Cookie` header.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_api::model::release::StickyCookie;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    fn cookie_key() -> StickyKey {
        StickyKey::Cookie(StickyCookie {
            name: "gray-user".into(),
            ttl: Duration::from_secs(3600),
            path: "/".into(),
            attributes: vec!["SameSite=Lax".into(), "Secure".into()],
        })
    }

    #[test]
    fn a_header_or_address_names_the_same_user_every_time() {
        let key = StickyKey::Header("x-user-id".into());
        let h = headers(&[("x-user-id", "alice")]);
        let a = user(&key, &h, None).unwrap();
        assert_eq!(a.bucket, bucket(b"alice"));
        assert!(a.set_cookie.is_none());
        assert!(
            user(&key, &HeaderMap::new(), None).is_none(),
            "no header, no user"
        );
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let by_ip = user(&StickyKey::ClientAddress, &HeaderMap::new(), Some(ip)).unwrap();
        assert_eq!(by_ip.bucket, bucket(b"10.0.0.7"));
        assert!(user(&StickyKey::ClientAddress, &HeaderMap::new(), None).is_none());
    }

    #[test]
    fn a_missing_cookie_is_made_up_and_set_then_read_back() {
        let made = user(&cookie_key(), &HeaderMap::new(), None).unwrap();
        let set = made.set_cookie.unwrap();
        let set = set.to_str().unwrap();
        assert!(
            set.ends_with("; Path=/; Max-Age=3600; SameSite=Lax; Secure"),
            "{set}"
        );
        let value = set
            .strip_prefix("gray-user=")
            .and_then(|v| v.split(';').next())
            .unwrap();
        assert_eq!(made.bucket, bucket(value.as_bytes()));
        let sent = format!("theme=dark; gray-user={value}");
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&sent).unwrap());
        let back = user(&cookie_key(), &h, None).unwrap();
        assert_eq!(back.bucket, made.bucket);
        assert!(back.set_cookie.is_none(), "a known user gets no new cookie");
    }
}
