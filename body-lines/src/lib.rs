//! Newline-separated lines out of a streaming HTTP body.

use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Body;

/// Why no line could be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The body failed (the connection broke).
    #[error("the stream broke: {0}")]
    Body(String),
    /// A line grew past the limit without a newline.
    #[error("a line is longer than {0} bytes")]
    TooLong(usize),
}

/// A buffer left empty with more room than this is given up after a line.
const KEEP_CAPACITY: usize = 64 << 10;

/// Reads a body line by line.
#[derive(Debug)]
pub struct Lines<B> {
    body: B,
    buf: BytesMut,
    /// How far `buf` is known to hold no newline (big lines are not scanned again per frame).
    scanned: usize,
    max: usize,
}

impl<B> Lines<B>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    /// Lines of `body`, each at most `max` bytes.
    pub fn new(body: B, max: usize) -> Lines<B> {
        Lines {
            body,
            buf: BytesMut::new(),
            scanned: 0,
            max,
        }
    }

    /// The next non-empty line without its newline; `None` at the end of the body (a last
    /// line without a newline counts).
    pub async fn next(&mut self) -> Option<Result<Bytes, LineError>> {
        loop {
            if let Some(found) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                let at = self.scanned + found;
                self.scanned = 0;
                let line = self.buf.split_to(at + 1).freeze().slice(..at);
                if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
                    // The buffer shares the line's allocation: let the line take it away
                    // rather than hold a big state's worth of memory until the next one.
                    self.buf = BytesMut::new();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                return Some(Err(LineError::TooLong(self.max)));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(e)) => return Some(Err(LineError::Body(e.to_string()))),
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return None,
                None => {
                    self.scanned = 0;
                    return Some(Ok(self.buf.split().freeze()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_across_frames() {
        let chunks: Vec<Result<_, std::convert::Infallible>> =
            ["{\"a\":", "1}\n\n{\"b\"", ":2}\n{\"c\":3}"]
                .into_iter()
                .map(|c| Ok(hyper::body::Frame::data(Bytes::from(c))))
                .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut lines = Lines::new(body, 64);
        let mut got = Vec::new();
        while let Some(line) = lines.next().await {
            got.push(String::from_utf8(line.unwrap().to_vec()).unwrap());
        }
        assert_eq!(got, [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
    }

    #[tokio::test]
    async fn a_line_past_the_limit_is_an_error() {
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 100]));
        let mut lines = Lines::new(body, 64);
        let err = lines.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("64 bytes"), "{err}");
    }
}
