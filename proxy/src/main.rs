//! sluice-proxy: flags and environment, logging, the runtime; the proxy itself is the library.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sluice_api::host::ClusterDomain;
use sluice_api::model::Workload;
use sluice_proxy::config::discovery::{Hello, Target};
use sluice_proxy::limits::ClientLimits;
use sluice_proxy::listener::{self, DEFAULT_TPROXY_MARK, Mode};
use sluice_proxy::probe::AppProbes;
use sluice_proxy::{Ports, Settings, Source, logging, podinfo};

/// The sluice sidecar proxy: routes a pod's captured traffic by Istio's
/// VirtualService, DestinationRule and ServiceEntry rules.
#[derive(Debug, Parser)]
#[command(name = "sluice-proxy", version, max_term_width = 100)]
#[command(subcommand_negates_reqs = true)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["config", "discovery"]))]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config: a YAML file or a directory of them (watched; changes apply atomically).
    #[arg(long, env = "SLUICE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Config from the control plane instead: `https://HOST:PORT` (with `--discovery-ca`), or
    /// `http://HOST:PORT` for plain text in local tests.
    #[arg(long, env = "SLUICE_DISCOVERY", value_name = "URL")]
    discovery: Option<String>,
    /// The PEM certificate(s) that signed the control plane's certificate (for `https://`).
    #[arg(
        long,
        env = "SLUICE_DISCOVERY_CA",
        value_name = "FILE",
        conflicts_with = "config"
    )]
    discovery_ca: Option<PathBuf>,
    /// Namespace of the workload; short host names resolve against it.
    #[arg(long, env = "SLUICE_NAMESPACE", default_value = "default")]
    namespace: String,
    /// The cluster's DNS domain: short host names (`reviews`, `reviews.shop`) expand to
    /// `reviews.shop.svc.DOMAIN`.
    #[arg(long, env = "SLUICE_CLUSTER_DOMAIN", value_name = "DOMAIN", default_value_t = ClusterDomain::default())]
    cluster_domain: ClusterDomain,
    /// Labels of the workload (`app=web,version=v1`), for sourceLabels matches and metrics.
    #[arg(long, env = "SLUICE_LABELS", value_name = "K=V,...", default_value = "", value_parser = podinfo::parse_flag_labels)]
    labels: BTreeMap<String, String>,
    /// The downward-API labels file (`key="value"` per line); `--labels` adds and overrides.
    #[arg(long, env = "SLUICE_LABELS_FILE", value_name = "PATH")]
    labels_file: Option<PathBuf>,
    /// Name of the pod (names the workload in metrics when it has no `app` label, and the
    /// proxy to the control plane).
    #[arg(long, env = "SLUICE_POD_NAME")]
    pod_name: Option<String>,
    /// Service account of the pod (told to the control plane; informational until the mesh
    /// has identities).
    #[arg(long, env = "SLUICE_SERVICE_ACCOUNT")]
    service_account: Option<String>,
    /// The app's rewritten kubelet probes (JSON: path → original action), served on the health port.
    #[arg(
        long,
        env = "SLUICE_APP_PROBES",
        value_name = "JSON",
        default_value = ""
    )]
    app_probes: String,
    /// Inbound capture mode of sluice-init: `tproxy` listens with IP_TRANSPARENT (CAP_NET_ADMIN);
    /// `gateway`: no capture, an edge proxy serving the Gateways that select `--labels`.
    #[arg(long, env = "SLUICE_MODE", value_enum, default_value_t = Mode::Redirect)]
    mode: Mode,
    /// tproxy mode: firewall mark of the proxy's transparent connections to the app, which
    /// keep the client's address (sluice-init's `--tproxy-mark`: decimal or 0x hex, not 0).
    #[arg(
        long,
        env = "SLUICE_TPROXY_MARK",
        default_value_t = DEFAULT_TPROXY_MARK,
        value_name = "MARK",
        value_parser = listener::parse_mark
    )]
    tproxy_mark: u32,
    /// Inbound ports delivered to the app on 127.0.0.1 (`::1`) instead of the pod IP, for apps
    /// that listen on loopback only (`8080,9090`; injection sets it from the pod annotation
    /// `traffic.sluice.dev/app-loopback-ports`). Other ports never reach loopback.
    #[arg(
        long,
        env = "SLUICE_APP_LOOPBACK_PORTS",
        value_name = "PORT,...",
        value_delimiter = ','
    )]
    app_loopback_ports: Vec<u16>,
    #[command(flatten)]
    limits: LimitArgs,
    /// IP address of the pod (told to the control plane; inbound uses each connection's
    /// original destination).
    #[arg(long, env = "SLUICE_POD_IP")]
    pod_ip: Option<std::net::IpAddr>,
    /// Port for captured outbound traffic.
    #[arg(long, env = "SLUICE_OUTBOUND_PORT", default_value_t = 15001)]
    outbound_port: u16,
    /// Port for captured inbound traffic.
    #[arg(long, env = "SLUICE_INBOUND_PORT", default_value_t = 15006)]
    inbound_port: u16,
    /// Admin port on 127.0.0.1 (`/config_dump`, `/logging`, `POST /logging?level=`).
    #[arg(long, env = "SLUICE_ADMIN_PORT", default_value_t = 15000)]
    admin_port: u16,
    /// Health port (`/healthz/ready`).
    #[arg(long, env = "SLUICE_HEALTH_PORT", default_value_t = 15021)]
    health_port: u16,
    /// Prometheus port (`/metrics`).
    #[arg(long, env = "SLUICE_METRICS_PORT", default_value_t = 15090)]
    metrics_port: u16,
    /// Worker threads. 1: one single-threaded runtime for everything. N >= 2: N worker threads
    /// with a single-threaded runtime and upstream pools each, accepting on the same listeners
    /// (thread-per-core), beside the thread serving admin, health, metrics and config; an
    /// edge gateway (`--mode gateway`) runs on one multi-threaded runtime of N threads instead.
    #[arg(long, env = "SLUICE_CONCURRENCY", default_value_t = 2)]
    concurrency: usize,
    /// Longest wait for in-flight requests after SIGTERM, e.g. `5s`, `500ms`.
    #[arg(long, env = "SLUICE_DRAIN_TIMEOUT", default_value = "5s", value_parser = duration)]
    drain_timeout: Duration,
    /// Log filter: `info`, `debug`, `sluice_proxy=trace`... (changeable at run time on the admin port).
    #[arg(long, env = "SLUICE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Gateway mode: proxies in front of the gateway whose `x-forwarded-for` entries are
    /// trusted to name the client (Istio's `numTrustedProxies`).
    #[arg(
        long,
        env = "SLUICE_NUM_TRUSTED_PROXIES",
        default_value_t = 0,
        value_name = "N"
    )]
    num_trusted_proxies: u32,
    /// Gateway mode: where the Secrets named by `credentialName` are mounted, one directory
    /// each (`DIR/NAME/tls.crt`, `tls.key`, `ca.crt`).
    #[arg(long, env = "SLUICE_CREDENTIALS_DIR", value_name = "DIR", default_value = sluice_proxy::gateway::DEFAULT_CREDENTIALS_DIR)]
    credentials_dir: PathBuf,
    /// Write one JSON access log line per request to stdout.
    #[arg(long, env = "SLUICE_ACCESS_LOG")]
    access_log: bool,
}

/// The client-facing limits (see `sluice_proxy::limits::ClientLimits` for what each means;
/// the defaults are its defaults).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Client-facing limits")]
struct LimitArgs {
    /// Longest time to receive a request's headers (HTTP/1.1; also bounds a keep-alive
    /// connection waiting for its next request).
    #[arg(long, env = "SLUICE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
    header_read_timeout: Duration,
    /// A client connection with no request in flight for this long is closed (HTTP/2: GOAWAY).
    #[arg(long, env = "SLUICE_CLIENT_IDLE_TIMEOUT", default_value = "1h", value_parser = duration)]
    client_idle_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    #[arg(long, env = "SLUICE_BODY_READ_TIMEOUT", default_value = "5m", value_parser = duration)]
    body_read_timeout: Duration,
    /// Most bytes of a request body kept for retries as it streams upstream; a larger body
    /// is sent once, not retried.
    #[arg(long, env = "SLUICE_RETRY_BUFFER_BYTES", default_value_t = 64 * 1024)]
    retry_buffer_bytes: usize,
    /// Largest request head in bytes (and HTTP/2 header list size).
    #[arg(long, env = "SLUICE_MAX_HEADER_BYTES", default_value_t = 60 * 1024)]
    max_header_bytes: u32,
    /// Most header fields in a request.
    #[arg(long, env = "SLUICE_MAX_HEADERS", default_value_t = 100)]
    max_headers: usize,
    /// HTTP/2: most concurrent streams per client connection.
    #[arg(long, env = "SLUICE_H2_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    h2_max_concurrent_streams: u32,
    /// HTTP/2: initial stream flow-control window, bytes.
    #[arg(long, env = "SLUICE_H2_STREAM_WINDOW", default_value_t = 1024 * 1024)]
    h2_stream_window: u32,
    /// HTTP/2: initial connection flow-control window, bytes.
    #[arg(long, env = "SLUICE_H2_CONNECTION_WINDOW", default_value_t = 4 * 1024 * 1024)]
    h2_connection_window: u32,
    /// Most client connections across the listeners; more are closed at once.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 100_000)]
    max_connections: usize,
    /// Most requests in flight; more are answered 503 at once (load shedding).
    #[arg(long, env = "SLUICE_MAX_REQUESTS", default_value_t = 10_000)]
    max_requests: usize,
    /// An upgraded (WebSocket) connection idle for this long is closed.
    #[arg(long, env = "SLUICE_TUNNEL_IDLE_TIMEOUT", default_value = "1h", value_parser = duration)]
    tunnel_idle_timeout: Duration,
}

impl LimitArgs {
    fn limits(&self) -> ClientLimits {
        ClientLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.client_idle_timeout,
            body_read_timeout: self.body_read_timeout,
            retry_buffer_bytes: self.retry_buffer_bytes,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
            h2_stream_window: self.h2_stream_window,
            h2_connection_window: self.h2_connection_window,
            max_connections: self.max_connections,
            max_requests: self.max_requests,
            tunnel_idle_timeout: self.tunnel_idle_timeout,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Wait until the proxy in this pod is ready (classic mode's postStart hook): exit 0 once
    /// `/healthz/ready` answers 200, exit 1 after the timeout.
    Wait {
        /// Longest wait, e.g. `60s`.
        #[arg(long, default_value = "60s", value_parser = duration)]
        timeout: Duration,
        /// The proxy's health port.
        #[arg(long, env = "SLUICE_HEALTH_PORT", default_value_t = 15021)]
        health_port: u16,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn duration(text: &str) -> Result<Duration, String> {
    sluice_api::duration::Duration::parse(text).map(|d| d.get())
}

/// `--config`, or `--discovery` with who this proxy is.
fn source(args: &Args, workload: &Workload) -> anyhow::Result<Source> {
    if let Some(path) = &args.config {
        return Ok(Source::Files(path.clone()));
    }
    let url = args
        .discovery
        .as_deref()
        .context("give --config PATH or --discovery URL")?;
    let target = Target::new(url, args.discovery_ca.as_deref())?;
    let hello = Hello {
        namespace: workload.namespace.clone(),
        pod_name: args.pod_name.clone().unwrap_or_default(),
        labels: workload.labels.clone(),
        pod_ip: args.pod_ip.map(|ip| ip.to_string()),
        service_account: args.service_account.clone(),
    };
    Ok(Source::Discovery { target, hello })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // A sidecar runs one single-threaded runtime per worker (no work stealing, no lock between
    // workers on the request path); the edge gateway, whose listeners follow its config, one
    // multi-threaded runtime.
    let gateway_threads = match (args.mode, args.concurrency) {
        (Mode::Gateway, n) if n >= 2 => Some(n),
        _ => None,
    };
    let workers = if gateway_threads.is_some() {
        1
    } else {
        args.concurrency.max(1)
    };
    let mut builder = match gateway_threads {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("building the runtime")?;
    if let Some(Command::Wait {
        timeout,
        health_port,
    }) = args.command
    {
        runtime
            .block_on(sluice_proxy::admin::wait_ready(health_port, timeout))
            .map_err(anyhow::Error::msg)?;
        return Ok(());
    }
    let labels = podinfo::workload_labels(args.labels_file.as_deref(), &args.labels)?;
    let app_probes = AppProbes::parse(&args.app_probes, args.pod_ip)?;
    let set_level = logging::init(&args.log_level, matches!(args.log_format, LogFormat::Json))
        .map_err(anyhow::Error::msg)?;
    let workload = Workload {
        namespace: args.namespace.clone(),
        labels,
        cluster_domain: args.cluster_domain.clone(),
    };
    let settings = Settings {
        source: source(&args, &workload)?,
        workload,
        ports: Ports {
            outbound: args.outbound_port,
            inbound: args.inbound_port,
            admin: args.admin_port,
            health: args.health_port,
            metrics: args.metrics_port,
        },
        drain_timeout: args.drain_timeout,
        access_log: args.access_log,
        pod_name: args.pod_name.clone(),
        app_probes,
        mode: args.mode,
        tproxy_mark: args.tproxy_mark,
        gateway: sluice_proxy::gateway::Options {
            trusted_proxies: args.num_trusted_proxies,
            credentials_dir: args.credentials_dir.clone(),
        },
        app_loopback_ports: args.app_loopback_ports.clone(),
        limits: args.limits.limits(),
    };
    tracing::info!(?args, labels = ?settings.workload.labels, probes = settings.app_probes.len(), "starting");
    runtime.block_on(sluice_proxy::run_workers(
        settings,
        workers,
        set_level,
        args.log_level,
    ))?;
    Ok(())
}
