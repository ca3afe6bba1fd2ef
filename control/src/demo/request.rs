//! One HTTP/1.1 request from inside a demo pod: made on that pod's runtime, so the
//! connection starts in its network namespace (and its capture applies).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;

/// One HTTP/1.1 request made on `rt` (a pod's runtime, so from inside that pod).
pub fn get(
    rt: &Runtime,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = hyper::Request::get(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new())?;
    rt.block_on(rt.spawn(async move {
        let stream =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .context("connect timed out")??;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let resp =
            tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await??;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    }))?
}
