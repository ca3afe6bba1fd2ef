//! Where an accepted, captured connection was originally going: SO_ORIGINAL_DST for IPv4,
//! IP6T_SO_ORIGINAL_DST for IPv6 (the conntrack entry's destination before REDIRECT).

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

use nix::sys::socket::{SockaddrIn, SockaddrIn6, getsockopt, sockopt};

/// The original destination of an accepted TCP connection (std, tokio or socket2 stream).
///
/// Works for IPv4 and IPv6 sockets, including IPv4 connections accepted on a dual-stack IPv6
/// socket (v4-mapped). Fails (ENOENT) for a connection conntrack does not know.
pub fn orig_dst<S: AsFd>(stream: &S) -> io::Result<SocketAddr> {
    let local = socket2::SockRef::from(stream)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
    let ipv6 = match local {
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
