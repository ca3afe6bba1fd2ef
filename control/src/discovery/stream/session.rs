//! One proxy's stream: push each version that changes its view, record its replies.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use sluice_api::model::Workload;

use super::proxies::{Connected, Nack};
use super::shared::View;
use super::wire::{Hello, Reply};
use super::{ClusterConfig, Discovery};
use sluice_body_lines::Lines;

/// Runs until the proxy goes away, the stream breaks or the server closes.
pub(super) async fn run(
    discovery: Arc<Discovery>,
    hello: Hello,
    mut replies: Lines<Body>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let connected = discovery.proxies.connect(&hello);
    let workload = Workload {
        namespace: hello.namespace.clone(),
        labels: hello.labels.clone(),
        cluster_domain: Default::default(),
    };
    tracing::info!(namespace = %hello.namespace, pod = %hello.pod_name, "proxy connected");
    let mut session = Session {
        discovery: discovery.clone(),
        workload,
        held: None,
        tx: &tx,
        connected: &connected,
    };
    let mut config = discovery.config.clone();
    let mut closing = discovery.closing.subscribe();
    let first = config.borrow_and_update().clone();
    let mut open = session.push(&first).await;
    while open {
        open = tokio::select! {
            changed = config.changed() => match changed {
                Ok(()) => {
                    let current = config.borrow_and_update().clone();
                    session.push(&current).await
                }
                Err(_) => false,
            },
            line = replies.next() => match line {
                Some(Ok(line)) => {
                    session.reply(&line);
                    true
                }
                Some(Err(e)) => {
                    tracing::debug!(pod = %hello.pod_name, error = %e, "discovery stream broke");
                    false
                }
                None => false,
            },
            () = tx.closed() => false,
            () = async { _ = closing.wait_for(|closing| *closing).await } => false,
        };
    }
    tracing::info!(namespace = %hello.namespace, pod = %hello.pod_name, "proxy disconnected");
}

struct Session<'a> {
    discovery: Arc<Discovery>,
    workload: Workload,
    /// The view last sent (none before the full state).
    held: Option<Arc<View>>,
    tx: &'a tokio::sync::mpsc::Sender<Bytes>,
    connected: &'a Connected,
}

impl Session<'_> {
    /// Sends what `config` changes for this proxy; false when the proxy is gone.
    async fn push(&mut self, config: &Arc<ClusterConfig>) -> bool {
        if !config.synced() {
            return true;
        }
        let (discovery, config, workload, held) = (
            self.discovery.clone(),
            config.clone(),
            self.workload.clone(),
            self.held.clone(),
        );
        // Picking a view walks every resource and a delta compares two views: keep them
        // off the async threads (each is done once for all proxies of the same kind).
        let updating = move || {
            let view = discovery.view_of(&config, &workload);
            let line = view.line_from(held.as_ref());
            (view, line)
        };
        let Ok((view, line)) = tokio::task::spawn_blocking(updating).await else {
            return false;
        };
        let full = self.held.is_none();
        let version = view.version();
        self.held = Some(view);
        let Some(line) = line else {
            return true;
        };
        if self.tx.send(line).await.is_err() {
            return false;
        }
        self.discovery.metrics.pushed(full);
        self.connected
            .update(|status| status.version_sent = Some(version));
        true
    }

    /// Records an ack or a nack.
    fn reply(&self, line: &[u8]) {
        match serde_json::from_slice::<Reply>(line) {
            Ok(Reply::Ack { ack }) => self.connected.update(|status| {
                status.version_acked = Some(ack);
                if status.last_nack.as_ref().is_some_and(|n| n.version <= ack) {
                    status.last_nack = None;
                }
            }),
            Ok(Reply::Nack { nack, error }) => {
                tracing::warn!(namespace = %self.workload.namespace, version = nack, %error, "a proxy rejected a version");
                self.discovery.metrics.nacks.inc();
                self.connected.update(|status| {
                    status.last_nack = Some(Nack {
                        version: nack,
                        error,
                    });
                });
            }
            Err(e) => tracing::warn!(
                namespace = %self.workload.namespace,
                error = %e,
                line = %String::from_utf8_lossy(line),
                "a proxy sent a line that is neither {{\"ack\":N}} nor {{\"nack\":N,\"error\":\"...\"}}; ignored"
            ),
        }
    }
}
