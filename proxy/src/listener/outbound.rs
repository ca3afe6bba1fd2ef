//! The outbound listener's connections: find where each was going, look the
//! destination up in the registry, and hand it to HTTP or TCP by the port's
//! declared protocol or by detection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use sluice_api::mesh_config::OutboundMode;
use sluice_api::model::{Protocol, Service, ServiceId, ServicePort};
use tokio::net::TcpStream;

use crate::balance::HashInput;
use crate::config::Snapshot;
use crate::drain;
use crate::error::ProxyError;
use crate::http::{self, Outbound};
use crate::metrics::{Direction, TcpLabels};
use crate::protocol::{self, Prefixed, Sniff};
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
    let upstream = match tcp_endpoint(&sidecar, &snap, id, dst, None).await {
        Ok((addr, connect_timeout)) => Some((addr, connect_timeout)),
        Err(e) => {
            tracing::debug!(%dst, "no TCP endpoint to connect to while detecting: {e}");
            None
        }
    };
    let connecting = upstream
        .map(|(addr, t)| async move { tcp::connect(addr, t).await.map_err(std::io::Error::other) });
    let found = protocol::detect(&mut stream, connecting, timeout).await;
    match found.sniff {
        Sniff::Http1 | Sniff::Http2 => {
            // The connection made for TCP is a good first pooled HTTP connection.
            if let (Some((addr, _)), Some(Ok(conn))) = (upstream, found.upstream) {
                let version = if found.sniff == Sniff::Http2 {
                    http::Version::Http2
                } else {
                    http::Version::Http1
                };
                sidecar.outbound_pool.adopt(addr, version, conn).await;
            }
            serve_http(sidecar, stream, found.client, dst, peer, &drain).await;
        }
        Sniff::Tls { sni } => {
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
                upstream: found.upstream.and_then(Result::ok),
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
                destination_service: dst.to_string(),
            };
            match tcp::connect(dst, snap.model.mesh.connect_timeout).await {
                Ok(upstream) => {
                    tcp::relay(&sidecar.metrics, labels, stream, upstream, &[], &[]).await
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
    let outbound = Outbound::new(sidecar, dst, peer);
    http::serve(
        Prefixed::new(client, stream),
        move |req| outbound.clone().handle(req),
        drain,
    )
    .await;
}

/// What protocol detection leaves for TCP proxying.
#[derive(Debug, Default)]
struct Handoff {
    client: BytesMut,
    server: BytesMut,
    upstream: Option<TcpStream>,
    sni: Option<String>,
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
    let upstream = match handoff.upstream {
        Some(upstream) => upstream,
        None => {
            let connected = match tcp_endpoint(sidecar, snap, id, dst, handoff.sni.as_deref()).await
            {
                Ok((addr, timeout)) => tcp::connect(addr, timeout).await,
                Err(e) => Err(e),
            };
            match connected {
                Ok(upstream) => upstream,
                Err(e) => return tracing::info!(%dst, "TCP connection closed: {e}"),
            }
        }
    };
    tcp::relay(
        &sidecar.metrics,
        labels,
        stream,
        upstream,
        &handoff.client,
        &handoff.server,
    )
    .await;
}

/// The endpoint a TCP connection goes to, by tcp/tls routes, and the connect timeout.
async fn tcp_endpoint(
    sidecar: &Sidecar,
    snap: &Snapshot,
    id: ServiceId,
    dst: SocketAddr,
    sni: Option<&str>,
) -> Result<(SocketAddr, std::time::Duration), ProxyError> {
    let routed = tcp::route(snap, id, dst, sni);
    let dest = destination::resolve(snap, &routed, dst)?;
    let endpoint = dest.pick(sidecar, dst, &HashInput::default()).await?;
    Ok((endpoint.addr, dest.connect_timeout(snap)))
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
