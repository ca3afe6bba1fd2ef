//! Serving an axum router on a listener, over TLS when given an acceptor, else plain TCP;
//! HTTP/1.1 and HTTP/2 (prior knowledge or ALPN), with HTTP/2 keepalive pings so dead
//! peers of long streams are noticed; a header read timeout, bounded headers and HTTP/2
//! streams against slow or greedy clients; graceful shutdown with a deadline.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A ping every this often on an idle HTTP/2 connection...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and the connection is closed when its answer takes longer.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest time to receive a request's headers (HTTP/1.1; hyper starts it as soon as the
/// connection waits for a request, so it is also the idle timeout of keep-alive connections).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most header fields in a request.
const MAX_HEADERS: usize = 100;
/// HTTP/2: most concurrent streams per connection, and the largest header list.
const H2_MAX_STREAMS: u32 = 256;
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections
/// finish for up to ten seconds and closes the rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next() => continue,
            () = &mut shutdown => break,
        };
        let (tls, app, watcher) = (tls.clone(), app.clone(), graceful.watcher());
        connections.spawn(async move {
            let result = match tls {
                None => watcher.watch(connection(tcp, app)).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => watcher.watch(connection(tls, app)).await,
                        Ok(Err(e)) => {
                            return tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// One connection served with `app`, with HTTP/2 keepalive and the limits above.
fn connection<IO>(
    io: IO,
    app: Router,
) -> auto::Connection<'static, TokioIo<IO>, TowerToHyperService<Router>, TokioExecutor>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .into_owned()
}
