//! Where a captured connection was going: the kernel's answer (SO_ORIGINAL_DST,
//! IP6T_SO_ORIGINAL_DST) or, in tests, any lookup given to the core.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use nix::sys::socket::{SockaddrIn, SockaddrIn6, getsockopt, sockopt};
use tokio::net::TcpStream;

/// Finds the original destination of an accepted connection.
pub trait OrigDst: Send + Sync + 'static {
    /// The address the client connected to before the capture redirected it.
    fn lookup(&self, stream: &TcpStream) -> io::Result<SocketAddr>;
}

/// Any function of the stream is a lookup (tests map a listener to fixed addresses).
impl<F> OrigDst for F
where
    F: Fn(&TcpStream) -> io::Result<SocketAddr> + Send + Sync + 'static,
{
    fn lookup(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        self(stream)
    }
}

/// The kernel's conntrack entry: the destination before iptables REDIRECT.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoOriginalDst;

impl OrigDst for SoOriginalDst {
    fn lookup(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        let ipv6 = match stream.local_addr()? {
            SocketAddr::V4(_) => false,
            SocketAddr::V6(addr) => addr.ip().to_ipv4_mapped().is_none(),
        };
        if ipv6 {
            let addr = getsockopt(stream, sockopt::Ip6tOriginalDst)?;
            Ok(SocketAddr::V6(SocketAddrV6::from(SockaddrIn6::from(addr))))
        } else {
            let addr = getsockopt(stream, sockopt::OriginalDst)?;
            Ok(SocketAddr::V4(SocketAddrV4::from(SockaddrIn::from(addr))))
        }
    }
}

/// TPROXY: a connection was accepted on its original destination address, except one that
/// arrived on the listener's own port. sluice-init still NAT-redirects the proxy's calls to its
/// own pod (an app calling its own service, over lo) to the inbound port in tproxy mode, so for
/// those the original destination is [`SoOriginalDst`]'s; a TPROXYed connection never has the
/// inbound port as its destination (the proxy's ports are not captured).
#[derive(Clone, Copy, Debug)]
pub struct Tproxy {
    /// The port of the transparent inbound listener.
    pub listener_port: u16,
}

impl OrigDst for Tproxy {
    fn lookup(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        let addr = stream.local_addr()?;
        if addr.port() == self.listener_port {
            return SoOriginalDst.lookup(stream);
        }
        Ok(match addr {
            SocketAddr::V6(v6) => v6
                .ip()
                .to_ipv4_mapped()
                .map_or(addr, |ip| SocketAddr::new(ip.into(), v6.port())),
            v4 => v4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closures_are_lookups() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let fixed = |_: &TcpStream| Ok("10.96.0.10:80".parse().unwrap());
        assert_eq!(
            fixed.lookup(&accepted).unwrap(),
            "10.96.0.10:80".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn tproxy_takes_the_local_address_unless_it_is_the_listener_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        // Accepted elsewhere than on the listener's port: TPROXYed to it, so where it was going.
        let elsewhere = Tproxy {
            listener_port: addr.port().wrapping_add(1),
        };
        assert_eq!(elsewhere.lookup(&accepted).unwrap(), addr);
        // On the listener's port: redirected to it, so the kernel's conntrack answer (whatever
        // it is here, without NAT).
        let on_listener = Tproxy {
            listener_port: addr.port(),
        };
        let kernel = |r: io::Result<SocketAddr>| r.map_err(|e| e.raw_os_error());
        assert_eq!(
            kernel(on_listener.lookup(&accepted)),
            kernel(SoOriginalDst.lookup(&accepted))
        );
    }
}
