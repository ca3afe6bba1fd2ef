//! Test applications that stand in for a mesh's workloads: an HTTP/1.1 + h2c echo server, a gRPC
//! echo server, a TCP echo server, a server-first banner service, and the capture tests' token
//! client. Each runs in-process (the `serve_*` functions here) or as a process (`sluice-testapp`,
//! on the module-level `serve` futures).

pub mod banner;
pub mod grpc;
pub mod http;
pub mod tcp_echo;
pub mod token_client;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub use http::{AppId, RequestLog, Seen};

/// A test application running on a tokio task; dropping it stops the listener and every
/// connection it accepted.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    fn spawn(
        local_addr: SocketAddr,
        serve: impl Future<Output = io::Result<()>> + Send + 'static,
    ) -> Self {
        Self {
            local_addr,
            task: tokio::spawn(serve),
        }
    }

    /// The address the application listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running [`http`] application and the log of the requests it answered.
#[derive(Debug)]
pub struct HttpServer {
    server: Server,
    log: RequestLog,
}

impl HttpServer {
    /// The address the application listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Every request answered so far.
    pub fn log(&self) -> &RequestLog {
        &self.log
    }
}

/// Starts the [`http`] application on `listener` as a task of the current tokio runtime (so call
/// it from inside one, e.g. in a task of [`crate::Pod::runtime`]).
pub fn serve_http(listener: TcpListener, id: AppId) -> io::Result<HttpServer> {
    let local_addr = listener.local_addr()?;
    let log = RequestLog::default();
    let recorder = log.clone();
    let serve = http::serve(listener, id, move |seen| recorder.record(seen.clone()))?;
    Ok(HttpServer {
        server: Server::spawn(local_addr, serve),
        log,
    })
}

/// Starts the [`grpc`] application on `listener` as a task of the current tokio runtime.
pub fn serve_grpc(listener: TcpListener, id: AppId) -> io::Result<Server> {
    Ok(Server::spawn(
        listener.local_addr()?,
        grpc::serve(listener, id),
    ))
}

/// Starts the [`tcp_echo`] application on `listener` as a task of the current tokio runtime.
pub fn serve_tcp_echo(listener: TcpListener) -> io::Result<Server> {
    Ok(Server::spawn(
        listener.local_addr()?,
        tcp_echo::serve(listener),
    ))
}

/// Starts the [`banner`] application named `name` on `listener` as a task of the current tokio
/// runtime.
pub fn serve_banner(listener: TcpListener, name: &str) -> io::Result<Server> {
    Ok(Server::spawn(
        listener.local_addr()?,
        banner::serve(listener, name.to_owned()),
    ))
}

/// Accepts connections and runs `handle` on each as a task. The tasks belong to this future:
/// dropping it (stopping the server) ends them too.
async fn accept_loop<F, Fut>(listener: TcpListener, mut handle: F) -> io::Result<()>
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await?;
        while connections.try_join_next().is_some() {}
        connections.spawn(handle(stream));
    }
}
