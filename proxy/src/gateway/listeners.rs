//! The gateway's listeners follow the config: each version in force opens the ports its
//! Gateways declare and closes those no longer declared (connections already accepted
//! finish); a port that cannot be bound is reported and tried again at the next version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use sluice_api::model::edge::Transport;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Options, edge};
use crate::http::{self, Outbound};
use crate::{Sidecar, drain, listener};

/// An open port: dropping it stops its accept loops.
struct Open {
    transport: Transport,
    _stop: watch::Sender<()>,
}

/// Serves the edge until draining starts.
pub async fn serve(sidecar: Arc<Sidecar>, options: Options, drain: drain::Watch) {
    let mut changes = sidecar.store.changes();
    let mut open = BTreeMap::new();
    loop {
        changes.mark_unchanged();
        sync(&sidecar, options, &mut open, &drain);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            () = drain.signaled() => break,
        }
    }
}

/// Opens and closes listeners so that the ports open are the ports of the config in force.
fn sync(
    sidecar: &Arc<Sidecar>,
    options: Options,
    open: &mut BTreeMap<u16, Open>,
    drain: &drain::Watch,
) {
    let Some(snap) = sidecar.store.current() else {
        return;
    };
    let wanted = &snap.model.edge.ports;
    open.retain(|port, o| {
        let keep = wanted.get(port).is_some_and(|p| p.transport == o.transport);
        if !keep {
            tracing::info!(port, "gateway port closed");
        }
        keep
    });
    for (&port, p) in wanted {
        if open.contains_key(&port) {
            continue;
        }
        let listeners = match listener::bind_all(port) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(
                    port,
                    "cannot listen on gateway port {port}: {e} (tried again at the next config change)"
                );
                continue;
            }
        };
        let (stop, stopped) = watch::channel(());
        for l in listeners {
            let (sidecar, stopped, drain) = (sidecar.clone(), stopped.clone(), drain.clone());
            tokio::spawn(accept(l, sidecar, options, p.transport, stopped, drain));
        }
        tracing::info!(port, transport = ?p.transport, "gateway port open");
        open.insert(
            port,
            Open {
                transport: p.transport,
                _stop: stop,
            },
        );
    }
}

async fn accept(
    listener: TcpListener,
    sidecar: Arc<Sidecar>,
    options: Options,
    transport: Transport,
    mut stop: watch::Receiver<()>,
    drain: drain::Watch,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
            () = drain.signaled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (sidecar, drain) = (sidecar.clone(), drain.clone());
                tokio::spawn(async move {
                    match transport {
                        Transport::Plain => plain(sidecar, stream, peer, options, &drain).await,
                        Transport::Tls => {
                            tracing::debug!(%peer, "TLS gateway ports are not served yet");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!("gateway accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// HTTP/1.1 or HTTP/2 with prior knowledge, in plain text.
async fn plain(
    sidecar: Arc<Sidecar>,
    stream: TcpStream,
    peer: SocketAddr,
    options: Options,
    drain: &drain::Watch,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let outbound = Outbound::edge(sidecar, local, peer, edge(local.port(), options));
    http::serve(stream, move |req| outbound.clone().handle(req), drain).await;
}
