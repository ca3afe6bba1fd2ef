//! The capture tests' client: one TCP connection that sends a token line, optionally from a
//! bound source address and with SO_MARK + IP_TRANSPARENT (as the proxy connects in tproxy
//! mode). `sluice-testapp connect` runs it as a process, for clients of another uid.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, OwnedFd};

use anyhow::Context as _;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage, bind, connect, setsockopt,
    socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike as _};

/// Where and how to connect.
#[derive(Clone, Copy, Debug)]
pub struct TokenClient {
    /// Bind to this source address first.
    pub bind: Option<SocketAddr>,
    /// Set SO_MARK to this and IP_TRANSPARENT.
    pub mark: Option<u32>,
}

impl TokenClient {
    /// Connects to `target` and sends `token` followed by a newline.
    pub fn send(self, target: SocketAddr, token: &str) -> anyhow::Result<()> {
        let fd = tcp_socket(target)?;
        if let Some(mark) = self.mark {
            setsockopt(&fd, sockopt::Mark, &mark)?;
            setsockopt(&fd, sockopt::IpTransparent, &true)?;
        }
        if let Some(source) = self.bind {
            bind(fd.as_raw_fd(), &SockaddrStorage::from(source))
                .with_context(|| format!("bind {source}"))?;
        }
        // connect() gives up after this instead of minutes of SYN retries.
        setsockopt(&fd, sockopt::SendTimeout, &TimeVal::seconds(5))?;
        connect(fd.as_raw_fd(), &SockaddrStorage::from(target))
            .with_context(|| format!("connect to {target}"))?;
        let mut stream = std::net::TcpStream::from(fd);
        writeln!(stream, "{token}")?;
        Ok(())
    }
}

/// A blocking TCP socket of `target`'s address family.
pub fn tcp_socket(target: SocketAddr) -> anyhow::Result<OwnedFd> {
    let family = match target {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    Ok(socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )?)
}
