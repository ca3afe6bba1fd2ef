//! `sluice-testapp`: the e2e test applications as a process, for tests that run them in pods
//! with `Pod::command`.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_e2e::apps::token_client::TokenClient;
use sluice_e2e::apps::{AppId, Seen, banner, http, tcp_echo};
use tokio::net::TcpListener;

/// Test applications of the sluice end-to-end tests.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    app: App,
}

#[derive(Subcommand)]
enum App {
    #[command(flatten)]
    Server(Server),
    /// Client: connects to a target, sends a token line and exits (0 once sent).
    Connect {
        /// Where to connect, e.g. 10.0.0.2:80 (an IPv6 address goes in brackets)
        #[arg(long)]
        target: SocketAddr,
        /// The line to send.
        #[arg(long)]
        token: String,
        /// Source address to bind first.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
}

#[derive(Subcommand)]
enum Server {
    /// HTTP/1.1 + h2c echo server; prints one JSON line per request on stdout.
    Http {
        /// Address to listen on, e.g. 0.0.0.0:8080 (an IPv6 address goes in brackets)
        #[arg(long)]
        listen: SocketAddr,
        /// Application name, reported in the answers and the x-app header.
        #[arg(long)]
        name: String,
        /// Application version, reported in the answers and the x-app header.
        #[arg(long, default_value = "v1")]
        version: String,
    },
    /// TCP echo server that honours half-close.
    TcpEcho {
        /// Address to listen on, e.g. 0.0.0.0:9000 (an IPv6 address goes in brackets)
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Server-first service: sends a banner line on accept, then echoes lines prefixed.
    Banner {
        /// Address to listen on, e.g. 0.0.0.0:2525 (an IPv6 address goes in brackets)
        #[arg(long)]
        listen: SocketAddr,
        /// Name sent in the banner and the replies.
        #[arg(long)]
        name: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().app {
        App::Connect {
            target,
            token,
            bind,
        } => TokenClient { bind, mark: None }.send(target, &token),
        App::Server(server) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(serve(server)),
    }
}

async fn serve(server: Server) -> anyhow::Result<()> {
    let (Server::Http { listen, .. } | Server::TcpEcho { listen } | Server::Banner { listen, .. }) =
        server;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!("sluice-testapp: listening on {}", listener.local_addr()?);
    match server {
        Server::Http { name, version, .. } => {
            http::serve(listener, AppId::new(name, version), print_line)?.await
        }
        Server::TcpEcho { .. } => tcp_echo::serve(listener).await,
        Server::Banner { name, .. } => banner::serve(listener, name).await,
    }
    .context("serving")
}

/// Prints a request as one JSON line, flushed at once so a test reading stdout sees it.
fn print_line(seen: &Seen) {
    let mut stdout = std::io::stdout().lock();
    let line = serde_json::to_string(seen).expect("Seen serializes to JSON");
    // A test that stopped reading stdout must not stop the server.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
