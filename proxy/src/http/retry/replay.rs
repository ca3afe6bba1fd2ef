//! The retry buffer of a request body (Envoy's `per_request_buffer_limit_bytes`): the body
//! streams upstream as it arrives while the frames sent are kept up to a limit, so that a retry
//! sends them again and then carries on with the rest of the client's stream. A body that
//! outgrows the limit drops what was kept and is sent once; so does one whose request is done
//! with retries (what is kept then is only what the current try has not sent yet).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

use crate::http::{Body, BoxError, empty};

/// A request body as the tries of one request read it.
#[derive(Debug)]
pub enum RequestBody {
    /// No body: every try sends none.
    Empty,
    /// A body read from the client as the tries need it, behind its retry buffer.
    Stream(Arc<Mutex<Shared>>),
}

/// The client's stream and what was kept of it.
pub struct Shared {
    source: Body,
    /// Frames read from the source and kept: while `keeping`, every frame since the start;
    /// after, only those the reader has yet to send.
    kept: VecDeque<Kept>,
    /// How many of `kept` the current reader has sent.
    sent: usize,
    /// Data bytes in `kept` while `keeping`.
    kept_bytes: usize,
    limit: usize,
    /// Frames read from the source are kept: the body can be sent again from its start.
    keeping: bool,
    /// The source has ended.
    ended: bool,
    /// Why the source failed (the client's side: a reset, the body-read timeout).
    failed: Option<String>,
    /// The reader allowed to read: the latest try's.
    reader: u32,
    /// The body's length when the client declared it.
    length: Option<u64>,
    overflows: Counter,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("kept", &self.kept.len())
            .field("kept_bytes", &self.kept_bytes)
            .field("keeping", &self.keeping)
            .field("ended", &self.ended)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// A frame kept for a retry.
#[derive(Debug)]
enum Kept {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Kept {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Kept::Data(b) => Frame::data(b.clone()),
            Kept::Trailers(t) => Frame::trailers(t.clone()),
        }
    }

    fn into_frame(self) -> Frame<Bytes> {
        match self {
            Kept::Data(b) => Frame::data(b),
            Kept::Trailers(t) => Frame::trailers(t),
        }
    }
}

impl Shared {
    /// Keeps a frame the current reader is about to send, or stops keeping when it would
    /// outgrow the limit.
    fn keep(&mut self, frame: &Frame<Bytes>) {
        if let Some(data) = frame.data_ref() {
            if self.kept_bytes + data.len() > self.limit {
                self.overflows.inc();
                self.stop();
                return;
            }
            self.kept_bytes += data.len();
            self.kept.push_back(Kept::Data(data.clone()));
        } else if let Some(trailers) = frame.trailers_ref() {
            self.kept.push_back(Kept::Trailers(trailers.clone()));
        } else {
            return;
        }
        self.sent += 1;
    }

    /// Stops keeping: what the current reader sent is let go, what it has yet to send stays.
    fn stop(&mut self) {
        self.keeping = false;
        self.kept.drain(..self.sent);
        self.kept.shrink_to_fit();
        self.sent = 0;
        self.kept_bytes = 0;
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RequestBody {
    /// The body of a request whose client stream is `source`, keeping up to `limit` bytes for
    /// retries; a body that outgrows it is counted in `overflows`.
    pub fn new(source: Body, limit: usize, overflows: Counter) -> RequestBody {
        if source.is_end_stream() {
            return RequestBody::Empty;
        }
        RequestBody::Stream(Arc::new(Mutex::new(Shared {
            length: source.size_hint().exact(),
            source,
            kept: VecDeque::new(),
            sent: 0,
            kept_bytes: 0,
            limit,
            keeping: true,
            ended: false,
            failed: None,
            reader: 0,
            overflows,
        })))
    }

    /// The body of the first try.
    pub fn first(&self) -> Body {
        match self {
            RequestBody::Empty => empty(),
            RequestBody::Stream(shared) => Replay {
                shared: shared.clone(),
                reader: lock(shared).reader,
                returned: 0,
            }
            .boxed_unsync(),
        }
    }

    /// The body of another try, when the whole body can still be sent again: what was kept,
    /// then the rest of the client's stream. The previous try's body stops reading (it fails
    /// if it is read on).
    pub fn again(&self) -> Option<Body> {
        match self {
            RequestBody::Empty => Some(empty()),
            RequestBody::Stream(shared) => {
                let mut s = lock(shared);
                if !s.keeping {
                    return None;
                }
                s.reader += 1;
                s.sent = 0;
                Some(
                    Replay {
                        shared: shared.clone(),
                        reader: s.reader,
                        returned: 0,
                    }
                    .boxed_unsync(),
                )
            }
        }
    }

    /// Why the client's stream failed, if it did: then the request failed on the client's
    /// side, not the upstream's.
    pub fn failed(&self) -> Option<String> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Stream(shared) => lock(shared).failed.clone(),
        }
    }
}

impl Drop for RequestBody {
    /// No more tries: the buffer goes; a try still sending keeps what it has yet to send.
    fn drop(&mut self) {
        if let RequestBody::Stream(shared) = self {
            lock(shared).stop();
        }
    }
}

/// The body of one try.
struct Replay {
    shared: Arc<Mutex<Shared>>,
    reader: u32,
    /// Data bytes this try has sent.
    returned: u64,
}

impl hyper::body::Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut guard = lock(&this.shared);
        let s = &mut *guard;
        if s.reader != this.reader {
            return Poll::Ready(Some(Err("request body: superseded by a retry".into())));
        }
        let frame = if s.sent < s.kept.len() {
            if s.keeping {
                s.sent += 1;
                s.kept[s.sent - 1].frame()
            } else {
                match s.kept.pop_front() {
                    Some(kept) => kept.into_frame(),
                    None => return Poll::Ready(None),
                }
            }
        } else if s.ended {
            return Poll::Ready(None);
        } else {
            match ready!(Pin::new(&mut s.source).poll_frame(cx)) {
                None => {
                    s.ended = true;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    s.failed = Some(e.to_string());
                    s.ended = true;
                    s.stop();
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(frame)) => {
                    if s.keeping {
                        s.keep(&frame);
                    }
                    frame
                }
            }
        };
        if let Some(data) = frame.data_ref() {
            this.returned += data.len() as u64;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let s = lock(&self.shared);
        s.reader == self.reader && s.sent >= s.kept.len() && (s.ended || s.source.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match lock(&self.shared).length {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.returned)),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::StreamBody;

    use super::*;

    fn stream(frames: Vec<Frame<Bytes>>) -> Body {
        StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(Ok::<_, BoxError>),
        ))
        .boxed_unsync()
    }

    fn data(s: &'static str) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(s.as_bytes()))
    }

    async fn next(body: &mut Body) -> Option<Result<Frame<Bytes>, BoxError>> {
        body.frame().await
    }

    async fn text(mut body: Body) -> String {
        let mut out = String::new();
        while let Some(frame) = next(&mut body).await {
            if let Ok(d) = frame.unwrap().into_data() {
                out.push_str(std::str::from_utf8(&d).unwrap());
            }
        }
        out
    }

    #[tokio::test]
    async fn a_retry_replays_what_was_sent_then_the_rest_and_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let source = stream(vec![
            data("ab"),
            data("cd"),
            data("ef"),
            Frame::trailers(trailers),
        ]);
        let overflows = Counter::default();
        let body = RequestBody::new(source, 16, overflows.clone());
        let mut first = body.first();
        assert_eq!(
            next(&mut first)
                .await
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap(),
            "ab"
        );
        let mut second = body.again().unwrap();
        assert!(
            next(&mut first).await.unwrap().is_err(),
            "the old try stops"
        );
        let mut got = Vec::new();
        while let Some(frame) = next(&mut second).await {
            got.push(frame.unwrap());
        }
        assert_eq!(got.len(), 4);
        assert!(got[3].is_trailers());
        assert_eq!(text(body.again().unwrap()).await, "abcdef");
        assert_eq!(overflows.get(), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_sent_once() {
        let overflows = Counter::default();
        let body = RequestBody::new(
            stream(vec![data("abcd"), data("efgh")]),
            6,
            overflows.clone(),
        );
        assert_eq!(text(body.first()).await, "abcdefgh");
        assert!(body.again().is_none());
        assert_eq!(overflows.get(), 1);
    }

    #[tokio::test]
    async fn once_done_with_retries_a_try_keeps_only_what_it_has_yet_to_send() {
        let body = RequestBody::new(stream(vec![data("ab"), data("cd")]), 16, Counter::default());
        let mut first = body.first();
        assert!(next(&mut first).await.is_some());
        assert!(next(&mut first).await.is_some());
        let again = body.again().unwrap();
        let RequestBody::Stream(shared) = &body else {
            unreachable!()
        };
        let shared = shared.clone();
        let mut again = again;
        assert_eq!(
            next(&mut again)
                .await
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap(),
            "ab"
        );
        drop(body);
        assert_eq!(lock(&shared).kept.len(), 1, "only the unsent frame is kept");
        assert_eq!(text(again).await, "cd");
        assert!(lock(&shared).kept.is_empty());
    }

    #[tokio::test]
    async fn an_empty_body_is_no_stream() {
        let body = RequestBody::new(empty(), 16, Counter::default());
        assert!(matches!(body, RequestBody::Empty));
        assert!(body.again().is_some());
    }
}
