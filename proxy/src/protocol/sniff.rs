//! Classifies a connection by the first bytes its client sent.

/// What the first bytes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 connection preface (prior knowledge, h2c).
    Http2,
    /// A TLS ClientHello, with the server name it asks for.
    Tls {
        /// The SNI host name, lowercase.
        sni: Option<String>,
    },
    /// Something else: opaque TCP.
    Opaque,
    /// Too few bytes to tell yet.
    NeedMore,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];
/// Largest TLS record a ClientHello may come in (2^14 plus the header).
const MAX_TLS_RECORD: usize = 16384 + 5;

/// Classifies the bytes a client sent first.
pub fn sniff(buf: &[u8]) -> Sniff {
    if buf.is_empty() {
        return Sniff::NeedMore;
    }
    if buf[0] == 0x16 {
        return tls(buf);
    }
    if buf.len() >= H2_PREFACE.len() && buf.starts_with(H2_PREFACE) {
        return Sniff::Http2;
    }
    if H2_PREFACE.starts_with(buf) {
        return Sniff::NeedMore;
    }
    http1(buf)
}

fn http1(buf: &[u8]) -> Sniff {
    for method in METHODS {
        if buf.len() > method.len() && buf.starts_with(method) && buf[method.len()] == b' ' {
            return Sniff::Http1;
        }
        if buf.len() <= method.len() && method.starts_with(buf) {
            return Sniff::NeedMore;
        }
    }
    Sniff::Opaque
}

fn tls(buf: &[u8]) -> Sniff {
    if buf.len() < 6 {
        // Record header: type 0x16, version 3.x, length; then handshake type 1.
        let plausible = buf.get(1).is_none_or(|v| *v == 3) && buf.get(5).is_none_or(|t| *t == 1);
        return if plausible {
            Sniff::NeedMore
        } else {
            Sniff::Opaque
        };
    }
    if buf[1] != 3 || buf[5] != 1 {
        return Sniff::Opaque;
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]])) + 5;
    if len > MAX_TLS_RECORD {
        return Sniff::Opaque;
    }
    if buf.len() < len {
        return Sniff::NeedMore;
    }
    Sniff::Tls {
        sni: server_name(&buf[5..len]),
    }
}

/// The SNI of a ClientHello handshake message, if it names one.
fn server_name(hello: &[u8]) -> Option<String> {
    let mut r = Reader(hello);
    r.skip(4)?; // handshake type and length
    r.skip(2 + 32)?; // version, random
    let session = r.u8()?;
    r.skip(session.into())?;
    let suites = r.u16()?;
    r.skip(suites.into())?;
    let compression = r.u8()?;
    r.skip(compression.into())?;
    let mut extensions = Reader(r.prefixed()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.prefixed()?;
        if kind == 0 {
            let mut list = Reader(data);
            let mut names = Reader(list.prefixed()?);
            while !names.0.is_empty() {
                let name_type = names.u8()?;
                let name = names.prefixed()?;
                if name_type == 0 {
                    return std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                }
            }
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a two-byte length prefix.
    fn prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n.into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ClientHello record naming `sni`.
    pub(crate) fn client_hello(sni: &str) -> Vec<u8> {
        let name = sni.as_bytes();
        let mut sni_ext = Vec::new();
        sni_ext.extend(u16::try_from(name.len() + 3).unwrap().to_be_bytes());
        sni_ext.push(0);
        sni_ext.extend(u16::try_from(name.len()).unwrap().to_be_bytes());
        sni_ext.extend(name);
        let mut extensions = vec![0, 0];
        extensions.extend(u16::try_from(sni_ext.len()).unwrap().to_be_bytes());
        extensions.extend(sni_ext);
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend(u16::try_from(extensions.len()).unwrap().to_be_bytes());
        body.extend(extensions);
        let mut handshake = vec![1, 0];
        handshake.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        handshake.extend(body);
        let mut record = vec![0x16, 3, 1];
        record.extend(u16::try_from(handshake.len()).unwrap().to_be_bytes());
        record.extend(handshake);
        record
    }

    #[test]
    fn table() {
        let hello = client_hello("API.Example.com");
        let cases: Vec<(&str, Vec<u8>, Sniff)> = vec![
            ("empty", vec![], Sniff::NeedMore),
            ("GET line", b"GET / HTTP/1.1\r\n".to_vec(), Sniff::Http1),
            (
                "POST",
                b"POST /x HTTP/1.1\r\nHost: a\r\n".to_vec(),
                Sniff::Http1,
            ),
            ("partial method", b"DEL".to_vec(), Sniff::NeedMore),
            ("method without space yet", b"GET".to_vec(), Sniff::NeedMore),
            ("unknown word", b"HELLO world\r\n".to_vec(), Sniff::Opaque),
            (
                "lowercase method",
                b"get / HTTP/1.1\r\n".to_vec(),
                Sniff::Opaque,
            ),
            ("SMTP-like client", b"EHLO mx\r\n".to_vec(), Sniff::Opaque),
            ("h2 preface", H2_PREFACE.to_vec(), Sniff::Http2),
            ("partial preface", b"PRI * HTTP/2".to_vec(), Sniff::NeedMore),
            ("P is ambiguous", b"P".to_vec(), Sniff::NeedMore),
            (
                "tls hello",
                hello.clone(),
                Sniff::Tls {
                    sni: Some("api.example.com".into()),
                },
            ),
            ("partial tls", hello[..20].to_vec(), Sniff::NeedMore),
            ("tls header only", hello[..3].to_vec(), Sniff::NeedMore),
            ("0x16 but not tls", vec![0x16, 9, 9], Sniff::Opaque),
            ("binary", vec![0, 1, 2, 3], Sniff::Opaque),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(sniff(&bytes), expected, "{name}");
        }
    }

    #[test]
    fn garbage_after_a_tls_header_has_no_sni() {
        let mut record = vec![0x16, 3, 1, 0, 4, 1, 0, 0, 0];
        assert_eq!(sniff(&record), Sniff::Tls { sni: None });
        record.truncate(7);
        assert_eq!(sniff(&record), Sniff::NeedMore);
    }
}
