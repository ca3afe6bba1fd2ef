//! The inbound listener's connections: forwarded to the app in this pod on
//! the port they were sent to; HTTP is detected and counted per request.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::http::{self, Inbound};
use crate::metrics::{Direction, TcpLabels};
use crate::protocol::{self, Prefixed, Sniff};
use crate::{Sidecar, drain, tcp};

/// Handles one captured inbound connection.
pub async fn handle(
    sidecar: Arc<Sidecar>,
    mut stream: TcpStream,
    peer: SocketAddr,
    drain: drain::Watch,
) {
    let dst = match sidecar.inbound_orig_dst.lookup(&stream) {
        Ok(dst) => dst,
        Err(e) => return tracing::warn!(%peer, "no original destination: {e}"),
    };
    if sidecar.is_own_listener(dst) {
        return tracing::warn!(%peer, %dst, "connection to the proxy's own port refused (it would loop)");
    }
    let (detect_timeout, connect_timeout) = match sidecar.store.current() {
        Some(snap) => (
            snap.model.mesh.protocol_detection_timeout,
            snap.model.mesh.connect_timeout,
        ),
        None => return,
    };
    let (app_addr, from) = sidecar.app_addr(dst, peer);
    let connecting = async move {
        tcp::connect_app(app_addr, from, connect_timeout)
            .await
            .map_err(std::io::Error::other)
    };
    let found = protocol::detect(&mut stream, Some(connecting), detect_timeout).await;
    if matches!(found.sniff, Sniff::Http1 | Sniff::Http2) {
        if let Some(Ok(app)) = found.upstream {
            let version = if found.sniff == Sniff::Http2 {
                http::Version::Http2
            } else {
                http::Version::Http1
            };
            let to = http::Upstream {
                addr: app_addr,
                version,
                connect_timeout,
                cluster: &sidecar.app,
            };
            sidecar.inbound_pool.adopt(&to, from, app, None).await;
        }
        let gates = sidecar.gates.clone();
        let inbound = Inbound::new(sidecar, app_addr, from);
        return http::serve_with(
            Prefixed::new(found.client, stream),
            move |req| inbound.clone().handle(req),
            &drain,
            &gates,
        )
        .await;
    }
    let app = match found.upstream {
        Some(Ok(app)) => app,
        _ => match tcp::connect_app(app_addr, from, connect_timeout).await {
            Ok(app) => app,
            Err(e) => return tracing::info!(%peer, "inbound connection closed: {e}"),
        },
    };
    let labels = TcpLabels {
        direction: Direction::Inbound,
        destination_service: format!("{}:{}", sidecar.identity.workload, dst.port()),
    };
    tcp::relay(
        &sidecar.metrics,
        labels,
        stream,
        app,
        (&found.client, &found.server),
        sidecar.app.connection.tcp_idle,
    )
    .await;
}
