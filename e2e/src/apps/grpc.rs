//! The gRPC echo application, and a client for it, on tonic with a raw-bytes
//! codec (no protobuf compiler needed). `Say` answers `<name>-<version>: <message>`;
//! a message starting with `fail` gets the status UNAVAILABLE instead.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, BufMut as _};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

use super::AppId;

/// The one method of the application.
pub const SAY: &str = "/sluice.e2e.Echo/Say";

/// Messages as raw bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

/// Encodes raw bytes.
#[derive(Debug)]
pub struct RawEncoder;

/// Decodes raw bytes.
#[derive(Debug)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// The `Say` handler of one application.
#[derive(Clone, Debug)]
struct Say(AppId);

impl tower_service::Service<Request<Vec<u8>>> for Say {
    type Response = Response<Vec<u8>>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Vec<u8>>, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Vec<u8>>) -> Self::Future {
        let id = self.0.clone();
        Box::pin(async move {
            let message = req.into_inner();
            if message.starts_with(b"fail") {
                return Err(Status::unavailable(format!(
                    "{}-{} was asked to fail",
                    id.name, id.version
                )));
            }
            let mut answer = format!("{}-{}: ", id.name, id.version).into_bytes();
            answer.extend(message);
            Ok(Response::new(answer))
        })
    }
}

/// The application serving `listener` (HTTP/2), until the future is dropped.
pub async fn serve(listener: TcpListener, id: AppId) -> io::Result<()> {
    super::accept_loop(listener, move |stream| {
        let id = id.clone();
        async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let say = Say(id.clone());
                    async move {
                        let resp = if req.uri().path() == SAY {
                            tonic::server::Grpc::new(RawCodec).unary(say, req).await
                        } else {
                            Status::unimplemented(format!("no method {}", req.uri().path()))
                                .into_http()
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
            // A client that goes away mid-call is no concern of a test application.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// Calls `Say` with `message` at `url` (e.g. `http://10.96.0.40:50051`) over a
/// tonic channel: a real gRPC client.
pub async fn say(url: &str, message: &[u8]) -> Result<Vec<u8>, Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("connecting to {url}: {e}")))?;
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = hyper::http::uri::PathAndQuery::from_static(SAY);
    Ok(client
        .unary(Request::new(message.to_vec()), path, RawCodec)
        .await?
        .into_inner())
}
