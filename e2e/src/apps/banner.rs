//! The banner application, a server-first protocol (like SMTP): on accept it sends
//! [`greeting`] at once, then answers every line `L` with `<name>: L\r\n`.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The line the application named `name` sends first.
pub fn greeting(name: &str) -> String {
    format!("220 sluice-e2e banner {name}\r\n")
}

/// The application named `name` serving `listener`, until the future is dropped.
pub async fn serve(listener: TcpListener, name: String) -> io::Result<()> {
    let name: Arc<str> = name.into();
    super::accept_loop(listener, move |stream| {
        let name = Arc::clone(&name);
        async move {
            // A client that resets the connection is no concern of a test application.
            let _ = converse(stream, &name).await;
        }
    })
    .await
}

async fn converse(mut stream: TcpStream, name: &str) -> io::Result<()> {
    let (from_client, mut to_client) = stream.split();
    to_client.write_all(greeting(name).as_bytes()).await?;
    let mut lines = BufReader::new(from_client).lines();
    while let Some(line) = lines.next_line().await? {
        to_client
            .write_all(format!("{name}: {line}\r\n").as_bytes())
            .await?;
    }
    to_client.shutdown().await
}
