//! sluice-proxy: the transparent L4/L7 sidecar proxy of the sluice mesh.
//!
//! A captured connection arrives at a [`listener`], its original destination
//! comes from [`orig_dst`], the [`config`] snapshot in force says which
//! service it is for, [`protocol`] decides HTTP or TCP, and [`http`] or
//! [`tcp`] route it (VirtualService, DestinationRule) to an endpoint chosen by
//! [`balance`]. [`metrics`] records it; [`admin`] shows it; [`drain`] ends it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod balance;
pub mod cluster;
pub mod config;
pub mod destination;
pub mod dns;
pub mod drain;
pub mod error;
pub mod gateway;
pub mod gray_guard;
pub mod http;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod orig_dst;
pub mod podinfo;
pub mod probe;
pub mod propagate;
pub mod protocol;
pub mod route;
pub mod tcp;
pub mod tls;
pub mod workers;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::model::Workload;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Store;
use crate::metrics::Metrics;
use crate::orig_dst::OrigDst;

/// The proxy's ports.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Captured outbound traffic.
    pub outbound: u16,
    /// Captured inbound traffic.
    pub inbound: u16,
    /// Admin, on loopback.
    pub admin: u16,
    /// `/healthz/ready`.
    pub health: u16,
    /// Prometheus `/metrics`.
    pub metrics: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            outbound: 15001,
            inbound: 15006,
            admin: 15000,
            health: 15021,
            metrics: 15090,
        }
    }
}

/// Who this proxy is, as metrics name it.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The workload's `app` label, else `unknown`.
    pub workload: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `version` label, else empty.
    pub version: String,
}

impl Identity {
    /// The identity of a workload.
    pub fn of(workload: &Workload) -> Identity {
        let label = |k: &str| workload.labels.get(k).cloned();
        Identity {
            workload: label("app")
                .or_else(|| label("app.kubernetes.io/name"))
                .unwrap_or_else(|| "unknown".into()),
            namespace: workload.namespace.clone(),
            version: label("version").unwrap_or_default(),
        }
    }

    /// The identity of a workload in the pod `pod_name`: without an `app` label, the pod's
    /// name names the workload rather than `unknown`.
    pub fn of_pod(workload: &Workload, pod_name: Option<&str>) -> Identity {
        let mut identity = Identity::of(workload);
        if let Some(pod) = pod_name.filter(|p| !p.is_empty() && identity.workload == "unknown") {
            identity.workload = pod.to_string();
        }
        identity
    }
}

/// Where the proxy's config comes from.
#[expect(
    clippy::large_enum_variant,
    reason = "built once at start; boxing would only add noise"
)]
#[derive(Clone, Debug)]
pub enum Source {
    /// A YAML file or a directory of them, watched (`--config`).
    Files(PathBuf),
    /// The control plane's discovery stream (`--discovery`).
    Discovery {
        /// The control plane.
        target: config::discovery::Target,
        /// Who this proxy is.
        hello: config::discovery::Hello,
    },
}

/// Everything `run` needs, from flags and environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where config comes from.
    pub source: Source,
    /// The workload this proxy serves.
    pub workload: Workload,
    /// Ports.
    pub ports: Ports,
    /// Longest wait for in-flight work at shutdown.
    pub drain_timeout: Duration,
    /// One JSON line per request on stdout.
    pub access_log: bool,
    /// The pod's name (metrics name the workload by it when it has no `app` label).
    pub pod_name: Option<String>,
    /// The app's kubelet probes, served at `/app-health/...` on the health port.
    pub app_probes: probe::AppProbes,
    /// How inbound connections are captured.
    pub mode: listener::Mode,
    /// tproxy mode: SO_MARK of the connections to the app made from the client's address
    /// (sluice-init's `--tproxy-mark`).
    pub tproxy_mark: u32,
    /// Gateway mode: the edge's settings.
    pub gateway: gateway::Options,
    /// Inbound ports delivered to the app on loopback rather than on the pod IP
    /// (`--app-loopback-ports`, from the pod annotation `traffic.sluice.dev/app-loopback-ports`).
    pub app_loopback_ports: Vec<u16>,
    /// Limits on the client-facing side.
    pub limits: limits::ClientLimits,
}

/// What the connections of a running proxy share.
pub struct Sidecar {
    /// The config in force.
    pub store: Arc<Store>,
    /// Where captured outbound connections were going.
    pub orig_dst: Arc<dyn OrigDst>,
    /// Where captured inbound connections were going (the same lookup, except in tproxy mode).
    pub inbound_orig_dst: Arc<dyn OrigDst>,
    /// tproxy mode: the mark of connections to the app from each client's own address;
    /// `None`: they come from 127.0.0.6 (see [`tcp::connect_app`]).
    pub tproxy_mark: Option<u32>,
    /// Inbound ports whose traffic goes to the app on loopback (see [`Sidecar::app_addr`]).
    pub app_loopback_ports: Vec<u16>,
    /// The client-facing limits and the connections and requests they count.
    pub gates: Arc<limits::Gates>,
    /// Connections to mesh endpoints.
    pub outbound_pool: http::Pool,
    /// Connections to the app in this pod.
    pub inbound_pool: http::Pool,
    /// The app in this pod as a destination (no limits).
    pub app: Arc<cluster::Cluster>,
    /// Request copies in flight (bounded across workers).
    pub mirrors: http::Mirrors,
    /// Metrics and the access log.
    pub metrics: Arc<Metrics>,
    /// Resolver for DNS endpoints.
    pub dns: Arc<dns::Resolver>,
    /// Endpoints ejected for failing, by address (outlives config versions; one for all
    /// workers).
    pub outliers: Arc<balance::Outliers>,
    /// Who this proxy is.
    pub identity: Identity,
    /// Its ports.
    pub ports: Ports,
    /// Headers carried from inbound requests to the app's outbound ones (one for all
    /// workers: the app's outbound call may land on another worker than its inbound request).
    pub propagation: Arc<propagate::Table>,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("identity", &self.identity)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    /// A sidecar serving the config of `store`.
    pub fn new(
        store: Arc<Store>,
        orig_dst: Arc<dyn OrigDst>,
        metrics: Arc<Metrics>,
        identity: Identity,
        ports: Ports,
    ) -> Sidecar {
        Sidecar {
            store,
            inbound_orig_dst: orig_dst.clone(),
            orig_dst,
            tproxy_mark: None,
            app_loopback_ports: Vec::new(),
            gates: limits::Gates::new(limits::ClientLimits::default(), metrics.limits.clone()),
            outbound_pool: http::Pool::new(http::Dial::Direct, metrics.clone()),
            inbound_pool: http::Pool::new(http::Dial::App, metrics.clone()),
            app: Arc::new(cluster::Cluster::unlimited(cluster::ClusterName {
                service: identity.workload.clone(),
                subset: String::new(),
                port: 0,
            })),
            mirrors: http::Mirrors::default(),
            metrics,
            dns: Arc::new(dns::Resolver::system()),
            outliers: Arc::default(),
            identity,
            ports,
            propagation: Arc::default(),
        }
    }

    /// The sidecar of one more worker thread ([`workers`]): everything shared but the
    /// upstream connection pools, which are the worker's own (no lock between workers on the
    /// request path, and a connection is driven by the thread that uses it).
    pub fn worker(&self) -> Sidecar {
        Sidecar {
            store: self.store.clone(),
            orig_dst: self.orig_dst.clone(),
            inbound_orig_dst: self.inbound_orig_dst.clone(),
            tproxy_mark: self.tproxy_mark,
            app_loopback_ports: self.app_loopback_ports.clone(),
            gates: self.gates.clone(),
            outbound_pool: http::Pool::new(http::Dial::Direct, self.metrics.clone()),
            inbound_pool: http::Pool::new(http::Dial::App, self.metrics.clone()),
            app: self.app.clone(),
            mirrors: self.mirrors.clone(),
            metrics: self.metrics.clone(),
            dns: self.dns.clone(),
            outliers: self.outliers.clone(),
            identity: self.identity.clone(),
            ports: self.ports,
            propagation: self.propagation.clone(),
        }
    }

    /// Where a connection to the app for the inbound client `peer` comes from: the client's
    /// own address in tproxy mode.
    pub fn original_src(&self, peer: SocketAddr) -> Option<tcp::OriginalSrc> {
        self.tproxy_mark.map(|mark| tcp::OriginalSrc {
            ip: peer.ip(),
            mark,
        })
    }

    /// Where an inbound connection to `dst` (its original destination) reaches the app, and
    /// from where: `dst` itself, from the client's address in tproxy mode; or, for a port the
    /// pod asked to be delivered on loopback, the loopback address on that port, from
    /// loopback. Nothing else reaches an app bound only to loopback.
    pub fn app_addr(
        &self,
        dst: SocketAddr,
        peer: SocketAddr,
    ) -> (SocketAddr, Option<tcp::OriginalSrc>) {
        if self.app_loopback_ports.contains(&dst.port()) {
            let loopback: std::net::IpAddr = if dst.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            return (SocketAddr::new(loopback, dst.port()), None);
        }
        (dst, self.original_src(peer))
    }

    /// True for a destination that is one of the proxy's capture ports: such a
    /// connection would loop through the proxy forever.
    pub fn is_own_listener(&self, dst: SocketAddr) -> bool {
        dst.port() == self.ports.outbound || dst.port() == self.ports.inbound
    }
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port could not be bound.
    #[error(
        "cannot listen on {what} port {port}: {source} (is another proxy running in this pod?)"
    )]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The port.
        port: u16,
        /// The error.
        source: io::Error,
    },
    /// The tproxy inbound listener could not be made transparent.
    #[error(
        "cannot listen transparently (IP_TRANSPARENT) on inbound port {port}: {source} \
         (tproxy mode needs CAP_NET_ADMIN: injection adds it when the capture mode is tproxy)"
    )]
    Transparent {
        /// The port.
        port: u16,
        /// The error.
        source: io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(io::Error),
    /// The worker threads could not be started.
    #[error("cannot start the worker threads (--concurrency): {0}")]
    Workers(io::Error),
}

fn bind<T>(what: &'static str, port: u16, result: io::Result<T>) -> Result<T, Error> {
    result.map_err(|source| Error::Bind { what, port, source })
}

/// Starts following the config source: files are loaded once before returning (so a good
/// config serves at once), then watched; the control plane's stream runs in the background.
async fn follow(settings: &Settings, store: &Arc<Store>) {
    let workload = settings.workload.clone();
    match &settings.source {
        Source::Files(path) => {
            let (first, at, loading) = (store.clone(), path.clone(), workload.clone());
            let _ = tokio::task::spawn_blocking(move || first.reload(&at, &loading)).await;
            tokio::spawn(config::watch(path.clone(), workload, store.clone()));
        }
        Source::Discovery { target, hello } => {
            tokio::spawn(config::discovery::follow(
                target.clone(),
                hello.clone(),
                workload,
                store.clone(),
            ));
        }
    }
}

/// Runs the proxy until SIGTERM, SIGINT or `POST /quitquitquit` on the admin
/// port, then drains (readiness answers 503 from then on) and returns.
pub async fn run(
    settings: Settings,
    set_level: admin::SetLevel,
    level: String,
) -> Result<(), Error> {
    run_workers(settings, 1, set_level, level).await
}

/// [`run`], a sidecar's captured connections served by `workers` threads of their own when
/// there are two or more (see [`workers`]); else on the caller's runtime. The admin, health
/// and metrics ports, the config and the drain are served once, on the caller's runtime.
pub async fn run_workers(
    settings: Settings,
    workers: usize,
    set_level: admin::SetLevel,
    level: String,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new(settings.access_log));
    let store = Arc::new(match settings.mode {
        listener::Mode::Gateway => Store::gateway(metrics.config.clone()),
        listener::Mode::Redirect | listener::Mode::Tproxy => Store::new(metrics.config.clone()),
    });
    follow(&settings, &store).await;

    let ports = settings.ports;
    let (drain_signal, watch) = drain::channel();
    let quit = Arc::new(tokio::sync::Notify::new());
    let admin_listener = bind(
        "admin",
        ports.admin,
        listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, ports.admin))),
    )?;
    let admin = Arc::new(admin::Admin::new(
        store.clone(),
        set_level,
        level,
        quit.clone(),
    ));
    tokio::spawn(admin::serve_admin(admin_listener, admin));
    for l in bind("health", ports.health, listener::bind_all(ports.health))? {
        tokio::spawn(admin::serve_health(
            l,
            store.clone(),
            drain_signal.observe(),
            Arc::new(settings.app_probes.clone()),
        ));
    }
    for l in bind("metrics", ports.metrics, listener::bind_all(ports.metrics))? {
        tokio::spawn(admin::serve_metrics(l, metrics.clone()));
    }

    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    tokio::select! {
        () = store.ready() => {}
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
        () = quit.notified() => return Ok(()),
    }

    let identity = Identity::of_pod(&settings.workload, settings.pod_name.as_deref());
    if settings.mode == listener::Mode::Gateway {
        let mut edge = Sidecar::new(
            store,
            Arc::new(orig_dst::SoOriginalDst),
            metrics,
            identity,
            ports,
        );
        edge.gates = limits::Gates::new(settings.limits.clone(), edge.metrics.limits.clone());
        tokio::spawn(gateway::serve(Arc::new(edge), settings.gateway, watch));
        tracing::info!(mode = ?settings.mode, "serving the edge");
    } else {
        serve_sidecar(&settings, store, metrics, identity, watch, workers)?;
    }

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = quit.notified() => {}
    }
    tracing::info!(timeout = ?settings.drain_timeout, "draining: no new connections; finishing in-flight requests");
    if drain_signal.drain(settings.drain_timeout).await {
        tracing::info!("drained");
    } else {
        tracing::warn!("drain timeout passed with connections still open; closing them");
    }
    Ok(())
}

/// Opens the capture listeners of a sidecar.
fn serve_sidecar(
    settings: &Settings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    identity: Identity,
    watch: drain::Watch,
    workers: usize,
) -> Result<(), Error> {
    let ports = settings.ports;
    let mut sidecar = Sidecar::new(
        store,
        Arc::new(orig_dst::SoOriginalDst),
        metrics,
        identity,
        ports,
    );
    let transparent = settings.mode == listener::Mode::Tproxy;
    if transparent {
        sidecar.inbound_orig_dst = Arc::new(orig_dst::Tproxy {
            listener_port: ports.inbound,
        });
        sidecar.tproxy_mark = Some(settings.tproxy_mark);
    }
    sidecar.app_loopback_ports = settings.app_loopback_ports.clone();
    sidecar.gates = limits::Gates::new(settings.limits.clone(), sidecar.metrics.limits.clone());
    let sidecar = Arc::new(sidecar);
    let outbound = bind(
        "outbound",
        ports.outbound,
        listener::bind_all(ports.outbound),
    )?;
    let inbound = match listener::bind_all_transparent(ports.inbound, transparent) {
        Err(e) if transparent && e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(Error::Transparent {
                port: ports.inbound,
                source: e,
            });
        }
        result => bind("inbound", ports.inbound, result)?,
    };
    if workers >= 2 {
        workers::spawn(workers, &sidecar, outbound, inbound, &watch).map_err(Error::Workers)?;
        tracing::info!(
            outbound = ports.outbound,
            inbound = ports.inbound,
            mode = ?settings.mode,
            workers,
            "listening"
        );
        return Ok(());
    }
    let s = sidecar.clone();
    tokio::spawn(listener::serve(
        outbound,
        watch.clone(),
        sidecar.gates.clone(),
        move |stream, peer, drain| listener::outbound::handle(s.clone(), stream, peer, drain),
    ));
    let s = sidecar.clone();
    tokio::spawn(listener::serve(
        inbound,
        watch,
        sidecar.gates.clone(),
        move |stream, peer, drain| listener::inbound::handle(s.clone(), stream, peer, drain),
    ));
    tracing::info!(
        outbound = ports.outbound,
        inbound = ports.inbound,
        mode = ?settings.mode,
        "listening"
    );
    Ok(())
}
