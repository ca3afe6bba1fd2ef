//! The gateway's listeners follow the config: each version in force opens the ports its
//! Gateways declare and closes those no longer declared (connections already accepted
//! finish); a port that cannot be bound is reported and tried again at the next version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use sluice_api::model::edge::Transport;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Edge, Options, Shared};
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
    let shared = Arc::new(Shared {
        sidecar,
        options,
        certs: super::tls::Certs::default(),
    });
    let mut open = BTreeMap::new();
    loop {
        changes.mark_unchanged();
        sync(&shared, &mut open, &drain);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            () = drain.signaled() => break,
        }
    }
}

/// Opens and closes listeners so that the ports open are the ports of the config in force.
fn sync(shared: &Arc<Shared>, open: &mut BTreeMap<u16, Open>, drain: &drain::Watch) {
    let Some(snap) = shared.sidecar.store.current() else {
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
            let (shared, stopped, drain) = (shared.clone(), stopped.clone(), drain.clone());
            tokio::spawn(accept(l, shared, p.transport, stopped, drain));
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

/// Accepts a gateway port's connections until the port is closed (`stop`) or draining
/// starts, within the proxy's connection limit, each on its own task.
async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    transport: Transport,
    mut stop: watch::Receiver<()>,
    drain: drain::Watch,
) {
    let gates = shared.sidecar.gates.clone();
    let stopped = async move {
        let _ = stop.changed().await;
    };
    listener::accept_until(
        listener,
        drain,
        gates,
        stopped,
        move |stream, peer, drain| {
            let shared = shared.clone();
            async move {
                match transport {
                    Transport::Plain => plain(shared, stream, peer, &drain).await,
                    Transport::Tls => super::tls::serve(shared, stream, peer, &drain).await,
                }
            }
        },
    )
    .await;
}

/// HTTP/1.1 or HTTP/2 with prior knowledge, in plain text.
async fn plain(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, drain: &drain::Watch) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let edge = Arc::new(Edge::plain(local.port(), shared.options.trusted_proxies));
    let outbound = Outbound::edge(shared.sidecar.clone(), local, peer, edge);
    let gates = shared.sidecar.gates.clone();
    http::serve_with(
        stream,
        move |req| outbound.clone().handle(req),
        drain,
        &gates,
    )
    .await;
}
