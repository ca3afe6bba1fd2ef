//! Splicing a proxied TCP connection: bytes copied both ways with half-close,
//! counted, and both sides closed once nothing moved for the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::{Metrics, TcpLabels};

/// How a spliced connection ended: the bytes sent upstream and received from
/// it, and why it ended early, if it did.
#[derive(Debug)]
pub struct Spliced {
    /// Bytes sent upstream (what detection read included).
    pub sent: u64,
    /// Bytes received from upstream.
    pub received: u64,
    /// An I/O error, or the idle timeout.
    pub error: Option<io::Error>,
}

/// Copies bytes both ways until both sides are done, passing on half-closes;
/// first delivers what protocol detection already read from either side.
/// With `idle`, both sides are closed once no byte has moved either way for
/// that long (DestinationRule `tcp.idleTimeout`).
pub async fn splice<C: AsyncRead + AsyncWrite + Unpin, U: AsyncRead + AsyncWrite + Unpin>(
    client: C,
    upstream: U,
    to_upstream: &[u8],
    to_client: &[u8],
    idle: Option<Duration>,
) -> Spliced {
    let activity = Activity::default();
    let mut client = Counted::new(client, &activity);
    let mut upstream = Counted::new(upstream, &activity);
    let copied = async {
        upstream.write_all(to_upstream).await?;
        client.write_all(to_client).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
    };
    let error = match idle {
        None => copied.await.err(),
        Some(limit) => tokio::select! {
            copied = copied => copied.err(),
            () = activity.idle_for(limit) => Some(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("idle for {limit:?}"),
            )),
        },
    };
    Spliced {
        sent: client.read + to_upstream.len() as u64,
        received: upstream.read + to_client.len() as u64,
        error,
    }
}

/// Splices a proxied connection and records it in the metrics.
pub async fn relay<U: AsyncRead + AsyncWrite + Unpin>(
    metrics: &Metrics,
    labels: TcpLabels,
    client: TcpStream,
    upstream: U,
    detected: (&[u8], &[u8]),
    idle: Option<Duration>,
) {
    metrics.tcp_opened(&labels);
    let (to_upstream, to_client) = detected;
    let spliced = splice(client, upstream, to_upstream, to_client, idle).await;
    if let Some(e) = &spliced.error {
        tracing::debug!("TCP connection ended: {e}");
    }
    metrics.tcp_closed(&labels, spliced.sent, spliced.received);
}

/// When bytes last moved on a spliced connection, either way.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Nanoseconds from `start` to the last read or write.
    last: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed));
            if last.elapsed() >= limit {
                return;
            }
            tokio::time::sleep_until((last + limit).into()).await;
        }
    }
}

/// A side of a spliced connection: counts the bytes read from it and notes
/// every transfer in the connection's [`Activity`].
struct Counted<'a, S> {
    inner: S,
    read: u64,
    activity: &'a Activity,
}

impl<'a, S> Counted<'a, S> {
    fn new(inner: S, activity: &'a Activity) -> Self {
        Counted {
            inner,
            read: 0,
            activity,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.read += n;
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    use super::*;
    use crate::tcp::connect;

    #[tokio::test]
    async fn splice_passes_half_close_and_counts_bytes() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            s.write_all(&all).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(front.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = front.accept().await.unwrap();
        let upstream = connect(server_addr, Duration::from_secs(5)).await.unwrap();
        let idle = Some(Duration::from_secs(60));
        let proxy = tokio::spawn(splice(accepted, upstream, b"pre-", b"", idle));
        client.write_all(b"payload").await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pre-payload");
        let spliced = proxy.await.unwrap();
        assert_eq!((spliced.sent, spliced.received), (11, 11));
        assert!(spliced.error.is_none(), "{spliced:?}");
        echo.await.unwrap();
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout_and_not_before() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let quiet = tokio::spawn(async move { server.accept().await.unwrap() });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(front.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = front.accept().await.unwrap();
        let upstream = connect(server_addr, Duration::from_secs(5)).await.unwrap();
        let idle = Duration::from_millis(300);
        let started = Instant::now();
        let proxy = tokio::spawn(splice(accepted, upstream, b"", b"", Some(idle)));
        // Traffic at 200 ms keeps it open past the first 300 ms.
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"x").await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        let lasted = started.elapsed();
        assert!(
            lasted >= Duration::from_millis(500) && lasted < Duration::from_secs(5),
            "closed after {lasted:?}"
        );
        let spliced = proxy.await.unwrap();
        assert_eq!(spliced.error.unwrap().kind(), io::ErrorKind::TimedOut);
        assert_eq!((spliced.sent, spliced.received), (1, 0));
        drop(quiet);
    }
}
