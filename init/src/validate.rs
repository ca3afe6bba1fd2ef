//! `--validate`: after applying, proves that outbound capture works by listening on the outbound
//! port, connecting to an address that must be captured, and checking what arrives.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Capture, CaptureConfig};
use crate::error::{Error, Result};
use crate::orig_dst::orig_dst;
use crate::rules::Family;

/// How long a captured connection may take: it never leaves the namespace, so this is ample.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Documentation addresses (RFC 5737, RFC 3849): never real peers.
const TEST_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(203, 0, 113, 1),
];
const TEST_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
];

/// Checks every family that has a captured test destination; returns the destinations checked.
pub fn check(config: &CaptureConfig, families: &[Family]) -> Result<Vec<SocketAddr>> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    if uid == config.proxy_uid || gid == config.proxy_gid {
        return Err(Error::Validation(format!(
            "sluice-init runs as uid {uid} gid {gid}, the proxy's (--proxy-uid {}, --proxy-gid \
             {}), whose traffic is never captured; run it as root",
            config.proxy_uid, config.proxy_gid
        )));
    }
    let mut checked = vec![];
    for &family in families {
        let Some(destination) = test_destination(config, family) else {
            tracing::info!("{} not validated: nothing captured to test", family.name());
            continue;
        };
        match check_one(config.ports.outbound, destination) {
            Ok(()) => checked.push(destination),
            // Without a route the pod sends nothing of this family, so nothing is to capture.
            Err(Unchecked::NoRoute) => {
                tracing::info!("{} not validated: no route to {destination}", family.name());
            }
            Err(Unchecked::Failed(err)) => return Err(err),
        }
    }
    if checked.is_empty() {
        return Err(Error::Validation(
            "nothing could be checked: no captured destination to test, or no route to it \
             (routing comes before capture)"
                .to_owned(),
        ));
    }
    Ok(checked)
}

/// An address and port that the config captures outbound in `family`, if there is one.
pub fn test_destination(config: &CaptureConfig, family: Family) -> Option<SocketAddr> {
    let candidates: Vec<IpAddr> = match &config.outbound_cidrs {
        Capture::None => vec![],
        Capture::All => match family {
            Family::V4 => TEST_V4.iter().copied().map(IpAddr::from).collect(),
            Family::V6 => TEST_V6.iter().copied().map(IpAddr::from).collect(),
        },
        Capture::Only(cidrs) => cidrs
            .iter()
            .filter(|cidr| family.contains(cidr))
            .filter_map(host_in)
            .collect(),
    };
    let ip = candidates.into_iter().find(|ip| {
        !ip.is_loopback() && !config.exclude_outbound_cidrs.iter().any(|c| c.contains(ip))
    })?;
    let excluded = |port: &u16| config.exclude_outbound_ports.contains(port);
    let port = if config.include_outbound_ports.is_empty() {
        [80, 443, 8080]
            .into_iter()
            .chain(1..=65535)
            .find(|p| !excluded(p))
    } else {
        config
            .include_outbound_ports
            .iter()
            .copied()
            .find(|p| !excluded(p))
    }?;
    Some(SocketAddr::new(ip, port))
}

/// A host address inside `cidr`: the first one that is not the network address, or the only one.
fn host_in(cidr: &IpNet) -> Option<IpAddr> {
    cidr.hosts()
        .find(|ip| *ip != cidr.network())
        .or(Some(cidr.addr()))
}

/// Why a family was not validated.
enum Unchecked {
    /// No route to the test destination.
    NoRoute,
    Failed(Error),
}

impl From<Error> for Unchecked {
    fn from(err: Error) -> Self {
        Unchecked::Failed(err)
    }
}

fn check_one(port: u16, destination: SocketAddr) -> Result<(), Unchecked> {
    let listener = listen(port, destination).map_err(|err| {
        Error::Validation(format!(
            "cannot listen on the outbound port {port}: {err} (--validate must run before the \
             proxy starts)"
        ))
    })?;
    let client = Socket::new(
        Domain::for_address(destination),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(|err| Error::io("creating a test socket", err))?;
    if let Err(err) = client.connect_timeout(&destination.into(), TIMEOUT) {
        if err.kind() == io::ErrorKind::NetworkUnreachable {
            return Err(Unchecked::NoRoute);
        }
        return Err(Error::Validation(not_captured(port, destination, &err)).into());
    }
    let (accepted, _) = listener.accept().map_err(|_| {
        Error::Validation(format!(
            "the connection to {destination} was established, but not with the listener on \
             port {port}: it was not captured"
        ))
    })?;
    let original = orig_dst(&accepted).map_err(|err| {
        Error::Validation(format!(
            "the connection to {destination} arrived on port {port}, but its original \
             destination cannot be read: {err}"
        ))
    })?;
    if original != destination {
        return Err(Error::Validation(format!(
            "the connection to {destination} arrived on port {port} with original destination \
             {original}"
        ))
        .into());
    }
    tracing::info!("validated: a connection to {destination} was captured to port {port}");
    Ok(())
}

fn listen(port: u16, destination: SocketAddr) -> io::Result<Socket> {
    let any: IpAddr = match destination {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = Socket::new(
        Domain::for_address(destination),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if destination.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::new(any, port).into())?;
    socket.listen(8)?;
    // A timeout on accept, so a connection that went elsewhere fails instead of hanging.
    socket.set_read_timeout(Some(TIMEOUT))?;
    Ok(socket)
}

fn not_captured(port: u16, destination: SocketAddr, err: &io::Error) -> String {
    let why = match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            "it timed out instead of reaching the listener"
        }
        io::ErrorKind::ConnectionRefused => "it was refused, so it did not reach the listener",
        io::ErrorKind::HostUnreachable => "the host is unreachable, so it was not captured",
        _ => "it failed",
    };
    format!(
        "a connection to {destination} was not captured to port {port}: {why} ({err}). Check \
         that nothing in nat OUTPUT before SLUICE_OUTPUT accepts it"
    )
}

#[cfg(test)]
mod tests;
