//! `sluice-bench-control`: the control plane benchmark (issue 10). It writes a large cluster
//! (10,000 Services, 50,000 endpoints and their Pods by default) for the real
//! `sluice-kube-stub`, runs the real `sluice-control` against it, opens 1,000 simulated
//! proxy streams, then times edits made through the API until every stream has them
//! (push latency), one proxy's full resync, and the control plane's CPU seconds and
//! resident memory; last, one real `sluice-proxy --discovery` per namespace kind and its
//! resident memory. Prints a markdown report; `bench/control/run` builds and runs it.

mod client;
mod cluster;
mod process;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use sluice_proxy::config::discovery::{Hello, Target};

use client::{Markers, SharedLog};
use cluster::Shape;
use process::Process;
use report::{Phase, Report};

/// The control plane benchmark: a large cluster, the real sluice-control, many simulated
/// proxies.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Where sluice-kube-stub, sluice-control and sluice-proxy are (a release build).
    #[arg(long)]
    bin_dir: PathBuf,
    /// Services in the cluster.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Endpoints (ready Pods) per Service.
    #[arg(long, default_value_t = 5)]
    endpoints: usize,
    /// Namespaces the Services are spread over (at least 2).
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Simulated proxies.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Namespaces the simulated proxies are spread over (`bench-0` sees every Service,
    /// `bench-1` the public ones, the others the public ones and their own).
    #[arg(long, default_value_t = 4)]
    client_namespaces: usize,
    /// Simulated proxies connecting at once.
    #[arg(long, default_value_t = 50)]
    connect_batch: usize,
    /// Edits of each kind (VirtualService edit, endpoint added) timed.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Full resyncs of one proxy timed.
    #[arg(long, default_value_t = 10)]
    resyncs: usize,
    /// Where the cluster's files, the logs and the kubeconfig go.
    #[arg(long)]
    work_dir: PathBuf,
    /// Where to write the report (markdown) besides stdout.
    #[arg(long)]
    report: Option<PathBuf>,
}

const TOKEN: &str = "sluice-bench";
/// The longest wait for one edit to reach every client.
const PUSH_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Interrupted, the run is dropped: its processes are killed.
    tokio::select! {
        result = run(args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.namespaces < 2 || args.client_namespaces < 1 {
        bail!("--namespaces must be at least 2, --client-namespaces at least 1");
    }
    std::fs::create_dir_all(&args.work_dir)?;
    let shape = Shape {
        services: args.services,
        endpoints_per_service: args.endpoints,
        namespaces: args.namespaces,
    };
    let mut report = Report::new(&shape, args.clients, args.client_namespaces);

    // The cluster, served by the stub.
    let started = Instant::now();
    let (files, objects) = cluster::write(&shape, &args.work_dir)?;
    eprintln!("wrote {objects} objects in {:?}", started.elapsed());
    let (stub, stub_load) = start_stub(&args, &files)?;
    report.stub_objects = objects;
    report.stub_load = stub_load;
    eprintln!("the stub serves them after {stub_load:?}");
    let kubeconfig = args.work_dir.join("kubeconfig");

    // The control plane, until its first full sync.
    let [webhook, discovery] = process::free_addresses(2)?[..] else {
        bail!("two free ports");
    };
    let (mut control, _) = Process::start(
        "sluice-control",
        &args.bin_dir.join("sluice-control"),
        &[
            format!("--listen={webhook}"),
            format!("--discovery-listen={discovery}"),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--log-level=info".into(),
        ],
        &args.work_dir,
        false,
    )?;
    let mut phase = Phase::start(&control)?;
    let synced = process::wait_ready(
        &mut control,
        discovery,
        "/healthz/ready",
        Duration::from_secs(600),
    )?;
    report.first_sync = synced;
    report.phases.push(phase.end("first full sync", &control)?);
    eprintln!("sluice-control synced after {synced:?}");

    // The simulated proxies.
    let target = Arc::new(Target::new(&format!("http://{discovery}"), None)?);
    let markers = Arc::new(Markers::default());
    let logs = connect_clients(&args, &target, &markers, &mut control, &mut report).await?;

    // Edits, each awaited at every client.
    let kube = kube_client(&kubeconfig).await?;
    phase = Phase::start(&control)?;
    for round in 0..args.rounds {
        let prefix = format!("/edit-{round}");
        let (index, marker) = markers.add(&format!("\"{prefix}\""));
        let at = edit_virtual_service(&kube, &shape, &prefix).await?;
        wait_all(&marker, args.clients, &mut control).await?;
        report.vs_edits.push(latencies(&logs, index, at));

        let ip = cluster::added_ip(round);
        let (index, marker) = markers.add(&format!("\"{ip}\""));
        let at = add_endpoint(&kube, &shape, round, ip).await?;
        wait_all(&marker, args.clients, &mut control).await?;
        report.endpoint_adds.push(latencies(&logs, index, at));
        eprintln!(
            "round {round}: VirtualService edit p99 {:?}, endpoint added p99 {:?}",
            report::percentile(report.vs_edits.last().map_or(&[][..], |v| v), 0.99),
            report::percentile(report.endpoint_adds.last().map_or(&[][..], |v| v), 0.99),
        );
    }
    report
        .phases
        .push(phase.end(&format!("{} edits pushed", 2 * args.rounds), &control)?);

    // Full resyncs of one proxy while the others stay connected.
    phase = Phase::start(&control)?;
    for _ in 0..args.resyncs {
        let hello = hello(cluster::SEES_ALL, "resync");
        let resync = client::resync(&target, &hello)
            .await
            .map_err(anyhow::Error::msg)?;
        report.resyncs.push(resync);
    }
    report
        .phases
        .push(phase.end(&format!("{} resyncs", args.resyncs), &control)?);
    report.control_rss = control.rss()?;
    report.control_cpu = control.cpu()?;
    report.proxies_listed = count_proxies(discovery)?;
    let ended = logs
        .iter()
        .filter(|l| client::lock(l).ended.is_some())
        .count();
    report.clients_ended = ended;

    // Real proxies, one per kind of namespace.
    for (namespace, seen) in [
        (cluster::SEES_ALL, shape.seen_from(cluster::SEES_ALL)),
        (cluster::SEES_PUBLIC, shape.seen_from(cluster::SEES_PUBLIC)),
    ] {
        let measured = real_proxy(&args, discovery, namespace, &mut control).await?;
        report
            .real_proxies
            .push((namespace.to_string(), seen, measured));
    }
    report.control_rss = control.rss()?;
    drop(stub);

    let text = report.markdown();
    println!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Starts the stub with the cluster's files; how long until it serves them.
fn start_stub(args: &Args, files: &[PathBuf]) -> anyhow::Result<(Process, Duration)> {
    let started = Instant::now();
    let mut stub_args = vec![
        "--listen=127.0.0.1:0".to_string(),
        format!(
            "--kubeconfig-out={}",
            args.work_dir.join("kubeconfig").display()
        ),
        format!("--token={TOKEN}"),
    ];
    stub_args.extend(files.iter().map(|f| f.display().to_string()));
    let (mut stub, out) = Process::start(
        "sluice-kube-stub",
        &args.bin_dir.join("sluice-kube-stub"),
        &stub_args,
        &args.work_dir,
        true,
    )?;
    let out = out.context("the stub's stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
    if !line.starts_with("serving") {
        stub.check_alive()?;
        bail!("the stub said {line:?}");
    }
    Ok((stub, started.elapsed()))
}

/// A hello from `namespace` for pod `pod`.
fn hello(namespace: &str, pod: &str) -> Hello {
    Hello {
        namespace: namespace.into(),
        pod_name: pod.into(),
        labels: [("app".to_string(), "bench-client".to_string())].into(),
        pod_ip: None,
        service_account: Some("default".into()),
    }
}

/// Opens the simulated proxies' streams, `connect_batch` at a time, each batch awaited
/// until all of it holds the full state.
async fn connect_clients(
    args: &Args,
    target: &Arc<Target>,
    markers: &Arc<Markers>,
    control: &mut Process,
    report: &mut Report,
) -> anyhow::Result<Vec<SharedLog>> {
    let phase = Phase::start(control)?;
    let mut logs: Vec<SharedLog> = Vec::with_capacity(args.clients);
    let started = Instant::now();
    while logs.len() < args.clients {
        let batch = args.connect_batch.min(args.clients - logs.len());
        let first = logs.len();
        for n in first..first + batch {
            let namespace = format!("bench-{}", n % args.client_namespaces);
            let log = SharedLog::default();
            let hello = hello(&namespace, &format!("client-{n}"));
            tokio::spawn(client::run(
                target.clone(),
                hello,
                markers.clone(),
                log.clone(),
            ));
            logs.push(log);
        }
        let waiting = Instant::now();
        loop {
            let pending = logs[first..]
                .iter()
                .filter(|l| client::lock(l).full.is_none())
                .count();
            if pending == 0 {
                break;
            }
            if let Some(ended) = logs[first..]
                .iter()
                .find_map(|l| client::lock(l).ended.clone())
            {
                bail!("a simulated proxy's stream ended: {ended}");
            }
            control.check_alive()?;
            if waiting.elapsed() > PUSH_TIMEOUT {
                bail!(
                    "{pending} simulated proxies without their full state after {PUSH_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    report.connect_all = started.elapsed();
    report.full_sizes = logs
        .iter()
        .filter_map(|l| client::lock(l).full.map(|(_, _, size)| size))
        .collect();
    report.phases.push(phase.end(
        &format!("{} streams opened (full state each)", args.clients),
        control,
    )?);
    eprintln!(
        "{} simulated proxies hold the full state after {:?}",
        args.clients, report.connect_all
    );
    Ok(logs)
}

/// Waits until `clients` clients have received `marker`.
async fn wait_all(
    marker: &client::Marker,
    clients: usize,
    control: &mut Process,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while marker.arrived.load(Ordering::SeqCst) < clients {
        control.check_alive()?;
        if started.elapsed() > PUSH_TIMEOUT {
            bail!(
                "only {} of {clients} simulated proxies got the edit within {PUSH_TIMEOUT:?}",
                marker.arrived.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Quiet between edits, so that each is debounced on its own.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// The latency of marker `index` at every client, from `at`.
fn latencies(logs: &[SharedLog], index: usize, at: Instant) -> Vec<Duration> {
    logs.iter()
        .filter_map(|l| client::lock(l).marks.get(index).copied().flatten())
        .map(|arrived| arrived.saturating_duration_since(at))
        .collect()
}

async fn kube_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Edits the VirtualService (its match prefix); when the API server answered.
async fn edit_virtual_service(
    kube: &kube::Client,
    shape: &Shape,
    prefix: &str,
) -> anyhow::Result<Instant> {
    let resource = ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(kube.clone(), cluster::EDITED_NAMESPACE, &resource);
    let edited = shape.edited_service();
    let vs = cluster::virtual_service(cluster::EDITED_NAMESPACE, &edited, prefix);
    let patch = serde_json::json!({"spec": vs["spec"]});
    let at = Instant::now();
    api.patch(&edited, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .context("editing the VirtualService")?;
    Ok(at)
}

/// Adds a Pod, then (once its own change has settled) its endpoint to the edited
/// Service's slice; when the slice was written.
async fn add_endpoint(
    kube: &kube::Client,
    shape: &Shape,
    round: usize,
    ip: std::net::Ipv4Addr,
) -> anyhow::Result<Instant> {
    let ns = cluster::EDITED_NAMESPACE;
    let service = shape.edited_service();
    let pod_name = format!("{service}-added-{round}");
    let pod: Pod = serde_json::from_value(cluster::pod(ns, &pod_name, &service, "v2", ip))?;
    Api::<Pod>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .context("creating a Pod")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut endpoints = cluster::edited_endpoints(shape);
    endpoints.extend((0..=round).map(|r| (format!("{service}-added-{r}"), cluster::added_ip(r))));
    let patch = serde_json::json!({"endpoints": cluster::endpoint_list(ns, &endpoints)});
    let at = Instant::now();
    Api::<EndpointSlice>::namespaced(kube.clone(), ns)
        .patch(
            &format!("{service}-abcde"),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .context("adding an endpoint")?;
    Ok(at)
}

/// The proxies the control plane lists at `/v1/proxies`.
fn count_proxies(discovery: SocketAddr) -> anyhow::Result<usize> {
    let body = process::http_get(discovery, "/v1/proxies")?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&body)?;
    Ok(list.len())
}

/// Runs a real `sluice-proxy --discovery` in `namespace` until ready: the time to ready,
/// and its resident memory then and at its peak (MB).
async fn real_proxy(
    args: &Args,
    discovery: SocketAddr,
    namespace: &str,
    control: &mut Process,
) -> anyhow::Result<report::RealProxy> {
    let ports = process::free_addresses(5)?;
    let port = |i: usize| ports[i].port().to_string();
    let started = Instant::now();
    let (mut proxy, _) = Process::start(
        &format!("sluice-proxy-{namespace}"),
        &args.bin_dir.join("sluice-proxy"),
        &[
            format!("--discovery=http://{discovery}"),
            format!("--namespace={namespace}"),
            format!("--pod-name=bench-proxy-{namespace}"),
            "--labels=app=bench-proxy".into(),
            format!("--outbound-port={}", port(0)),
            format!("--inbound-port={}", port(1)),
            format!("--admin-port={}", port(2)),
            format!("--health-port={}", port(3)),
            format!("--metrics-port={}", port(4)),
        ],
        &args.work_dir,
        false,
    )?;
    let health = SocketAddr::from(([127, 0, 0, 1], ports[3].port()));
    process::wait_ready(
        &mut proxy,
        health,
        "/healthz/ready",
        Duration::from_secs(120),
    )?;
    let ready = started.elapsed();
    // Settle: the blocking pool's buffers freed, a steady state.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, peak) = proxy.rss()?;
    control.check_alive()?;
    Ok(report::RealProxy { ready, rss, peak })
}
