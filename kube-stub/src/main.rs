//! `sluice-kube-stub`: serves the Kubernetes API stand-in with the objects of some YAML files
//! until killed, and writes a kubeconfig for kubectl (or sluice-control) to reach it.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sluice_kube_stub::{Catalog, IstioVersion, Options, StubServer};

/// A Kubernetes API server stand-in (list/watch over HTTPS, in memory).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port; the kubeconfig names the real one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write the kubeconfig.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// The bearer token clients must send.
    #[arg(long, env = "SLUICE_KUBE_STUB_TOKEN")]
    token: String,
    /// networking.istio.io versions to serve (comma-separated; empty: none).
    #[arg(long, value_delimiter = ',', default_value = "v1,v1beta1,v1alpha3")]
    istio_versions: Vec<String>,
    /// Do not serve sluice.dev/v1alpha1 (MeshConfig, ReleasePolicy).
    #[arg(long)]
    no_meshconfig: bool,
    /// More names (IP addresses or DNS names) for the serving certificate.
    #[arg(long = "extra-name")]
    extra_names: Vec<String>,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 60)]
    bookmark_interval: u64,
    /// YAML files of objects to serve (applied in order).
    files: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let versions = args
        .istio_versions
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<IstioVersion>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)
        .context("--istio-versions")?;
    let mut catalog = Catalog::kubernetes().with_istio(&versions);
    if !args.no_meshconfig {
        catalog = catalog.with_meshconfig().with_release_policy();
    }
    let options = Options {
        listen: args.listen,
        token: args.token,
        catalog,
        extra_names: args.extra_names,
        bookmark_interval: Duration::from_secs(args.bookmark_interval.max(1)),
        ..Options::default()
    };
    let server = StubServer::start(options).await?;
    for file in &args.files {
        let yaml =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let objects = server
            .apply_yaml(&yaml)
            .with_context(|| format!("{}", file.display()))?;
        tracing::info!(file = %file.display(), objects = objects.len(), "loaded");
    }
    server
        .write_kubeconfig(&args.kubeconfig_out)
        .with_context(|| format!("writing {}", args.kubeconfig_out.display()))?;
    println!(
        "serving {} (kubeconfig {})",
        server.url(),
        args.kubeconfig_out.display()
    );
    shutdown_signal().await?;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
