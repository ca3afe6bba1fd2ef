//! `PASSTHROUGH` servers: the TLS connection is forwarded as it is to the destination of the
//! first `tls` rule (by `sniHosts` and port) of the VirtualService bound to the server's
//! Gateway for the SNI.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_api::model::edge::{EdgeServer, ServerHost};
use tokio::net::TcpStream;

use crate::balance::HashInput;
use crate::config::Snapshot;
use crate::metrics::{Direction, TcpLabels};
use crate::{Sidecar, destination, tcp};

/// A ClientHello on a passthrough server.
pub struct Hello<'a> {
    /// The server its SNI chose.
    pub server: &'a EdgeServer,
    /// The server host that accepted the SNI.
    pub server_host: &'a ServerHost,
    /// The SNI, lower case.
    pub sni: &'a str,
    /// The gateway's address the client connected to.
    pub local: SocketAddr,
    /// The bytes read so far (the ClientHello), replayed upstream.
    pub client: &'a [u8],
}

/// Forwards the connection; closes it when nothing routes it.
pub async fn forward(sidecar: &Arc<Sidecar>, snap: &Snapshot, hello: Hello<'_>, stream: TcpStream) {
    let Hello {
        server,
        server_host,
        sni,
        local,
        client,
    } = hello;
    let vhost = snap
        .model
        .edge
        .routes
        .get(&server.gateway)
        .and_then(|t| t.lookup(sni))
        .filter(|v| server_host.admits_namespace(v.name.split_once('/').map_or("", |(ns, _)| ns)));
    let Some(vhost) = vhost else {
        return tracing::debug!(sni, "passthrough: no VirtualService for this SNI");
    };
    let Some((target, _, _)) = vhost
        .tls
        .iter()
        .find(|r| r.matches(local.ip(), local.port(), Some(sni)))
        .and_then(|r| r.route.pick())
    else {
        return tracing::debug!(sni, vs = %vhost.name, "passthrough: no tls rule matches");
    };
    let result = async {
        let dest = destination::resolve(snap, target, local)?;
        let endpoint = dest.pick(sidecar, local, &HashInput::default()).await?;
        let keepalive = dest.cluster.connection.keepalive;
        let upstream =
            tcp::connect_upstream(endpoint.addr, dest.connect_timeout(snap), keepalive).await?;
        Ok::<_, crate::error::ProxyError>((upstream, dest.cluster.connection.tcp_idle))
    }
    .await;
    let (upstream, idle) = match result {
        Ok(connected) => connected,
        Err(e) => return tracing::info!(sni, "passthrough: {e}"),
    };
    let labels = TcpLabels {
        direction: Direction::Outbound,
        destination_service: target.host.clone(),
    };
    tcp::relay(
        &sidecar.metrics,
        labels,
        stream,
        upstream,
        (client, &[]),
        idle,
    )
    .await;
}
