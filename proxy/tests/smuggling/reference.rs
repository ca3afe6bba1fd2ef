//! The reference the proxy is held to: a plain hyper 1.x reverse proxy, each client
//! connection served by hyper's HTTP/1 server and forwarded as is over one HTTP/1 client
//! connection of its own to the upstream (502 when that fails).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

type Body = BoxBody<Bytes, hyper::Error>;

/// Starts the reference proxy in front of `upstream`; returns its address.
pub async fn start(upstream: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, upstream));
        }
    });
    addr
}

async fn serve(client: TcpStream, upstream: SocketAddr) {
    let sender: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::default();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
        async move { Ok::<_, hyper::Error>(forward(&sender, upstream, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await;
}

async fn forward(
    sender: &Mutex<Option<SendRequest<Incoming>>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut sender = sender.lock().await;
    if sender.as_ref().is_none_or(SendRequest::is_closed) {
        let Ok(stream) = TcpStream::connect(upstream).await else {
            return bad_gateway();
        };
        let Ok((s, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            return bad_gateway();
        };
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let Some(s) = sender.as_mut() else {
        return bad_gateway();
    };
    match s.send_request(req).await {
        Ok(resp) => resp.map(http_body_util::BodyExt::boxed),
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(b"bad gateway\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
    resp
}
