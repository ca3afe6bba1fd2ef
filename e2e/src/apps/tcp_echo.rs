//! The TCP echo application: sends every byte back, and honours half-close: once the client has
//! shut down its sending side, the rest is echoed and then the connection is closed.

use std::io;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

/// The application serving `listener`, until the future is dropped.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    super::accept_loop(listener, |stream| async move {
        // A client that resets the connection is no concern of a test application.
        let _ = echo(stream).await;
    })
    .await
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let (mut from_client, mut to_client) = stream.split();
    tokio::io::copy(&mut from_client, &mut to_client).await?;
    to_client.shutdown().await
}
