//! Newline-separated lines out of a streaming HTTP body.

use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Body;

/// A proxy's lines are a hello, acks and nacks: a MiB is plenty.
const MAX_LINE: usize = 1 << 20;

/// Why no line could be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The body failed (the connection broke).
    #[error("the stream broke: {0}")]
    Body(String),
    /// A line grew past the limit without a newline.
    #[error("a line is longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Reads a body line by line.
#[derive(Debug)]
pub struct Lines<B> {
    body: B,
    buf: BytesMut,
}

impl<B> Lines<B>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    /// Lines of `body`.
    pub fn new(body: B) -> Lines<B> {
        Lines {
            body,
            buf: BytesMut::new(),
        }
    }

    /// The next non-empty line without its newline; `None` at the end of the body (a last
    /// line without a newline counts).
    pub async fn next(&mut self) -> Option<Result<Bytes, LineError>> {
        loop {
            if let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(at + 1).freeze().slice(..at);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(line));
            }
            if self.buf.len() > MAX_LINE {
                return Some(Err(LineError::TooLong));
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
                None => return Some(Ok(self.buf.split().freeze())),
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
        let mut lines = Lines::new(body);
        let mut got = Vec::new();
        while let Some(line) = lines.next().await {
            got.push(String::from_utf8(line.unwrap().to_vec()).unwrap());
        }
        assert_eq!(got, [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
    }
}
