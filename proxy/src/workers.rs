//! Thread-per-core: a sidecar's captured connections served by N worker threads, each with a
//! single-threaded runtime and upstream connection pools of its own (as Envoy's and pingora's
//! workers), so that nothing on the request path is shared between threads but the config
//! (read lock-free), the limits' counters and the metrics. The workers accept on the same
//! listening sockets (one socket, N epoll registrations, as nginx's workers without
//! `reuseport`): whichever thread is idle takes the next connection, which then stays on it.

use std::io;
use std::sync::Arc;
use std::thread;

use tokio::net::TcpListener;

use crate::{Sidecar, drain, listener};

/// Starts `workers` threads serving the outbound and inbound listeners of `sidecar`, until
/// `watch` says drain; each keeps its connections to their end (the process exits after the
/// drain).
pub fn spawn(
    workers: usize,
    sidecar: &Sidecar,
    outbound: Vec<TcpListener>,
    inbound: Vec<TcpListener>,
    watch: &drain::Watch,
) -> io::Result<()> {
    let outbound = into_std(outbound)?;
    let inbound = into_std(inbound)?;
    for n in 0..workers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sidecar = Arc::new(sidecar.worker());
        let (outbound, inbound) = (try_clone(&outbound)?, try_clone(&inbound)?);
        let watch = watch.clone();
        thread::Builder::new()
            .name(format!("sluice-worker-{n}"))
            .spawn(move || {
                runtime.block_on(async move {
                    if let Err(e) = serve(&sidecar, outbound, inbound, watch).await {
                        tracing::error!(worker = n, "worker cannot listen: {e}");
                        return;
                    }
                    // Drained: no more connections are accepted; those open finish here.
                    std::future::pending::<()>().await;
                });
            })?;
    }
    tracing::info!(workers, "serving on worker threads");
    Ok(())
}

/// Accepts on this worker's registrations of the listening sockets until draining starts.
async fn serve(
    sidecar: &Arc<Sidecar>,
    outbound: Vec<std::net::TcpListener>,
    inbound: Vec<std::net::TcpListener>,
    watch: drain::Watch,
) -> io::Result<()> {
    let outbound = from_std(outbound)?;
    let inbound = from_std(inbound)?;
    let s = sidecar.clone();
    let outbound = listener::serve(
        outbound,
        watch.clone(),
        sidecar.gates.clone(),
        move |stream, peer, drain| listener::outbound::handle(s.clone(), stream, peer, drain),
    );
    let s = sidecar.clone();
    let inbound = listener::serve(
        inbound,
        watch,
        sidecar.gates.clone(),
        move |stream, peer, drain| listener::inbound::handle(s.clone(), stream, peer, drain),
    );
    tokio::join!(outbound, inbound);
    Ok(())
}

fn into_std(listeners: Vec<TcpListener>) -> io::Result<Vec<std::net::TcpListener>> {
    listeners.into_iter().map(TcpListener::into_std).collect()
}

fn try_clone(listeners: &[std::net::TcpListener]) -> io::Result<Vec<std::net::TcpListener>> {
    listeners
        .iter()
        .map(std::net::TcpListener::try_clone)
        .collect()
}

/// Registers listening sockets with this thread's runtime (they are non-blocking already).
fn from_std(listeners: Vec<std::net::TcpListener>) -> io::Result<Vec<TcpListener>> {
    listeners.into_iter().map(TcpListener::from_std).collect()
}
