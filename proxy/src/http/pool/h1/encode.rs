//! Writing an HTTP/1.1 request as a client: the head from an `http` request head into a
//! reused buffer, framed as hyper's client frames it (the request's own valid Content-Length,
//! else the body's known length, else chunked; GET and HEAD bodies of unknown length are not
//! sent), and the body's frames in that framing.

use std::io::Write as _;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    HOST, HeaderMap, HeaderName, MAX_FORWARDS, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING,
};
use http::{Method, request};

use super::decode;

/// What the request body is known to be before it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// Already at its end.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Not known.
    Unknown,
}

/// How the request body is framed on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes are still to come (no more, no less).
    Length(u64),
    /// Chunked; the trailer fields the `Trailer` header announced may follow.
    Chunked(Vec<HeaderName>),
}

/// Writes the head of `parts` into `dst` (cleared first) with the framing of a body that is
/// `known`, and returns that framing.
pub fn head(parts: &request::Parts, known: Known, dst: &mut Vec<u8>) -> Framing {
    dst.clear();
    dst.extend_from_slice(parts.method.as_str().as_bytes());
    dst.push(b' ');
    let uri = &parts.uri;
    if uri.scheme().is_none() && uri.authority().is_none() {
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        dst.extend_from_slice(target.as_bytes());
    } else {
        let _ = write!(dst, "{uri}");
    }
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    // A request's own Content-Length counts when it is valid (hyper's client likewise).
    let declared = decode::content_length(&parts.headers).ok().flatten();
    let framing = match (known, declared) {
        (Known::Empty, _) => Framing::Length(0),
        (_, Some(n)) => Framing::Length(n),
        (Known::Length(n), None) => Framing::Length(n),
        (Known::Unknown, None) if matches!(parts.method, Method::GET | Method::HEAD) => {
            Framing::Length(0)
        }
        (Known::Unknown, None) => Framing::Chunked(announced_trailers(&parts.headers)),
    };
    // The request's own Content-Length stays unless the framing replaces it (as hyper does):
    // chunked, or the body's known length where the header is not a valid one.
    let computed = match (known, declared) {
        (Known::Length(n), None) => Some(n),
        _ => None,
    };
    let chunked = matches!(framing, Framing::Chunked(_));
    for (name, value) in &parts.headers {
        if *name == TRANSFER_ENCODING
            || (*name == CONTENT_LENGTH && (chunked || computed.is_some()))
        {
            continue;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    if let Some(n) = computed {
        let _ = write!(dst, "content-length: {n}\r\n");
    }
    if chunked {
        dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    framing
}

/// The trailer fields a `Trailer` header announces, as hyper's client sends them.
fn announced_trailers(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Appends one chunk (`hex-size CRLF data CRLF`) of `data` to `dst`.
pub fn chunk(data: &Bytes, dst: &mut Vec<u8>) {
    let _ = write!(dst, "{:x}\r\n", data.len());
    dst.extend_from_slice(data);
    dst.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section (the fields of `trailers` that are
/// `announced` and allowed in trailers) to `dst`.
pub fn last_chunk(trailers: Option<&HeaderMap>, announced: &[HeaderName], dst: &mut Vec<u8>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if announced.contains(name) && allowed_in_trailers(name) {
            dst.extend_from_slice(name.as_str().as_bytes());
            dst.extend_from_slice(b": ");
            dst.extend_from_slice(value.as_bytes());
            dst.extend_from_slice(b"\r\n");
        }
    }
    dst.extend_from_slice(b"\r\n");
}

/// Fields never sent as trailers (hyper's list).
fn allowed_in_trailers(name: &HeaderName) -> bool {
    ![
        AUTHORIZATION,
        CACHE_CONTROL,
        CONTENT_ENCODING,
        CONTENT_LENGTH,
        CONTENT_RANGE,
        CONTENT_TYPE,
        HOST,
        MAX_FORWARDS,
        SET_COOKIE,
        TRAILER,
        TRANSFER_ENCODING,
        TE,
    ]
    .contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(method: &str, headers: &[(&str, &str)], known: Known) -> (String, Framing) {
        let mut req = http::Request::builder().method(method).uri("/p?q=1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        let mut dst = b"left over".to_vec();
        let framing = head(&parts, known, &mut dst);
        (String::from_utf8(dst).unwrap(), framing)
    }

    #[test]
    fn heads_are_framed_as_hyper_frames_them() {
        let host = ("host", "a");
        let cases = [
            ("GET", vec![host], Known::Empty, "", Framing::Length(0)),
            ("GET", vec![host], Known::Unknown, "", Framing::Length(0)),
            (
                "POST",
                vec![host, ("content-length", "2")],
                Known::Length(2),
                "content-length: 2\r\n",
                Framing::Length(2),
            ),
            (
                "POST",
                vec![host],
                Known::Length(5),
                "content-length: 5\r\n",
                Framing::Length(5),
            ),
            (
                "POST",
                vec![host, ("content-length", "x")],
                Known::Unknown,
                "transfer-encoding: chunked\r\n",
                Framing::Chunked(vec![]),
            ),
            (
                "PUT",
                vec![host, ("trailer", "x-sum")],
                Known::Unknown,
                "trailer: x-sum\r\ntransfer-encoding: chunked\r\n",
                Framing::Chunked(vec![HeaderName::from_static("x-sum")]),
            ),
        ];
        for (method, headers, known, framing_headers, framing) in cases {
            let (text, got) = encode(method, &headers, known);
            assert_eq!(got, framing, "{method} {headers:?}");
            assert_eq!(
                text,
                format!("{method} /p?q=1 HTTP/1.1\r\nhost: a\r\n{framing_headers}\r\n"),
            );
        }
    }

    #[test]
    fn chunks_and_announced_trailers() {
        let mut dst = Vec::new();
        chunk(&Bytes::from_static(&[b'x'; 26]), &mut dst);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "7".parse().unwrap());
        trailers.insert("x-other", "1".parse().unwrap());
        trailers.insert(CONTENT_LENGTH, "1".parse().unwrap());
        let announced = [HeaderName::from_static("x-sum"), CONTENT_LENGTH];
        last_chunk(Some(&trailers), &announced, &mut dst);
        let want = format!("1a\r\n{}\r\n0\r\nx-sum: 7\r\n\r\n", "x".repeat(26));
        assert_eq!(String::from_utf8(dst).unwrap(), want);
    }
}
