//! Mirroring: fire-and-forget copies of requests to a shadow destination.
//! Copies never hold up the main request; how many are in flight and how much
//! of a body is copied are bounded, and copies beyond that are dropped and counted.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::Request;
use hyper::body::{Frame, SizeHint};
use sluice_api::model::routes::Target;
use tokio::sync::{Semaphore, mpsc};

use super::{Body, BoxError, forward};
use crate::Sidecar;
use crate::balance::HashInput;
use crate::config::Snapshot;
use crate::destination;

/// Most request copies in flight at once.
const MAX_IN_FLIGHT: usize = 256;
/// Most bytes of a streamed body copied to one mirror.
const MAX_COPY: usize = 128 * 1024;
/// How long a copy may take before it is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames of a streamed body queued for a mirror.
const QUEUE: usize = 16;

/// Sends request copies to mirrors, within bounds (clones share them).
#[derive(Clone, Debug)]
pub struct Mirrors {
    permits: Arc<Semaphore>,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

impl Mirrors {
    /// Sends `req` to `target` in the background, unless too many copies are
    /// in flight (then the copy is dropped and counted).
    pub fn dispatch(
        &self,
        sidecar: &Arc<Sidecar>,
        snap: Arc<Snapshot>,
        target: Target,
        dst: std::net::SocketAddr,
        client: http::Version,
        req: Request<Body>,
    ) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            sidecar.metrics.mirror_dropped(&target.host);
            return;
        };
        sidecar.metrics.mirrored(&target.host);
        let sidecar = sidecar.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let copy = send(&sidecar, &snap, &target, dst, client, req);
            match tokio::time::timeout(MIRROR_TIMEOUT, copy).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(mirror = %target.host, "mirror copy failed: {e}"),
                Err(_) => {
                    tracing::debug!(mirror = %target.host, "mirror copy abandoned after {MIRROR_TIMEOUT:?}")
                }
            }
        });
    }
}

async fn send(
    sidecar: &Sidecar,
    snap: &Snapshot,
    target: &Target,
    dst: std::net::SocketAddr,
    client: http::Version,
    req: Request<Body>,
) -> Result<(), BoxError> {
    let dest = destination::resolve(snap, target, dst)?;
    let endpoint = dest.pick(sidecar, dst, &HashInput::default()).await?;
    let version = forward::version(dest.protocol, client, false, dest.settings);
    let req = forward::for_version(req, version);
    let to = super::Upstream {
        addr: endpoint.addr,
        version,
        connect_timeout: dest.connect_timeout(snap),
        cluster: dest.cluster,
    };
    let resp = sidecar
        .outbound_pool
        .send(&to, req)
        .await
        .map_err(|f| f.error)?;
    // Read the answer to its end so the connection goes back to the pool.
    resp.into_body().collect().await?;
    Ok(())
}

/// Splits a streamed request body: the main request reads `Tee`, each mirror
/// a [`CopyBody`] fed by it, up to [`MAX_COPY`] bytes and [`QUEUE`] frames
/// behind; a copy that falls behind is cut off, never the main request.
pub struct Tee {
    inner: Body,
    copies: Vec<CopySender>,
}

struct CopySender {
    tx: Option<mpsc::Sender<Frame<Bytes>>>,
    budget: usize,
    aborted: Arc<AtomicBool>,
}

/// The body of a mirrored request fed by a [`Tee`]; ends in an error when the
/// copy was cut off, so the mirror never sees a silently truncated body.
pub struct CopyBody {
    rx: mpsc::Receiver<Frame<Bytes>>,
    aborted: Arc<AtomicBool>,
}

/// Tees `body` into `n` copies.
pub fn tee(body: Body, n: usize) -> (Body, Vec<Body>) {
    let mut copies = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(QUEUE);
        let aborted = Arc::new(AtomicBool::new(false));
        senders.push(CopySender {
            tx: Some(tx),
            budget: MAX_COPY,
            aborted: aborted.clone(),
        });
        copies.push(CopyBody { rx, aborted }.boxed_unsync());
    }
    (
        Tee {
            inner: body,
            copies: senders,
        }
        .boxed_unsync(),
        copies,
    )
}

impl CopySender {
    fn offer(&mut self, frame: &Frame<Bytes>) {
        let Some(tx) = &self.tx else { return };
        let copy = if let Some(data) = frame.data_ref() {
            if data.len() > self.budget {
                return self.abort();
            }
            self.budget -= data.len();
            Frame::data(data.clone())
        } else if let Some(trailers) = frame.trailers_ref() {
            Frame::trailers(trailers.clone())
        } else {
            return;
        };
        if tx.try_send(copy).is_err() {
            self.abort();
        }
    }

    fn abort(&mut self) {
        self.aborted.store(true, Ordering::Relaxed);
        self.tx = None;
    }
}

impl Drop for CopySender {
    /// A copy whose main body went away before its end is cut off, not silently ended.
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.abort();
        }
    }
}

impl hyper::body::Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => self.copies.iter_mut().for_each(|c| c.offer(frame)),
            Poll::Ready(Some(Err(_))) => self.copies.iter_mut().for_each(CopySender::abort),
            Poll::Ready(None) => self.copies.iter_mut().for_each(|c| c.tx = None),
            Poll::Pending => {}
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

impl hyper::body::Body for CopyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) if self.aborted.load(Ordering::Relaxed) => Poll::Ready(Some(Err(
                "mirror copy cut off: the mirror fell behind or the body was too large".into(),
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    fn stream(chunks: Vec<&'static [u8]>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c))));
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn copies_follow_the_main_body() {
        let (main, mut copies) = tee(stream(vec![b"ab", b"cd"]), 1);
        assert_eq!(main.collect().await.unwrap().to_bytes(), "abcd");
        assert_eq!(copies.remove(0).collect().await.unwrap().to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn a_copy_that_falls_behind_is_cut_off_and_the_main_body_is_whole() {
        let chunks: Vec<&'static [u8]> = vec![b"x"; QUEUE + 5];
        let (main, mut copies) = tee(stream(chunks), 1);
        assert_eq!(main.collect().await.unwrap().to_bytes().len(), QUEUE + 5);
        assert!(
            copies.remove(0).collect().await.is_err(),
            "the copy ends in an error"
        );
    }
}
