//! `sluice-control`: the control plane's admission webhook (`POST /inject`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sluice_control::InjectConfig;
use sluice_control::webhook::{self, CertStore, Injector};

/// Mutating admission webhook that adds sluice-init and sluice-proxy to pods. Serves HTTPS:
/// `POST /inject` (AdmissionReview v1), `GET /healthz`, `GET /metrics`. The certificate,
/// key and config are reloaded when their files change. Every flag has an environment form.
#[derive(Debug, Parser)]
#[command(name = "sluice-control", version, max_term_width = 100)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "SLUICE_LISTEN",
        default_value = "0.0.0.0:9443",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Serving certificate chain (PEM).
    #[arg(long, env = "SLUICE_TLS_CERT", value_name = "FILE")]
    tls_cert: PathBuf,
    /// Private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SLUICE_TLS_KEY", value_name = "FILE")]
    tls_key: PathBuf,
    /// Injector config (YAML: images, ports, resources, capture defaults, sidecar mode);
    /// built-in defaults when not given.
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
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
    let config = match &args.config {
        Some(path) => InjectConfig::load(path)?,
        None => InjectConfig::default(),
    };
    let certs = CertStore::load(&args.tls_cert, &args.tls_key)?;
    tracing::info!(
        listen = %args.listen,
        config = %serde_json::to_string(&config)?,
        "starting sluice-control"
    );
    let injector = Arc::new(Injector::new(config, args.config.clone(), certs));
    let _watcher =
        webhook::watch(injector.clone()).context("cannot watch the cert and config files")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    webhook::serve(listener, injector, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
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
