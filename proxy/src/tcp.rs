//! Opaque TCP: connecting upstream (keepalive, the app from 127.0.0.6 or the
//! client's own address), copying bytes both ways with half-close and an idle
//! timeout, and choosing the destination of a connection by tcp/tls routes.

mod route;
pub mod splice;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

pub use route::route;
pub use splice::relay;

use crate::cluster::Keepalive;
use crate::error::ProxyError;

/// Source address for connections to the app on the pod's own IP: sluice-init
/// never captures traffic from it, so it does not loop back to the proxy.
const APP_SOURCE_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
const APP_SOURCE_V6: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 6);

/// Connects to `addr` within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProxyError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ))
        })
        .map_err(|source| ProxyError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Connects to an endpoint of a destination: [`connect`], then the
/// destination's keepalive, if it sets one.
pub async fn connect_upstream(
    addr: SocketAddr,
    timeout: Duration,
    keepalive: Option<Keepalive>,
) -> Result<TcpStream, ProxyError> {
    let stream = connect(addr, timeout).await?;
    if let Some(keepalive) = keepalive
        && let Err(e) = set_keepalive(&stream, &keepalive)
    {
        tracing::warn!(%addr, "cannot set TCP keepalive: {e}");
    }
    Ok(stream)
}

/// Turns on the keepalive probes of `stream`.
fn set_keepalive(stream: &TcpStream, keepalive: &Keepalive) -> io::Result<()> {
    let mut probes = socket2::TcpKeepalive::new();
    if let Some(time) = keepalive.time {
        probes = probes.with_time(time);
    }
    if let Some(interval) = keepalive.interval {
        probes = probes.with_interval(interval);
    }
    if let Some(count) = keepalive.probes {
        probes = probes.with_retries(count);
    }
    socket2::SockRef::from(stream).set_tcp_keepalive(&probes)
}

/// The client a connection to the app is made for in tproxy mode: the connection leaves from
/// the client's own address, so the app sees the real caller (as Envoy's `original_src`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OriginalSrc {
    /// The client's address, bound with IP_TRANSPARENT (not one of the pod's, except when the
    /// pod calls itself).
    pub ip: IpAddr,
    /// SO_MARK of the connection: sluice-init's tproxy mark, which routes the app's replies
    /// back to the proxy instead of out to the client.
    pub mark: u32,
}

/// Connects to the app in this pod at `addr`: the original destination on the pod's IP, from
/// the client's address when `from` is given (tproxy mode), else from 127.0.0.6 (`::6`); or a
/// loopback address, connected to from loopback, for the ports whose inbound traffic is
/// delivered on loopback (`--app-loopback-ports`, see [`crate::Sidecar::app_addr`]).
///
/// There is no fallback to loopback when the pod IP refuses: an app bound only to 127.0.0.1
/// (an admin console, a debug port) must not become reachable from the network through the
/// proxy (Istio removed that behaviour in 1.10).
pub async fn connect_app(
    addr: SocketAddr,
    from: Option<OriginalSrc>,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    if addr.ip() == Ipv4Addr::LOCALHOST || addr.ip() == Ipv6Addr::LOCALHOST {
        return connect(addr, timeout).await;
    }
    let source = match from.filter(|f| f.ip.is_ipv4() == addr.is_ipv4()) {
        Some(from) => transparent_socket(from),
        None => passthrough_socket(addr),
    };
    connect_socket(source, addr, timeout)
        .await
        .map_err(|source| ProxyError::Connect { addr, source })
}

/// A socket bound to 127.0.0.6 (`::6`), which sluice-init never captures.
fn passthrough_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let (socket, source) = match addr {
        SocketAddr::V4(_) => (TcpSocket::new_v4()?, IpAddr::from(APP_SOURCE_V4)),
        SocketAddr::V6(_) => (TcpSocket::new_v6()?, IpAddr::from(APP_SOURCE_V6)),
    };
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket)
}

/// A socket bound to the client's address: IP_TRANSPARENT (CAP_NET_ADMIN) and SO_MARK.
fn transparent_socket(from: OriginalSrc) -> io::Result<TcpSocket> {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(from.ip, 0)),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if from.ip.is_ipv4() {
        socket.set_ip_transparent_v4(true)?;
    } else {
        socket.set_ip_transparent_v6(true)?;
    }
    socket.set_mark(from.mark)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(from.ip, 0).into())?;
    Ok(TcpSocket::from_std_stream(socket.into()))
}

async fn connect_socket(
    socket: io::Result<TcpSocket>,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, socket?.connect(addr))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn an_app_on_loopback_only_is_not_reached_through_the_pod_ip() {
        let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = app.local_addr().unwrap().port();
        // 127.0.0.2 stands for the pod IP: nothing listens there.
        let refused = connect_app(
            SocketAddr::from(([127, 0, 0, 2], port)),
            None,
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(&refused, Err(ProxyError::Connect { addr, .. }) if addr.port() == port),
            "{refused:?}"
        );
        // Asked for by address (a loopback port): reached.
        let stream = connect_app(app.local_addr().unwrap(), None, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), app.local_addr().unwrap());
    }
}
