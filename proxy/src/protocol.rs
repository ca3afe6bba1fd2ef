//! Which protocol a connection speaks: declared by the service port, or
//! detected from the first bytes without stalling server-first protocols.

mod prefixed;
mod sniff;

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

pub use prefixed::Prefixed;
pub use sniff::{Sniff, sniff};

/// Most client bytes buffered while detecting; a client that sends this much
/// without looking like HTTP or TLS is opaque TCP.
const MAX_SNIFF: usize = 16 * 1024 + 5;

/// What detection found.
#[derive(Debug)]
pub struct Detected {
    /// The protocol: what the client's first bytes say, or [`Sniff::Opaque`]
    /// when the server spoke first, nobody spoke in time, or the client closed.
    pub sniff: Sniff,
    /// What the client sent, to be replayed to whoever handles the connection.
    pub client: BytesMut,
    /// What the server sent first (server-first protocols).
    pub server: BytesMut,
    /// The upstream connection, when one was asked for and has been made (or failed).
    pub upstream: Option<io::Result<TcpStream>>,
}

/// Detects the protocol of `client`. When `upstream` is given, connecting it
/// starts at once, so that a server-first protocol (SMTP, MySQL...) gets its
/// greeting through with no added delay: whoever speaks first decides.
pub async fn detect<F>(client: &mut TcpStream, upstream: Option<F>, timeout: Duration) -> Detected
where
    F: Future<Output = io::Result<TcpStream>>,
{
    let mut client_bytes = BytesMut::with_capacity(1024);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let connecting = async {
        match upstream {
            Some(f) => f.await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(connecting);
    let mut connected: Option<io::Result<TcpStream>> = None;
    let done = |sniff, client, server, upstream| Detected {
        sniff,
        client,
        server,
        upstream,
    };
    loop {
        let server_speaks = async {
            match &connected {
                Some(Ok(stream)) => stream.readable().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            read = client.read_buf(&mut client_bytes) => {
                let closed = !matches!(read, Ok(n) if n > 0);
                let found = sniff(&client_bytes);
                if closed || client_bytes.len() >= MAX_SNIFF || found != Sniff::NeedMore {
                    let found = if found == Sniff::NeedMore { Sniff::Opaque } else { found };
                    return done(found, client_bytes, BytesMut::new(), connected);
                }
            }
            result = &mut connecting, if connected.is_none() => connected = Some(result),
            ready = server_speaks => {
                let Some(Ok(upstream)) = connected.take() else { unreachable!("only polled when connected") };
                let mut server = BytesMut::with_capacity(1024);
                match ready.and_then(|()| upstream.try_read_buf(&mut server)) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => connected = Some(Ok(upstream)),
                    // The server spoke, or closed: either way this is opaque TCP to it.
                    Ok(_) => return done(Sniff::Opaque, client_bytes, server, Some(Ok(upstream))),
                    Err(e) => return done(Sniff::Opaque, client_bytes, server, Some(Err(e))),
                }
            }
            () = &mut deadline => return done(Sniff::Opaque, client_bytes, BytesMut::new(), connected),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (client, accepted)
    }

    async fn server_first() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[tokio::test]
    async fn http_client_is_detected_without_waiting() {
        let (mut client, mut accepted) = pair().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let none: Option<std::future::Ready<io::Result<TcpStream>>> = None;
        let started = Instant::now();
        let found = detect(&mut accepted, none, Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(found.sniff, Sniff::Http1);
        assert!(found.upstream.is_none());
    }

    #[tokio::test]
    async fn server_first_protocol_wins_long_before_the_timeout() {
        let (listener, addr) = server_first().await;
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"220 hello\r\n").await.unwrap();
            std::future::pending::<()>().await;
        });
        let (_client, mut accepted) = pair().await;
        let started = Instant::now();
        let found = detect(
            &mut accepted,
            Some(TcpStream::connect(addr)),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(found.sniff, Sniff::Opaque);
        assert_eq!(&found.server[..], b"220 hello\r\n");
        assert!(matches!(found.upstream, Some(Ok(_))));
    }

    #[tokio::test]
    async fn silence_becomes_tcp_at_the_timeout() {
        let (listener, addr) = server_first().await;
        let _keep = tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let (_client, mut accepted) = pair().await;
        let found = detect(
            &mut accepted,
            Some(TcpStream::connect(addr)),
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(found.sniff, Sniff::Opaque);
        assert!(found.server.is_empty());
        assert!(matches!(found.upstream, Some(Ok(_))), "{found:?}");
    }

    #[tokio::test]
    async fn partial_request_line_waits_for_more() {
        let (mut client, mut accepted) = pair().await;
        client.write_all(b"GE").await.unwrap();
        let writer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            client.write_all(b"T / HTTP/1.1\r\n").await.unwrap();
            client
        });
        let none: Option<std::future::Ready<io::Result<TcpStream>>> = None;
        let found = detect(&mut accepted, none, Duration::from_secs(5)).await;
        let _client = writer.await.unwrap();
        assert_eq!(found.sniff, Sniff::Http1);
        assert!(found.client.starts_with(b"GET /"));
    }
}
