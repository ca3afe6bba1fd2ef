//! The `sluice-control` process: the webhook first, then discovery and its stream, both
//! served with the webhook's certificate (or both plain HTTP without one).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sluice_api::host::ClusterDomain;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::InjectConfig;
use crate::ca_bundle::{self, CaBundle};
use crate::discovery::{self, state, stream, translate};
use crate::webhook::{self, CertStore, Injector};

/// What `sluice-control` serves and where it finds the cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// The webhook's address.
    pub listen: SocketAddr,
    /// The serving certificate and its key (PEM); plain HTTP on both ports without them.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The CA of the certificate, kept in each injected namespace's CA ConfigMap.
    pub ca_cert: Option<PathBuf>,
    /// The injector config file; built-in defaults without it.
    pub config: Option<PathBuf>,
    /// The discovery stream's address.
    pub discovery_listen: SocketAddr,
    /// The kubeconfig; else as kubectl finds a cluster.
    pub kubeconfig: Option<PathBuf>,
    /// The cluster's DNS domain.
    pub cluster_domain: ClusterDomain,
}

/// Runs the control plane until `shutdown` completes. Fails only when the config or the
/// certificate cannot be loaded or an address cannot be listened on: the Kubernetes API
/// being missing or unreachable only keeps discovery from syncing (the stream's readiness).
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = match &options.config {
        Some(path) => InjectConfig::load(path)?,
        None => InjectConfig::default(),
    };
    let certs = match &options.tls {
        Some((cert, key)) => Some(CertStore::load(cert, key)?),
        None => None,
    };
    tracing::info!(
        listen = %options.listen,
        discovery_listen = %options.discovery_listen,
        tls = certs.is_some(),
        config = %serde_json::to_string(&config)?,
        "starting sluice-control"
    );
    let config_at_start = config.clone();
    let injector = Arc::new(Injector::new(config, options.config.clone(), certs));
    let _watcher =
        webhook::watch(injector.clone()).context("cannot watch the cert and config files")?;
    let webhook_listener = bind(options.listen, "--listen").await?;
    let discovery_listener = bind(options.discovery_listen, "--discovery-listen").await?;

    let (stop, stopping) = watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let webhook_task = tokio::spawn(webhook::serve(
        webhook_listener,
        injector.clone(),
        stopped(),
    ));

    let (publisher, subscriber) = state::channel();
    let watchers = start_discovery(&options, &injector, publisher).await;
    let ca_bundle = watchers
        .as_ref()
        .and_then(|watchers| start_ca_bundle(&options, &config_at_start, &injector, watchers));
    let stream_task = watchers.as_ref().map(|_| {
        let discovery = stream::Discovery::new(subscriber);
        injector.expose(discovery.metrics());
        tokio::spawn(stream::serve(
            discovery_listener,
            discovery,
            injector.certs(),
            stopped(),
        ))
    });

    shutdown.await;
    stop.send_replace(true);
    webhook_task.await.context("the webhook task failed")??;
    if let Some(task) = stream_task {
        task.await.context("the discovery stream task failed")??;
    }
    drop(ca_bundle);
    drop(watchers);
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{flag} {addr}: cannot listen"))
}

/// Starts the watchers, exposing their metrics on the webhook's `/metrics`; none (logged
/// once) when no cluster can be found or no client made for it.
async fn start_discovery(
    options: &Options,
    injector: &Injector,
    publisher: state::Publisher,
) -> Option<discovery::watch::Discovery> {
    let config = match discovery::watch::client_config(options.kubeconfig.as_deref()).await {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(error = %e, "no cluster to watch: serving the webhook alone, without discovery");
            return None;
        }
    };
    let settings = discovery::watch::Settings {
        translate: translate::Settings {
            cluster_domain: options.cluster_domain.clone(),
        },
        ..discovery::watch::Settings::default()
    };
    match discovery::watch::Discovery::start(config, settings, publisher) {
        Ok(watchers) => {
            injector.expose(watchers.metrics());
            Some(watchers)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot make a Kubernetes client: serving the webhook alone, without discovery");
            None
        }
    }
}

/// Starts keeping the CA ConfigMap the injector config names in every injected namespace,
/// when `--ca-cert` is given and injected proxies use discovery over TLS; none otherwise
/// (logged when the proxies need a ConfigMap nobody keeps). The name is the one of the
/// config at start.
fn start_ca_bundle(
    options: &Options,
    config: &InjectConfig,
    injector: &Injector,
    watchers: &discovery::watch::Discovery,
) -> Option<CaBundle> {
    let discovery = config.discovery.as_ref().filter(|d| !d.insecure)?;
    let Some(ca_cert) = &options.ca_cert else {
        tracing::warn!(configmap = %discovery.ca_config_map, "no --ca-cert: the CA ConfigMap of each injected namespace is not kept by the control plane and must be made by hand");
        return None;
    };
    let settings = ca_bundle::Settings::new(discovery.ca_config_map.clone(), ca_cert.clone());
    match CaBundle::start(watchers.client(), watchers.workloads(), settings) {
        Ok(bundle) => {
            injector.expose(bundle.metrics());
            Some(bundle)
        }
        Err(e) => {
            tracing::warn!(file = %ca_cert.display(), error = %e, "cannot watch the CA file: the CA ConfigMaps are not kept");
            None
        }
    }
}
