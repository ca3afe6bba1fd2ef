//! The outbound listener's connections: find where each was going, look the
//! destination up in the registry, and hand it to HTTP or TCP by the port's
//! declared protocol or by detection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sluice_api::mesh_config::OutboundMode;
use sluice_api::model::policy::Outlier;
use sluice_api::model::{Protocol, Service, ServiceId, ServicePort};
use tokio::net::TcpStream;

use crate::balance::HashInput;
use crate::cluster::{Cluster, DEFAULT_TCP_IDLE_TIMEOUT, Limit, Permit};
use crate::config::Snapshot;
use crate::drain;
use crate::error::ProxyError;
use crate::http::{self, Outbound};
use crate::metrics::{self, Direction, TcpLabels};
use crate::protocol::{self, Prefixed, Sniff};
use crate::tls::{Alpn, Stream, Tls};
use crate::{Sidecar, destination, tcp};

/// Handles one captured outbound connection.
pub async fn handle(
    sidecar: Arc<Sidecar>,
    mut stream: TcpStream,
    peer: SocketAddr,
    drain: drain::Watch,
) {
    let dst = match sidecar.orig_dst.lookup(&stream) {
        Ok(dst) => dst,
        Err(e) => return tracing::warn!(%peer, "no original destination: {e}"),
    };
    if sidecar.is_own_listener(dst) {
        return tracing::warn!(%peer, %dst, "connection to the proxy's own port refused (it would loop)");
    }
    let Some(snap) = sidecar.store.current() else {
        return;
    };
    let Some(id) = snap.model.registry.by_destination(dst) else {
        return unknown(sidecar, snap, stream, dst, peer, drain).await;
    };
    let timeout = snap.model.mesh.protocol_detection_timeout;
    let protocol =
        service_port(snap.model.registry.get(id), dst).map_or(Protocol::Detect, |p| p.protocol);
    match protocol {
        Protocol::Http | Protocol::Http2 | Protocol::Grpc => {
            serve_http(sidecar, stream, BytesMut::new(), dst, peer, &drain).await
        }
        Protocol::Tcp => proxy_tcp(&sidecar, &snap, id, stream, dst, Handoff::default()).await,
        Protocol::Tls => {
            let found =
                protocol::detect(&mut stream, None::<std::future::Pending<_>>, timeout).await;
            let sni = match &found.sniff {
                Sniff::Tls { sni } => sni.clone(),
                _ => None,
            };
            let handoff = Handoff {
                client: found.client,
                sni,
                ..Handoff::default()
            };
            proxy_tcp(&sidecar, &snap, id, stream, dst, handoff).await;
        }
        Protocol::Detect => detect(sidecar, snap, id, stream, dst, peer, drain).await,
    }
}

/// An undeclared port: the upstream connection for TCP starts at once, and
/// whoever speaks first decides.
async fn detect(
    sidecar: Arc<Sidecar>,
    snap: Arc<Snapshot>,
    id: ServiceId,
    mut stream: TcpStream,
    dst: SocketAddr,
    peer: SocketAddr,
    drain: drain::Watch,
) {
    let timeout = snap.model.mesh.protocol_detection_timeout;
    let upstream = match tcp_upstream(&sidecar, &snap, id, dst, None).await {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::debug!(%dst, "no TCP endpoint to connect to while detecting: {e}");
            None
        }
    };
    // Connecting early serves server-first protocols; with TLS originated
    // the server cannot speak before the handshake, which waits for TCP.
    let connecting = upstream
        .as_ref()
        .filter(|u| matches!(u.cluster.tls, Tls::Plain))
        .map(|u| {
            let (addr, t, keepalive) = (u.addr, u.connect_timeout, u.cluster.connection.keepalive);
            async move {
                tcp::connect_upstream(addr, t, keepalive)
                    .await
                    .map_err(std::io::Error::other)
            }
        });
    let found = protocol::detect(&mut stream, connecting, timeout).await;
    if let (Some(u), Some(connected)) = (&upstream, &found.upstream) {
        u.record(&sidecar, connected.is_ok());
    }
    match found.sniff {
        Sniff::Http1 | Sniff::Http2 => {
            // The connection made for TCP is a good first pooled HTTP connection.
            if let (Some(u), Some(Ok(conn))) = (upstream, found.upstream) {
                let version = if found.sniff == Sniff::Http2 {
                    http::Version::Http2
                } else {
                    http::Version::Http1
                };
                let to = http::Upstream {
                    addr: u.addr,
                    version,
                    connect_timeout: u.connect_timeout,
                    cluster: &u.cluster,
                };
                sidecar
                    .outbound_pool
                    .adopt(&to, None, conn, Some(u.permit))
                    .await;
            }
            serve_http(sidecar, stream, found.client, dst, peer, &drain).await;
        }
        Sniff::Tls { sni } => {
            // Routed again by SNI: the early connection and its count go.
            drop((upstream, found.upstream));
            let handoff = Handoff {
                client: found.client,
                sni,
                ..Handoff::default()
            };
            proxy_tcp(&sidecar, &snap, id, stream, dst, handoff).await;
        }
        Sniff::Opaque | Sniff::NeedMore => {
            let handoff = Handoff {
                client: found.client,
                server: found.server,
                upstream: match (upstream, found.upstream) {
                    (Some(u), Some(Ok(conn))) => Some(Connected {
                        stream: Stream::Plain(conn),
                        permit: u.permit,
                        idle: u.cluster.connection.tcp_idle,
                    }),
                    _ => None,
                },
                sni: None,
            };
            proxy_tcp(&sidecar, &snap, id, stream, dst, handoff).await;
        }
    }
}

/// A destination outside the registry: passed through (ALLOW_ANY) or refused
/// (REGISTRY_ONLY: HTTP clients get a 502 that says why, TCP is closed).
async fn unknown(
    sidecar: Arc<Sidecar>,
    snap: Arc<Snapshot>,
    mut stream: TcpStream,
    dst: SocketAddr,
    peer: SocketAddr,
    drain: drain::Watch,
) {
    match snap.model.mesh.outbound {
        OutboundMode::AllowAny => {
            let labels = TcpLabels {
                direction: Direction::Outbound,
                destination_service: metrics::PASSTHROUGH.into(),
            };
            match tcp::connect(dst, snap.model.mesh.connect_timeout).await {
                Ok(upstream) => {
                    let idle = Some(DEFAULT_TCP_IDLE_TIMEOUT);
                    tcp::relay(&sidecar.metrics, labels, stream, upstream, (&[], &[]), idle).await
                }
                Err(e) => tracing::debug!(%dst, "passthrough: {e}"),
            }
        }
        OutboundMode::RegistryOnly => {
            let timeout = snap.model.mesh.protocol_detection_timeout;
            let found =
                protocol::detect(&mut stream, None::<std::future::Pending<_>>, timeout).await;
            if matches!(found.sniff, Sniff::Http1 | Sniff::Http2) {
                return serve_http(sidecar, stream, found.client, dst, peer, &drain).await;
            }
            sidecar.metrics.refused("tcp");
            tracing::info!(%peer, "{}", ProxyError::UnknownDestination(dst));
        }
    }
}

async fn serve_http(
    sidecar: Arc<Sidecar>,
    stream: TcpStream,
    client: BytesMut,
    dst: SocketAddr,
    peer: SocketAddr,
    drain: &drain::Watch,
) {
    let gates = sidecar.gates.clone();
    let outbound = Outbound::new(sidecar, dst, peer);
    http::serve_with(
        Prefixed::new(client, stream),
        move |req| outbound.clone().handle(req),
        drain,
        &gates,
    )
    .await;
}

/// What protocol detection leaves for TCP proxying.
#[derive(Debug, Default)]
struct Handoff {
    client: BytesMut,
    server: BytesMut,
    /// The upstream connection made while detecting.
    upstream: Option<Connected>,
    sni: Option<String>,
}

/// An upstream TCP connection, with its place in the destination's
/// connection count and the destination's idle timeout.
#[derive(Debug)]
struct Connected {
    stream: Stream,
    permit: Permit,
    idle: Option<Duration>,
}

/// Proxies a TCP (or TLS) connection to the destination its routes choose.
async fn proxy_tcp(
    sidecar: &Arc<Sidecar>,
    snap: &Snapshot,
    id: ServiceId,
    stream: TcpStream,
    dst: SocketAddr,
    handoff: Handoff,
) {
    let host = snap.model.registry.get(id).host.clone();
    let labels = TcpLabels {
        direction: Direction::Outbound,
        destination_service: host,
    };
    // The permit counts the connection against `maxConnections` until it ends.
    let Connected {
        stream: upstream,
        permit: _permit,
        idle,
    } = match handoff.upstream {
        Some(connected) => connected,
        None => match connect_tcp(sidecar, snap, id, dst, handoff.sni.as_deref()).await {
            Ok(connected) => connected,
            Err(e) => return tracing::info!(%dst, "TCP connection closed: {e}"),
        },
    };
    tcp::relay(
        &sidecar.metrics,
        labels,
        stream,
        upstream,
        (&handoff.client, &handoff.server),
        idle,
    )
    .await;
}

/// Connects to the endpoint the tcp/tls routes choose, within the
/// destination's `maxConnections`, with TLS when it originates TLS.
async fn connect_tcp(
    sidecar: &Sidecar,
    snap: &Snapshot,
    id: ServiceId,
    dst: SocketAddr,
    sni: Option<&str>,
) -> Result<Connected, ProxyError> {
    let upstream = tcp_upstream(sidecar, snap, id, dst, sni).await?;
    let (addr, tls) = (upstream.addr, &upstream.cluster.tls);
    let connected = match tls {
        Tls::Unavailable(reason) => Err(ProxyError::TlsUnavailable {
            destination: upstream.cluster.name.to_string(),
            reason: reason.clone(),
        }),
        _ => {
            let keepalive = upstream.cluster.connection.keepalive;
            tcp::connect_upstream(addr, upstream.connect_timeout, keepalive).await
        }
    };
    let stream = match (connected, tls) {
        (Ok(tcp), Tls::Originate(o)) => o
            .connect(tcp, addr, Alpn::None)
            .await
            .map(|s| Stream::Tls(Box::new(s)))
            .map_err(|source| ProxyError::Tls { addr, source }),
        (connected, _) => connected.map(Stream::Plain),
    };
    if !matches!(&stream, Err(ProxyError::TlsUnavailable { .. })) {
        upstream.record(sidecar, stream.is_ok());
    }
    Ok(Connected {
        stream: stream?,
        idle: upstream.cluster.connection.tcp_idle,
        permit: upstream.permit,
    })
}

/// The endpoint a TCP connection goes to, counted against its destination's
/// `maxConnections` (closed, and counted, beyond it).
struct TcpUpstream {
    addr: SocketAddr,
    connect_timeout: std::time::Duration,
    cluster: Arc<Cluster>,
    permit: Permit,
    /// Outlier detection's policy and the destination's endpoints, when it has one.
    outlier: Option<(Outlier, Vec<SocketAddr>)>,
}

impl TcpUpstream {
    /// Records whether connecting worked, for outlier detection.
    fn record(&self, sidecar: &Sidecar, connected: bool) {
        if let Some((policy, peers)) = &self.outlier {
            // A connection made counts as a success, a failed one as a gateway error.
            let status = connected.then_some(200);
            sidecar
                .outliers
                .record(self.addr, status, policy, || peers.clone());
        }
    }
}

async fn tcp_upstream(
    sidecar: &Sidecar,
    snap: &Snapshot,
    id: ServiceId,
    dst: SocketAddr,
    sni: Option<&str>,
) -> Result<TcpUpstream, ProxyError> {
    let routed = tcp::route(snap, id, dst, sni);
    let dest = destination::resolve(snap, &routed, dst)?;
    let endpoint = dest.pick(sidecar, dst, &HashInput::default()).await?;
    let permit = dest.cluster.admit(Limit::Connections).map_err(|o| {
        sidecar.metrics.overflow(&o.cluster, o.limit);
        ProxyError::Overflow(o)
    })?;
    Ok(TcpUpstream {
        addr: endpoint.addr,
        connect_timeout: dest.connect_timeout(snap),
        cluster: dest.cluster.clone(),
        permit,
        outlier: dest.settings.outlier.clone().map(|p| (p, dest.peers())),
    })
}

/// The port of `svc` a connection to `dst` is for: by number, or for an
/// endpoint address, the port whose endpoint port it is.
fn service_port(svc: &Service, dst: SocketAddr) -> Option<&ServicePort> {
    svc.port(dst.port()).or_else(|| {
        svc.ports.iter().find(|p| {
            svc.endpoints.iter().any(|e| {
                e.address == sluice_api::model::EndpointAddress::Ip(dst.ip().to_canonical())
                    && svc.endpoint_port(e, p) == dst.port()
            })
        })
    })
}
