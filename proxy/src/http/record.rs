//! Recording a request when its response has been sent in full (or abandoned).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use super::{Body, BoxError};
use crate::metrics::{Metrics, RequestRecord};

/// Records one request in the metrics and the access log, once.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    record: RequestRecord,
    started: Instant,
}

impl Recorder {
    /// Starts timing a request.
    pub fn new(metrics: Arc<Metrics>, record: RequestRecord, started: Instant) -> Recorder {
        Recorder {
            metrics,
            record,
            started,
        }
    }

    fn finish(self) {
        self.metrics.request(&self.record, self.started.elapsed());
    }
}

/// A response body that records its request when it ends or is dropped.
pub struct Recorded {
    inner: Body,
    recorder: Option<Recorder>,
}

impl Recorded {
    /// Wraps a response body.
    pub fn new(inner: Body, recorder: Recorder) -> Recorded {
        Recorded {
            inner,
            recorder: Some(recorder),
        }
    }
}

impl hyper::body::Body for Recorded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_))))
            && let Some(r) = self.recorder.take()
        {
            r.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(r) = self.recorder.take() {
            r.finish();
        }
    }
}
