//! Pooled HTTP/1.1 upstream connections that the server closes, through real sockets: one
//! closed while idle is found closed when it is next taken (even a POST, never resent, gets
//! through on a fresh connection), and a request lost because the server closed the
//! connection as it arrived is sent once more on a fresh connection when it is idempotent,
//! never when it is a POST. Retries are off, so only the pool can make these succeed. An
//! answer that comes before the request body was all sent reaches the client.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use support::{Proxy, model};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const VIP: &str = "10.96.0.10:80";

/// What the upstream does once a connection has answered one request.
#[derive(Clone, Copy)]
enum After {
    /// Closes it at once (without saying so in the response).
    Close,
    /// Reads the next request, then closes without answering.
    ReadThenClose,
}

/// Requests the upstream read: (connection number, request line).
type Seen = Arc<Mutex<Vec<(usize, String)>>>;

/// A raw upstream answering `200 ok` with a Content-Length, then doing `after`; each close is
/// reported on the returned channel.
async fn upstream(after: After) -> (SocketAddr, Seen, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let (closed, closes) = mpsc::unbounded_channel();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((stream, _)) = listener.accept().await {
            n += 1;
            let (log, closed) = (log.clone(), closed.clone());
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let Some(line) = read_message(&mut stream).await else {
                    return;
                };
                log.lock().unwrap().push((n, line));
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                stream.get_mut().write_all(ok).await.unwrap();
                if let After::ReadThenClose = after
                    && let Some(line) = read_message(&mut stream).await
                {
                    log.lock().unwrap().push((n, line));
                }
                drop(stream);
                let _ = closed.send(());
            });
        }
    });
    (addr, seen, closes)
}

/// Reads one message (its head and a Content-Length body): its start line.
async fn read_message(stream: &mut BufReader<TcpStream>) -> Option<String> {
    let mut first = String::new();
    stream.read_line(&mut first).await.ok().filter(|n| *n > 0)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(first.trim_end().to_string())
}

/// Sends `method /path` on the client connection `client` (a POST with a small body) and
/// reads the response: its status.
async fn exchange(client: &mut BufReader<TcpStream>, method: &str, path: &str) -> u16 {
    let body = if method == "POST" {
        "content-length: 2\r\n\r\nhi"
    } else {
        "\r\n"
    };
    let req = format!("{method} {path} HTTP/1.1\r\nhost: catalog\r\n{body}");
    client.get_mut().write_all(req.as_bytes()).await.unwrap();
    let status = read_message(client).await.expect("a response");
    status.split(' ').nth(1).unwrap().parse().unwrap()
}

fn config(upstream: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {{name: catalog}}\n\
         spec:\n  hosts: [catalog]\n  addresses: [10.96.0.10]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n\
         \x20 resolution: STATIC\n  endpoints:\n  - address: {}\n    ports: {{http: {}}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: catalog}}\nspec:\n  hosts: [catalog]\n  http:\n\
         \x20 - route: [{{destination: {{host: catalog}}}}]\n    retries: {{attempts: 0}}\n",
        upstream.ip(),
        upstream.port()
    )
}

async fn client(proxy: &Proxy) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(proxy.outbound(VIP).await).await.unwrap())
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_not_used() {
    let (up, seen, mut closes) = upstream(After::Close).await;
    let proxy = Proxy::start(model(&config(up)));
    let mut client = client(&proxy).await;
    for (i, method) in ["GET", "POST", "POST"].into_iter().enumerate() {
        assert_eq!(exchange(&mut client, method, &format!("/{i}")).await, 200);
        // The upstream closed the connection the proxy keeps: the next request finds it so.
        closes.recv().await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let lines: Vec<(usize, &str)> = seen.iter().map(|(n, l)| (*n, l.as_str())).collect();
    assert_eq!(
        lines,
        [
            (1, "GET /0 HTTP/1.1"),
            (2, "POST /1 HTTP/1.1"),
            (3, "POST /2 HTTP/1.1")
        ]
    );
}

#[tokio::test]
async fn a_request_lost_to_a_closing_connection_is_sent_again_only_when_idempotent() {
    let (up, seen, _closes) = upstream(After::ReadThenClose).await;
    let proxy = Proxy::start(model(&config(up)));
    let mut client = client(&proxy).await;
    assert_eq!(exchange(&mut client, "GET", "/first").await, 200);
    // Read by the server, which closed without answering: sent once more, on a fresh
    // connection.
    assert_eq!(exchange(&mut client, "GET", "/again").await, 200);
    // The same for a POST: it may have been acted on, so the client gets the error.
    assert_eq!(exchange(&mut client, "POST", "/once").await, 502);
    let seen = seen.lock().unwrap().clone();
    let lines: Vec<(usize, &str)> = seen.iter().map(|(n, l)| (*n, l.as_str())).collect();
    assert_eq!(
        lines,
        [
            (1, "GET /first HTTP/1.1"),
            (1, "GET /again HTTP/1.1"),
            (2, "GET /again HTTP/1.1"),
            (2, "POST /once HTTP/1.1"),
        ]
    );
}

#[tokio::test]
async fn an_answer_before_the_body_is_read_reaches_the_client() {
    // An upstream that answers 413 after the head, then closes its side and drains the rest.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let answer = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\
                    connection: close\r\n\r\nbig!";
                stream.get_mut().write_all(answer).await.unwrap();
                stream.get_mut().shutdown().await.unwrap();
                let mut sink = vec![0; 64 * 1024];
                while stream.read(&mut sink).await.unwrap_or(0) > 0 {}
            });
        }
    });
    let proxy = Proxy::start(model(&config(up)));
    let (read, mut write) = TcpStream::connect(proxy.outbound(VIP).await)
        .await
        .unwrap()
        .into_split();
    // 8 MB: more than the sockets in between hold, so the proxy is still sending the body
    // when the answer comes.
    const SIZE: usize = 8 * 1024 * 1024;
    tokio::spawn(async move {
        let head = format!("POST /big HTTP/1.1\r\nhost: catalog\r\ncontent-length: {SIZE}\r\n\r\n");
        let _ = write.write_all(head.as_bytes()).await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..SIZE / chunk.len() {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut read = BufReader::new(read);
    let mut status = String::new();
    read.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}
