//! Listening sockets and accept loops: IPv4 and, where the pod has it, IPv6
//! on separate sockets; each connection runs on its own task and holds a
//! drain watch and a place in the connection limit until it is done; a panic in it ends
//! that connection only, and is counted. Out of file descriptors, new connections are closed
//! at once rather than left waiting ([`spare_fd`]).

pub mod inbound;
pub mod outbound;
mod spare_fd;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use crate::drain;
use crate::limits::Gates;

/// How sluice-init captures inbound connections (`--mode`), and so how the inbound
/// listener finds where they were going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// NAT REDIRECT: the original destination is SO_ORIGINAL_DST.
    #[default]
    Redirect,
    /// TPROXY: the listener is IP_TRANSPARENT and each connection's local address is its
    /// original destination, except the pod's calls to itself, which sluice-init still
    /// NAT-redirects (see [`crate::orig_dst::Tproxy`]). Needs CAP_NET_ADMIN, which injection
    /// grants in this mode.
    Tproxy,
    /// No capture: an edge gateway listening on the ports of the Gateways that select its
    /// labels (see [`crate::gateway`]).
    Gateway,
}

/// sluice-init's default `--tproxy-mark`: the SO_MARK of the proxy's transparent connections to
/// the app in tproxy mode.
pub const DEFAULT_TPROXY_MARK: u32 = 1337;

/// Parses a firewall mark as sluice-init's `--tproxy-mark` takes it: decimal or `0x` hex, not 0.
pub fn parse_mark(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(mark) if mark != 0 => Ok(mark),
        _ => Err("not a firewall mark; use 1-4294967295, decimal or 0x hex".into()),
    }
}

/// Binds `port` on every address of the pod: 0.0.0.0 and, when the kernel
/// and pod have IPv6, `[::]` (IPv6 only, so the two never collide).
pub fn bind_all(port: u16) -> io::Result<Vec<TcpListener>> {
    bind_all_transparent(port, false)
}

/// [`bind_all`], with IP_TRANSPARENT when `transparent` (the tproxy inbound listener).
pub fn bind_all_transparent(port: u16, transparent: bool) -> io::Result<Vec<TcpListener>> {
    let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
    let mut listeners = vec![bind_socket(v4, transparent)?];
    match bind_socket(
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        transparent,
    ) {
        Ok(l) => listeners.push(l),
        Err(e) => tracing::debug!(port, "no IPv6 listener: {e}"),
    }
    Ok(listeners)
}

/// Binds one address (reuse-address, IPv6-only for IPv6).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    bind_socket(addr, false)
}

fn bind_socket(addr: SocketAddr, transparent: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if matches!(addr.ip(), IpAddr::V6(_)) {
        socket.set_only_v6(true)?;
        if transparent {
            socket.set_ip_transparent_v6(true)?;
        }
    } else if transparent {
        socket.set_ip_transparent_v4(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections on `listeners` until draining starts, running
/// `handle` for each on its own task with a drain watch, within the connection limit of
/// `gates` (a connection beyond it is closed at once).
pub async fn serve<H, F>(
    listeners: Vec<TcpListener>,
    drain: drain::Watch,
    gates: Arc<Gates>,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr, drain::Watch) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let accepting = accept_until(
                listener,
                drain.clone(),
                gates.clone(),
                std::future::pending(),
                handle.clone(),
            );
            tokio::spawn(accepting)
        })
        .collect();
    drop(drain);
    for l in loops {
        let _ = l.await;
    }
}

/// Accepts connections on `listener` until draining starts or `stop` completes, running
/// `handle` for each on its own task (a panic ends that task only, counted), within the
/// connection limit of `gates`.
pub async fn accept_until<H, F>(
    listener: TcpListener,
    drain: drain::Watch,
    gates: Arc<Gates>,
    stop: impl Future<Output = ()>,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr, drain::Watch) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr().ok();
    spare_fd::reserve();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = drain.signaled() => break,
            () = &mut stop => break,
        };
        let accepted = match accepted {
            Ok((stream, peer)) => spare_fd::headroom(stream).map(|stream| (stream, peer)),
            Err(e) if spare_fd::is_exhaustion(&e) && spare_fd::refuse_one(&listener) => None,
            Err(e) => {
                // Out of descriptors with no spare, and the like: pause rather than spin.
                tracing::warn!(?local, "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((stream, peer)) = accepted else {
            gates.counts.connections_refused.inc();
            tracing::warn!(
                ?local,
                "out of file descriptors: a new connection was closed"
            );
            continue;
        };
        let Some(permit) = gates.connection() else {
            tracing::debug!(%peer, "connection limit reached: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = AssertUnwindSafe(handle(stream, peer, drain.clone()));
        let panics = gates.counts.panics.clone();
        tokio::spawn(async move {
            // The shipped build unwinds (`panic = "unwind"` in Cargo.toml), so a
            // panic ends this connection's task only.
            if connection.catch_unwind().await.is_err() {
                panics.inc();
                tracing::error!(%peer, "connection task panicked; connection dropped");
            }
            drop(permit);
        });
    }
    tracing::debug!(?local, "stopped accepting");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::ClientLimits;
    use crate::metrics::LimitMetrics;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_panicking_connection_is_dropped_and_counted_and_the_limit_holds() {
        let counts = LimitMetrics::default();
        let limits = ClientLimits {
            max_connections: 2,
            ..ClientLimits::default()
        };
        let gates = Gates::new(limits, counts.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_signal, watch) = drain::channel();
        // Each connection says one byte: `p` panics its task, anything else is echoed.
        let handle = |mut stream: TcpStream, _, _| async move {
            let mut byte = [0];
            if stream.read_exact(&mut byte).await.is_ok() {
                assert_ne!(&byte, b"p", "a fault for the test");
                let _ = stream.write_all(&byte).await;
                let _ = stream.read(&mut byte).await;
            }
        };
        tokio::spawn(serve(vec![listener], watch, gates.clone(), handle));
        let mut panicking = TcpStream::connect(addr).await.unwrap();
        panicking.write_all(b"p").await.unwrap();
        let mut buf = [0];
        assert_eq!(panicking.read(&mut buf).await.unwrap(), 0, "dropped");
        assert_eq!(counts.panics.get(), 1);
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut ok = TcpStream::connect(addr).await.unwrap();
            ok.write_all(b"k").await.unwrap();
            ok.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"k", "served after the panic");
            held.push(ok);
        }
        let mut beyond = TcpStream::connect(addr).await.unwrap();
        let _ = beyond.write_all(b"k").await;
        assert_eq!(
            beyond.read(&mut buf).await.unwrap_or(0),
            0,
            "closed at the limit"
        );
        assert_eq!(counts.connections_refused.get(), 1);
        drop(held);
    }

    #[test]
    fn marks_are_decimal_or_hex_and_never_zero() {
        assert_eq!(parse_mark("1337"), Ok(1337));
        assert_eq!(parse_mark(" 0x539 "), Ok(1337));
        for bad in ["0", "0x0", "-1", "0xg", "4294967296", ""] {
            assert!(parse_mark(bad).is_err(), "{bad}");
        }
    }
}
