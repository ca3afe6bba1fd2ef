//! `sluice-control`: the control plane, serving the admission webhook (`POST /inject`) and
//! the discovery stream of the cluster's mesh config to the proxies.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sluice_api::host::ClusterDomain;
use sluice_control::run::{self, Options};

/// The sluice control plane. The webhook (`--listen`): `POST /inject` (AdmissionReview v1),
/// `GET /healthz`, `GET /metrics` (every part's metrics). The discovery stream
/// (`--discovery-listen`): `POST /v1/discovery`, `GET /v1/proxies`, `GET /v1/rejected`,
/// `GET /healthz/ready` (200 once the cluster is synced), `GET /metrics`. Both are HTTPS
/// with the certificate, plain HTTP without one (local testing only). The certificate, key
/// and config are reloaded when their files change. Every flag has an environment form.
#[derive(Debug, Parser)]
#[command(name = "sluice-control", version, max_term_width = 100)]
struct Args {
    /// Address of the webhook.
    #[arg(
        long,
        env = "SLUICE_LISTEN",
        default_value = "0.0.0.0:9443",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Serving certificate chain (PEM), for the webhook and the discovery stream.
    #[arg(
        long,
        env = "SLUICE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// Private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "SLUICE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// The CA of the serving certificate (PEM), kept in the ConfigMap `discovery.caConfigMap`
    /// (key `ca.crt`) of every injected namespace for the proxies to trust the stream;
    /// re-read when it changes. Without it the ConfigMaps are made by hand.
    #[arg(
        long,
        env = "SLUICE_CA_CERT",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    ca_cert: Option<PathBuf>,
    /// Injector config (YAML: images, ports, resources, capture defaults, sidecar mode);
    /// built-in defaults when not given.
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the discovery stream.
    #[arg(
        long,
        env = "SLUICE_DISCOVERY_LISTEN",
        default_value = "0.0.0.0:15012",
        value_name = "ADDR"
    )]
    discovery_listen: SocketAddr,
    /// Kubeconfig of the cluster to watch; else `KUBECONFIG` (or `~/.kube/config`), else
    /// the in-cluster service account. Without any, the webhook runs alone.
    #[arg(long, env = "SLUICE_KUBECONFIG", value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The cluster's DNS domain.
    #[arg(
        long,
        env = "SLUICE_CLUSTER_DOMAIN",
        default_value_t = ClusterDomain::default(),
        value_name = "DOMAIN"
    )]
    cluster_domain: ClusterDomain,
    /// Log filter (`info`, `debug`, `sluice_control=debug`...).
    #[arg(
        long,
        env = "SLUICE_LOG_LEVEL",
        default_value = "info",
        value_name = "FILTER"
    )]
    log_level: String,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args)?;
    let options = Options {
        listen: args.listen,
        tls: args.tls_cert.zip(args.tls_key),
        ca_cert: args.ca_cert,
        config: args.config,
        discovery_listen: args.discovery_listen,
        kubeconfig: args.kubeconfig,
        cluster_domain: args.cluster_domain,
    };
    run::run(options, shutdown_signal()).await
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}
