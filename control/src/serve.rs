//! Serving an axum router on a listener, over TLS when given an acceptor, else plain TCP;
//! HTTP/1.1 and HTTP/2 (prior knowledge or ALPN), with HTTP/2 keepalive pings so dead
//! peers of long streams are noticed; a header read timeout, bounded headers and HTTP/2
//! streams against slow or greedy clients; an idle timeout for connections that stay alive
//! but carry no request; graceful shutdown with a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use sluice_conn_idle::{Guarded, Idle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
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
/// An HTTP/2 connection with no request in flight this long is closed (GOAWAY), though its
/// client answers the keepalive pings: the API server's webhook client keeps its own idle
/// connections 90 s, so it normally closes first. A discovery stream is a request in flight.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
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
    serve_idle(listener, app, tls, shutdown, IDLE_TIMEOUT).await;
}

/// [`serve`], closing connections idle for `idle_timeout`.
async fn serve_idle(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    idle_timeout: Duration,
) {
    let (closing, closed) = watch::channel(false);
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
        let (tls, app, closed) = (tls.clone(), app.clone(), closed.clone());
        connections.spawn(async move {
            let result = match tls {
                None => connection(tcp, app, closed, idle_timeout).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => connection(tls, app, closed, idle_timeout).await,
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
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// One connection served with `app`, with HTTP/2 keepalive and the limits above, until it
/// ends, or, gracefully, until `closing` turns true or it has been idle for `idle_timeout`.
async fn connection<IO>(
    io: IO,
    app: Router,
    mut closing: watch::Receiver<bool>,
    idle_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
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
    let idle = Idle::new();
    let busy = idle.clone();
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = busy.start();
        let answer = hyper::service::Service::call(&app, req);
        async move {
            let resp = answer
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            Ok::<_, Infallible>(resp.map(|body| Guarded::new(body, guard)))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = closing.wait_for(|closing| *closing) => {}
        () = idle.idle_for(idle_timeout) => tracing::debug!("connection idle: closing"),
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    #[tokio::test]
    async fn an_idle_http2_connection_is_closed_though_it_answers_pings_but_not_mid_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "done"
        };
        let app = Router::new().route("/slow", get(slow));
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limit = Duration::from_millis(200);
        let shutdown = async {
            let _ = stopped.await;
        };
        tokio::spawn(serve_idle(listener, app, None, shutdown, limit));

        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(50))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        // A request lasting three times the limit is not cut...
        let req = Request::get("http://control/slow")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "done");
        // ...and once it is done, the connection is closed a limit later, though the client
        // pings every 50 ms.
        let done = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(5), driver).await;
        assert!(closed.is_ok(), "still open 5 s after the last request");
        assert!(done.elapsed() >= limit - Duration::from_millis(50));
    }
}
