//! Reading an HTTP/1.1 response as a client (RFC 9112), as strictly as hyper's client: the
//! head parsed by httparse into an `http` response head (header values sharing the read
//! buffer), the body's framing chosen by §6.3's precedence, and a chunked body decoded with
//! CRLF required everywhere. Anything malformed is an error, after which the connection is
//! never reused.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version, response};

/// The longest response head read (hyper's default read-buffer limit).
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// The most header fields in a head or a trailer section (hyper's default).
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// The longest trailer section (hyper's limit).
const MAX_TRAILERS: usize = 16 * 1024;

/// A response the proxy cannot read safely.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The head does not parse.
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    /// The head is longer than [`MAX_HEAD`].
    #[error("response head too large")]
    TooLarge,
    /// A header field httparse passed is not a valid `http` one.
    #[error("invalid response header field")]
    Field,
    /// Both Transfer-Encoding and Content-Length (RFC 9112 §6.3 ¶3: a smuggling attempt).
    #[error("response has both Transfer-Encoding and Content-Length")]
    BothFramings,
    /// Transfer-Encoding in an HTTP/1.0 response.
    #[error("HTTP/1.0 response with Transfer-Encoding")]
    Http10Coding,
    /// Content-Length not a number, or several that differ.
    #[error("invalid Content-Length")]
    ContentLength,
    /// A chunk-size line that is not `hex [ext] CRLF`.
    #[error("invalid chunk size line")]
    ChunkSize,
    /// A chunk's data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// A malformed or oversized trailer section.
    #[error("invalid trailer section")]
    Trailers,
    /// The connection ended inside the message.
    #[error("connection closed before the response completed")]
    Incomplete,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, `Content-Length: 0`).
    Empty,
    /// This many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status, version, headers (and a non-standard reason phrase as hyper keeps it).
    pub parts: response::Parts,
    /// The body's framing.
    pub framing: Framing,
    /// The connection may carry another request after this response: HTTP/1.1 without
    /// `Connection: close`, not a 101, and a body that does not run to the close.
    pub keep_alive: bool,
}

/// Where each header field of a head lies in its bytes: (name, name end, value, value end).
pub type Spans = Vec<(usize, usize, usize, usize)>;

/// Parses the response head at the start of `buf`, skipping informational (1xx) responses
/// as hyper does, for a request with `method`; `None` until a whole head is in. The head's
/// bytes are taken out of `buf`; `spans` is scratch space, kept from one head to the next.
pub fn head(buf: &mut BytesMut, method: &Method, spans: &mut Spans) -> Result<Option<Head>, Error> {
    loop {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let parser = httparse::ParserConfig::default();
        let len = match parser.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Error::TooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(Error::Head(e)),
        };
        if len > MAX_HEAD {
            return Err(Error::TooLarge);
        }
        let code = parsed.code.unwrap_or_default();
        let status =
            StatusCode::from_u16(code).map_err(|_| Error::Head(httparse::Error::Status))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            let _ = buf.split_to(len);
            continue;
        }
        let version = if parsed.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        let reason = parsed
            .reason
            .filter(|r| Some(*r) != status.canonical_reason())
            .map(|r| Bytes::copy_from_slice(r.as_bytes()));
        let base = buf.as_ptr() as usize;
        // Each field as (name, name end, value, value end) in the head's bytes.
        spans.clear();
        spans.extend(parsed.headers.iter().map(|field| {
            let name = field.name.as_ptr() as usize - base;
            let value = field.value.as_ptr() as usize - base;
            (
                name,
                name + field.name.len(),
                value,
                value + field.value.len(),
            )
        }));
        let count = spans.len();
        let bytes = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count);
        let mut keep_alive = version == Version::HTTP_11;
        for &(name, name_end, value, end) in spans.iter() {
            let name = HeaderName::from_bytes(&bytes[name..name_end]).map_err(|_| Error::Field)?;
            let value = HeaderValue::from_maybe_shared(bytes.slice(value..end))
                .map_err(|_| Error::Field)?;
            if name == CONNECTION && has_token(&value, "close") {
                keep_alive = false;
            }
            headers.append(name, value);
        }
        let framing = framing(status, version, method, &headers)?;
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        if let Some(reason) = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok()) {
            parts.extensions.insert(reason);
        }
        return Ok(Some(Head {
            parts,
            framing,
            // After a 101 the connection speaks another protocol (an upgrade the proxy did not
            // ask for on this path): never reused.
            keep_alive: keep_alive
                && framing != Framing::Close
                && status != StatusCode::SWITCHING_PROTOCOLS,
        }));
    }
}

/// The body's framing by RFC 9112 §6.3, stricter than the RFC where it allows a choice: a
/// response with both Transfer-Encoding and Content-Length is refused, not read as chunked.
pub fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Framing, Error> {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == Method::HEAD
    {
        return Ok(Framing::Empty);
    }
    let codings = headers.get_all(http::header::TRANSFER_ENCODING);
    if let Some(last) = codings.iter().next_back() {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(Error::BothFramings);
        }
        if version == Version::HTTP_10 {
            return Err(Error::Http10Coding);
        }
        let chunked = last
            .as_bytes()
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    Ok(match content_length(headers)? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// The Content-Length of `headers`, none when there is none; an error unless every value
/// (and every comma-separated item of one) is the same valid number.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let n = parse_length(item.trim_ascii()).ok_or(Error::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::ContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Decimal digits only (no sign, no spaces), without overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// True when the comma-separated `value` lists `token`.
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// What a chunked body yields next.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes.
    Data(Bytes),
    /// The trailer fields, after the last chunk.
    Trailers(HeaderMap),
    /// The body ended.
    End,
}

/// A chunked body's decoder (RFC 9112 §7.1): `hex-size [; ext] CRLF data CRLF` up to a zero
/// size, then trailer fields and CRLF. Bare LF, a CR alone, a size that overflows, and
/// anything else out of the grammar are errors.
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data: CRLF expected.
    DataEnd,
    /// After the last chunk: the trailer section.
    Trailers,
    /// Done.
    Done,
}

impl Chunked {
    /// True once the whole body was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next item of the body from `buf` (taking its bytes); `None` when more bytes are
    /// needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, Error> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = line(buf, MAX_CHUNK_LINE, Error::ChunkSize)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(Chunk::Data(buf.split_to(n).freeze())));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        // Fail early on a wrong first byte rather than wait for a second.
                        if buf.first().is_some_and(|b| *b != b'\r') {
                            return Err(Error::ChunkEnd);
                        }
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::ChunkEnd);
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buf),
                State::Done => return Ok(Some(Chunk::End)),
            }
        }
    }

    /// The trailer section: empty (CRLF), or fields each ending in CRLF and then CRLF.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, Error> {
        if buf.starts_with(b"\r\n") {
            let _ = buf.split_to(2);
            self.state = State::Done;
            return Ok(Some(Chunk::End));
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if buf.len() > MAX_TRAILERS || has_bare_lf(buf) {
                return Err(Error::Trailers);
            }
            return Ok(None);
        };
        let section = buf.split_to(end + 4);
        if section.len() > MAX_TRAILERS || has_bare_lf(&section) {
            return Err(Error::Trailers);
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = match httparse::parse_headers(&section, &mut fields) {
            Ok(httparse::Status::Complete((len, fields))) if len == section.len() => fields,
            _ => return Err(Error::Trailers),
        };
        let mut trailers = HeaderMap::with_capacity(parsed.len());
        for f in parsed.iter() {
            let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| Error::Trailers)?;
            let value = HeaderValue::from_bytes(f.value).map_err(|_| Error::Trailers)?;
            trailers.append(name, value);
        }
        self.state = State::Done;
        Ok(Some(Chunk::Trailers(trailers)))
    }
}

/// A LF not preceded by CR.
fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// The next CRLF-terminated line of `buf` without its CRLF, taken out of `buf`; `None` until
/// it is all in; `err` for a bare LF, a CR elsewhere, or a line longer than `max`.
fn line(buf: &mut BytesMut, max: usize, err: Error) -> Result<Option<BytesMut>, Error> {
    let Some(lf) = buf.iter().position(|b| *b == b'\n') else {
        if buf.len() > max {
            return Err(err);
        }
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' || lf > max || buf[..lf - 1].contains(&b'\r') {
        return Err(err);
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// The size of a chunk-size line: hex digits, optional spaces or tabs, then optional
/// extensions after `;` (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Error::ChunkSize);
    }
    let mut size: u64 = 0;
    for d in &line[..digits] {
        let v = u64::from(char::from(*d).to_digit(16).unwrap_or_default());
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(v))
            .ok_or(Error::ChunkSize)?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()..];
    match rest.first() {
        None | Some(b';') => Ok(size),
        Some(_) => Err(Error::ChunkSize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<Head>, Error> {
        head(&mut BytesMut::from(raw), &Method::GET, &mut Spans::new())
    }

    fn framed(raw: &str) -> Result<(Framing, bool), Error> {
        parse(raw).map(|h| {
            let h = h.expect("complete head");
            (h.framing, h.keep_alive)
        })
    }

    #[test]
    fn heads_are_framed_by_rfc_9112_precedence() {
        use Framing::*;
        type Case = (&'static str, Result<(Framing, bool), Error>);
        let cases: [Case; 14] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                Ok((Length(2), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Ok((Empty, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n",
                Ok((Length(2), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
                Ok((Length(2), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok((Chunked, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
                Ok((Chunked, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Ok((Close, false)),
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Ok((Close, false))),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                Ok((Empty, true)),
            ),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", Ok((Empty, true))),
            (
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n",
                Ok((Length(1), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                Ok((Length(1), false)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(Error::BothFramings),
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(Error::Http10Coding),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(framed(raw), want, "{raw:?}");
        }
        let head_method = head(
            &mut BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
            &Method::HEAD,
            &mut Spans::new(),
        );
        assert_eq!(head_method.unwrap().unwrap().framing, Empty);
    }

    #[test]
    fn malformed_heads_are_errors() {
        let bad = [
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX\0A: b\r\n\r\n",
        ];
        for raw in bad {
            assert!(parse(raw).is_err(), "{raw:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).is_err());
        let mut huge = BytesMut::from("HTTP/1.1 200 OK\r\nx-big: ");
        huge.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(
            head(&mut huge, &Method::GET, &mut Spans::new()).unwrap_err(),
            Error::TooLarge
        );
    }

    #[test]
    fn informational_heads_are_skipped_and_the_final_one_kept_whole() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
             HTTP/1.1 200 Fine\r\nx-a: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nok",
        );
        assert!(
            head(
                &mut BytesMut::from("HTTP/1.1 200 OK\r\nx-a: 1\r\n"),
                &Method::GET,
                &mut Spans::new()
            )
            .unwrap()
            .is_none()
        );
        let h = head(&mut buf, &Method::GET, &mut Spans::new())
            .unwrap()
            .unwrap();
        assert_eq!(h.parts.status, StatusCode::OK);
        assert_eq!(h.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(
            h.parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| r.as_bytes()),
            Some(&b"Fine"[..])
        );
        assert_eq!(&buf[..], b"ok");
        let switching = parse("HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (switching.framing, switching.keep_alive),
            (Framing::Empty, false)
        );
    }

    /// Decodes `raw` fed in pieces of `step` bytes: the data, the trailers, and whether it
    /// ended.
    fn chunked(raw: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>, bool), Error> {
        let mut d = Chunked::default();
        let (mut data, mut trailers) = (Vec::new(), None);
        let mut buf = BytesMut::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Some(Chunk::Data(b)) => data.extend_from_slice(&b),
                Some(Chunk::Trailers(t)) => trailers = Some(t),
                Some(Chunk::End) => return Ok((data, trailers, buf.is_empty())),
                None if fed == raw.len() => return Err(Error::Incomplete),
                None => {
                    let n = step.min(raw.len() - fed);
                    buf.extend_from_slice(&raw[fed..fed + n]);
                    fed += n;
                }
            }
            if d.is_done() && trailers.is_some() {
                return Ok((data, trailers, buf.is_empty()));
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers_in_any_split() {
        let body = b"5;name=v\r\nhello\r\n6 \t;x\r\n world\r\n000\r\nx-sum: 1\r\nx-b: 2\r\n\r\n";
        for step in [1, 2, 3, 7, body.len()] {
            let (data, trailers, clean) = chunked(body, step).unwrap();
            assert_eq!(data, b"hello world", "step {step}");
            let t = trailers.expect("trailers");
            assert_eq!(
                (t["x-sum"].as_bytes(), t["x-b"].as_bytes()),
                (&b"1"[..], &b"2"[..])
            );
            assert!(clean);
        }
        let (data, trailers, _) = chunked(b"2\r\nok\r\n0\r\n\r\n", 1).unwrap();
        assert_eq!((data.as_slice(), trailers), (&b"ok"[..], None));
        let (data, ..) = chunked(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!(data.len(), 10);
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        let bad: [&[u8]; 14] = [
            b"2\nok\r\n0\r\n\r\n",
            b"2\r\nok\n0\r\n\r\n",
            b"2\r\nokx\r\n0\r\n\r\n",
            b"0x2\r\nok\r\n0\r\n\r\n",
            b"-2\r\nok\r\n0\r\n\r\n",
            b" 2\r\nok\r\n0\r\n\r\n",
            b"\r\nok\r\n0\r\n\r\n",
            b"2 3\r\nok\r\n0\r\n\r\n",
            b"2;a\rb\r\nok\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"2\r\nok\r\n0\r\n\n",
            b"2\r\nok\r\n0\r\nx: 1\n\r\n",
            b"2\r\nok\r\n0\r\nx : 1\r\n\r\n",
            b"2\r\nok\r\n0\r\n x: 1\r\n\r\n",
        ];
        for raw in bad {
            assert!(
                matches!(chunked(raw, 1), Err(e) if e != Error::Incomplete),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let long = [b"1;".as_slice(), &[b'x'; MAX_CHUNK_LINE], b"\r\n"].concat();
        assert_eq!(chunked(&long, 64), Err(Error::ChunkSize));
        let mut trailers = b"0\r\n".to_vec();
        trailers
            .extend(std::iter::repeat_n(b"x-t: v\r\n".as_slice(), MAX_TRAILERS / 8 + 1).flatten());
        assert_eq!(chunked(&trailers, 512), Err(Error::Trailers));
        assert_eq!(chunked(b"2\r\nok\r\n", 1), Err(Error::Incomplete));
    }
}
