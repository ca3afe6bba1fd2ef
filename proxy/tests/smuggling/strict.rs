//! A strict HTTP/1.1 framing checker for what crosses the proxy, independent of the proxy and
//! of hyper: requests as an upstream receives them and responses as a client receives them.
//! It accepts only unambiguous messages (RFC 9112 without any of its leniencies: CRLF only,
//! no obs-fold, no whitespace before a colon, no control characters in values, one
//! Content-Length of plain digits or a Transfer-Encoding ending in a single `chunked`, never
//! both, one Host matching an absolute-form target), so a message it accepts means the same to
//! every parser, and a sequence it splits into messages can't be split any other way.

#![allow(dead_code)]

/// A request as the checker parsed it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// The `y` of `HTTP/1.y`.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// A response as the checker parsed it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Parses the request at the start of `buf`: `Ok(None)` while it is incomplete (everything
/// so far being valid), `Ok(Some((request, length)))` once complete, `Err` at the first
/// violation.
pub fn request(buf: &[u8]) -> Result<Option<(Request, usize)>, String> {
    let Some(head_len) = head(buf)? else {
        return Ok(None);
    };
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        Ok(_) => return Err("head: httparse disagrees on its end".into()),
        Err(e) => return Err(format!("head: {e}")),
    }
    let (method, target, minor) = (
        req.method.unwrap_or_default().to_owned(),
        req.path.unwrap_or_default().to_owned(),
        req.version.unwrap_or_default(),
    );
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("request target {target:?}"));
    }
    let headers = fields_of(req.headers)?;
    let hosts: Vec<&[u8]> = values(&headers, "host").collect();
    if (minor == 1 && hosts.len() != 1) || hosts.len() > 1 {
        return Err(format!("{} Host headers", hosts.len()));
    }
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = hosts.first().copied().unwrap_or_default();
        if !authority.as_bytes().eq_ignore_ascii_case(host) {
            return Err(format!(
                "absolute-form authority {authority:?} but Host {:?}",
                String::from_utf8_lossy(host)
            ));
        }
    }
    let framing = framing(&headers, minor, false)?;
    let at = head_len;
    let Some((body, end)) = body(buf, at, framing)? else {
        return Ok(None);
    };
    Ok(Some((
        Request {
            method,
            target,
            minor,
            headers,
            body,
        },
        end,
    )))
}

/// Splits `buf`, what a client received for requests of HTTP/1.`minor` (`eof`: the
/// connection was closed after it), into responses: informational ones are skipped, a
/// close-delimited body must be the last thing on the connection. Returns the final
/// responses and whether an incomplete one trails them.
pub fn responses(buf: &[u8], minor: u8, eof: bool) -> Result<(Vec<Response>, bool), String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let Some(head_len) = head(rest)? else {
            return Ok((out, true));
        };
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut fields);
        match resp.parse(&rest[..head_len]) {
            Ok(httparse::Status::Complete(n)) if n == head_len => {}
            Ok(_) => return Err("response head: httparse disagrees on its end".into()),
            Err(e) => return Err(format!("response head: {e}")),
        }
        let status = resp.code.unwrap_or_default();
        let headers = fields_of(resp.headers)?;
        if (100..200).contains(&status) {
            if minor == 0 {
                return Err(format!("{status} sent to an HTTP/1.0 client"));
            }
            at += head_len;
            continue;
        }
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            framing(&headers, minor, true)?
        };
        if minor == 0 && framing == Framing::Chunked {
            return Err("chunked response to an HTTP/1.0 client".into());
        }
        let (body, end) = match framing {
            Framing::Close if eof => (rest[head_len..].to_vec(), rest.len()),
            Framing::Close => return Ok((out, true)),
            framing => match body(rest, head_len, framing)? {
                Some(found) => found,
                None => return Ok((out, true)),
            },
        };
        out.push(Response {
            status,
            headers,
            body,
        });
        at += end;
    }
    Ok((out, false))
}

/// How a message's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// At the end of the connection (responses only).
    Close,
}

/// The length of the head at the start of `buf` (through its empty line), `None` while it is
/// incomplete; `Err` on a bare CR or LF, a leading empty line or an obs-fold.
fn head(buf: &[u8]) -> Result<Option<usize>, String> {
    if buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
        return Err("empty line before the start line".into());
    }
    for (i, b) in buf.iter().enumerate() {
        match b {
            b'\n' if i == 0 || buf[i - 1] != b'\r' => return Err(format!("bare LF at {i}")),
            b'\r' if buf.get(i + 1).is_some_and(|n| *n != b'\n') => {
                return Err(format!("bare CR at {i}"));
            }
            b'\n' => {
                if buf[i + 1..].starts_with(b"\r\n") {
                    return Ok(Some(i + 3));
                }
                if buf.get(i + 1).is_some_and(|n| *n == b' ' || *n == b'\t') {
                    return Err(format!("obs-fold at {}", i + 1));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The fields as names (lower case) and values, each checked.
fn fields_of(fields: &[httparse::Header<'_>]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        if f.name.is_empty() || !f.name.bytes().all(is_tchar) {
            return Err(format!("field name {:?}", f.name));
        }
        if let Some(b) = f
            .value
            .iter()
            .find(|b| (**b < b' ' && **b != b'\t') || **b == 0x7f)
        {
            return Err(format!("control byte {b:#04x} in {}", f.name));
        }
        out.push((f.name.to_ascii_lowercase(), f.value.to_vec()));
    }
    Ok(out)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The values of the field `name` (lower case).
fn values<'a>(headers: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The body framing the headers give, strictly.
fn framing(headers: &[(String, Vec<u8>)], minor: u8, response: bool) -> Result<Framing, String> {
    let lengths: Vec<&[u8]> = values(headers, "content-length").collect();
    let codings: Vec<String> = values(headers, "transfer-encoding")
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|c| String::from_utf8_lossy(c.trim_ascii()).to_ascii_lowercase())
        .collect();
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err("both Content-Length and Transfer-Encoding".into());
        }
        if minor == 0 {
            return Err("Transfer-Encoding in HTTP/1.0".into());
        }
        let chunked = codings.iter().filter(|c| *c == "chunked").count();
        return match (codings.last().map(String::as_str), chunked) {
            (Some("chunked"), 1) => Ok(Framing::Chunked),
            _ if response && chunked == 0 => Ok(Framing::Close),
            _ => Err(format!("Transfer-Encoding {codings:?}")),
        };
    }
    match lengths.as_slice() {
        [] if response => Ok(Framing::Close),
        [] => Ok(Framing::Length(0)),
        [one] if (1..=18).contains(&one.len()) && one.iter().all(u8::is_ascii_digit) => {
            let digits = std::str::from_utf8(one).map_err(|e| e.to_string())?;
            digits
                .parse()
                .map(Framing::Length)
                .map_err(|e| e.to_string())
        }
        [_] => Err(format!(
            "Content-Length {:?}",
            String::from_utf8_lossy(lengths[0])
        )),
        _ => Err(format!("{} Content-Length headers", lengths.len())),
    }
}

/// The body starting at `at`: its decoded bytes and where the message ends, `None` while
/// incomplete.
fn body(buf: &[u8], at: usize, framing: Framing) -> Result<Option<(Vec<u8>, usize)>, String> {
    match framing {
        Framing::Length(n) => {
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| at.checked_add(n))
                .ok_or("Content-Length beyond memory")?;
            Ok((buf.len() >= end).then(|| (buf[at..end].to_vec(), end)))
        }
        Framing::Chunked => chunked(buf, at),
        Framing::Close => Ok(Some((buf[at..].to_vec(), buf.len()))),
    }
}

/// A chunked body: sizes of 1 to 16 hex digits, extensions without control bytes, CRLF after
/// every line and every chunk, trailer fields like header fields.
fn chunked(buf: &[u8], mut at: usize) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut data = Vec::new();
    loop {
        let Some(size_line) = line(buf, at)? else {
            return Ok(None);
        };
        let (size, ext) = match size_line.iter().position(|b| *b == b';') {
            Some(i) => (&size_line[..i], &size_line[i..]),
            None => (size_line, &[][..]),
        };
        if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("chunk size {:?}", String::from_utf8_lossy(size)));
        }
        if let Some(b) = ext
            .iter()
            .find(|b| (**b < b' ' && **b != b'\t') || **b == 0x7f)
        {
            return Err(format!("control byte {b:#04x} in a chunk extension"));
        }
        let hex = std::str::from_utf8(size).map_err(|e| e.to_string())?;
        let size = u64::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
        at += size_line.len() + 2;
        if size == 0 {
            loop {
                let Some(field) = line(buf, at)? else {
                    return Ok(None);
                };
                at += field.len() + 2;
                if field.is_empty() {
                    return Ok(Some((data, at)));
                }
                let colon = field.iter().position(|b| *b == b':');
                let name = &field[..colon.unwrap_or(field.len())];
                if colon.is_none() || name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
                    return Err(format!("trailer line {:?}", String::from_utf8_lossy(field)));
                }
            }
        }
        let end = usize::try_from(size)
            .ok()
            .and_then(|n| at.checked_add(n))
            .ok_or("chunk beyond memory")?;
        if buf.len() < end + 2 {
            if buf.len() > end && buf[end] != b'\r' {
                return Err("chunk data longer than its size".into());
            }
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        data.extend_from_slice(&buf[at..end]);
        at = end + 2;
    }
}

/// The line starting at `at`, without its CRLF; `None` while incomplete.
fn line(buf: &[u8], at: usize) -> Result<Option<&[u8]>, String> {
    let rest = &buf[at.min(buf.len())..];
    for (i, b) in rest.iter().enumerate() {
        match b {
            b'\r' if rest.get(i + 1) == Some(&b'\n') => return Ok(Some(&rest[..i])),
            b'\r' if i + 1 == rest.len() => return Ok(None),
            b'\r' | b'\n' => return Err(format!("bare CR or LF in a chunked body at {}", at + i)),
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_accepts_clean_messages_and_refuses_ambiguous_ones() {
        let ok: [&[u8]; 4] = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhi\r\n0\r\nT: 1\r\n\r\n",
            b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for m in ok {
            let (_, n) = request(m).unwrap().unwrap();
            assert_eq!(n, m.len());
        }
        let bad: [&[u8]; 9] = [
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nhi\r\n0\r\n\r\n",
            b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for m in bad {
            assert!(request(m).is_err(), "{}", String::from_utf8_lossy(m));
        }
        assert!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhi")
                .unwrap()
                .is_none()
        );
        let (resps, partial) = responses(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\nrest",
            1,
            true,
        )
        .unwrap();
        assert_eq!((resps.len(), partial), (2, false));
        assert_eq!(resps[1].body, b"rest");
    }
}
