//! The demo's pods and processes: a frontend injected as the webhook would
//! inject it, catalog v1 and v2, and a host outside the mesh; applying a
//! step's config live and sending its traffic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use hyper::body::Bytes;
use serde_json::{Value, json};
use sluice_netns::{Node, Pod, Process};
use tokio::runtime::Runtime;

use super::app::App;
use super::live::{self, WAIT};
use super::report;
use super::request;
use super::steps::{BASE, Dest, Expect, Step, Traffic};
use crate::config::InjectConfig;
use crate::inject::{Namespace, Outcome, inject};
use crate::inject::{PodRuntime, RunSpec, run_spec};

/// The catalog service's virtual IP, declared by the base ServiceEntry.
pub const CATALOG_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The external host's name.
pub const EXTERNAL_HOST: &str = "jsonplaceholder.typicode.com";

/// Checks what the demo needs before touching anything.
pub fn preflight(bin_dir: &Path) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (network namespaces and iptables): run it with sudo".into());
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
    ] {
        if which(tool).is_none() {
            return Err(format!(
                "`{tool}` is missing: apt-get install -y {package} (or run ./scripts/setup)"
            ));
        }
    }
    for bin in ["sluice-proxy", "sluice-init"] {
        if !bin_dir.join(bin).is_file() {
            return Err(format!(
                "{} not found: build it with `cargo build --release --bins` (or pass --bin-dir)",
                bin_dir.join(bin).display()
            ));
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A running demo mesh; dropping it stops every process and removes every namespace.
pub struct Mesh {
    frontend: Pod,
    frontend_rt: Runtime,
    catalog: [Workload; 2],
    external: Workload,
    config_dir: PathBuf,
    _proxy: Process,
    // Last: the node goes after everything that lives in it.
    node: Node,
}

/// An app in its own pod, on the pod's runtime.
struct Workload {
    version: String,
    app: App,
    pod: Pod,
    _runtime: Runtime,
}

impl Mesh {
    /// Creates the pods, starts the apps and the frontend's injected sidecar, and
    /// waits until the proxy is ready with the base config.
    pub fn start(bin_dir: &Path) -> anyhow::Result<Mesh> {
        remove_crashed_runs_files();
        let node = Node::new("sluice-demo").context("creating the demo's network")?;
        let frontend = node.pod("frontend")?;
        let catalog = [
            workload(&node, "catalog-v1", "catalog", "v1")?,
            workload(&node, "catalog-v2", "catalog", "v2")?,
        ];
        let external = workload(&node, "external", EXTERNAL_HOST, "external")?;
        frontend.set_hosts(&[
            (IpAddr::V4(CATALOG_VIP), "catalog"),
            (IpAddr::V4(external.pod.ipv4), EXTERNAL_HOST),
        ])?;
        report::topology(
            &frontend,
            &catalog.each_ref().map(|a| &a.pod),
            &external.pod,
        );

        let config_dir = std::env::temp_dir().join(format!("{}-config", frontend.netns));
        std::fs::create_dir_all(&config_dir)?;
        let base = BASE
            .replace("CATALOG_VIP", &CATALOG_VIP.to_string())
            .replace("CATALOG_V1", &catalog[0].pod.ipv4.to_string())
            .replace("CATALOG_V2", &catalog[1].pod.ipv4.to_string());
        std::fs::write(config_dir.join("base.yaml"), base)?;

        let run = injected_frontend(&frontend)?;
        let proxy = start_sidecar(&frontend, &run, bin_dir, &config_dir)?;
        let frontend_rt = frontend.runtime()?;
        let mesh = Mesh {
            frontend,
            frontend_rt,
            catalog,
            external,
            config_dir,
            _proxy: proxy,
            node,
        };
        mesh.wait_ready()?;
        Ok(mesh)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = self.get(
                SocketAddr::from((Ipv4Addr::LOCALHOST, 15021)),
                "localhost",
                "/healthz/ready",
                &[],
            ) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "sluice-proxy did not become ready within {WAIT:?}"
            );
            ensure!(!super::stopping(), "stopped");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The frontend pod (for `--keep` instructions).
    pub fn frontend(&self) -> &Pod {
        &self.frontend
    }

    /// Where the config files are.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Applies a step's config, sends its traffic and reports; true when every promise held.
    pub fn run_step(&self, step: &Step) -> anyhow::Result<bool> {
        report::about(step);
        self.apply(step.yaml)?;
        let mirrored_before = step
            .mirrored
            .map(|(version, _, suffix)| self.shadow_count(version, suffix));
        let mut ok = true;
        for traffic in step.traffic {
            let tally = self.send(traffic)?;
            ok &= report::tally(traffic, &tally);
        }
        if let (Some((version, want, suffix)), Some(before)) = (step.mirrored, mirrored_before) {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut got = self.shadow_count(version, suffix) - before;
            while got < want as usize && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                got = self.shadow_count(version, suffix) - before;
            }
            ok &= report::mirrored(version, suffix, want, got);
        }
        Ok(ok)
    }

    /// Writes the step's config next to the base and waits until the proxy runs it.
    fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        let path = self.config_dir.join("step.yaml");
        if std::fs::read_to_string(&path).is_ok_and(|old| old == yaml) {
            return Ok(());
        }
        live::apply(&self.config_dir, "step.yaml", yaml, "the proxy", || {
            self.config_status()
        })
    }

    fn config_status(&self) -> anyhow::Result<Value> {
        let (code, body) = self.get(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 15000)),
            "localhost",
            "/config_dump",
            &[],
        )?;
        ensure!(code == 200, "admin /config_dump answered {code}");
        let dump: Value =
            serde_json::from_slice(&body).context("admin /config_dump is not JSON")?;
        Ok(dump["status"].clone())
    }

    fn send(&self, traffic: &Traffic) -> anyhow::Result<Tally> {
        let (addr, host) = match traffic.dest {
            Dest::Catalog => (SocketAddr::from((CATALOG_VIP, 80)), "catalog"),
            Dest::External => (
                SocketAddr::from((self.external.pod.ipv4, 80)),
                EXTERNAL_HOST,
            ),
            Dest::Gateway => bail!("the sidecar demo sends nothing through the gateway"),
        };
        let mut tally = Tally::default();
        for i in 0..traffic.requests {
            ensure!(!super::stopping(), "stopped");
            let user = format!("user-{i}");
            let mut headers = traffic.headers.to_vec();
            if matches!(traffic.expect, Expect::Users(..)) {
                headers.push(("x-user-id", &user));
            }
            let (status, body) = self.get(addr, host, "/", &headers)?;
            tally.record(status, &body);
        }
        Ok(tally)
    }

    /// One HTTP/1.1 request from inside the frontend pod (so outbound capture applies).
    fn get(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Bytes)> {
        request::get(&self.frontend_rt, addr, host, path, headers)
    }

    fn shadow_count(&self, version: &str, suffix: &str) -> usize {
        self.catalog
            .iter()
            .filter(|a| a.version == version)
            .flat_map(|a| a.app.authorities())
            .filter(|authority| {
                authority
                    .split(':')
                    .next()
                    .is_some_and(|h| h.ends_with(suffix))
            })
            .count()
    }

    /// The node's namespace name (for `--keep` instructions).
    pub fn node_name(&self) -> &str {
        self.node.netns()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config_dir);
    }
}

/// Removes the config folders of demo runs whose process is gone (their
/// namespaces are removed by [`Node::new`]): `<netns>-config`, the netns name
/// being `sl<hash>-<pid>-<n>-frontend`.
fn remove_crashed_runs_files() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_suffix("-frontend-config")
            .and_then(|n| n.split('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What a batch of requests got back.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u32>,
    /// 200 answers by the version of the app that gave them.
    pub versions: BTreeMap<String, u32>,
}

impl Tally {
    /// Counts one answer: its status, and for a 200 the `version` its JSON body names.
    pub fn record(&mut self, status: u16, body: &[u8]) {
        *self.statuses.entry(status).or_default() += 1;
        if status == 200 {
            let version = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["version"].as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into());
            *self.versions.entry(version).or_default() += 1;
        }
    }

    /// True when the answers keep the batch's promise.
    pub fn keeps(&self, expect: &Expect) -> bool {
        match expect {
            Expect::Status(code) => {
                self.statuses.keys().all(|s| s == code) && !self.statuses.is_empty()
            }
            Expect::Versions(want, slack) | Expect::Users(want, slack) => {
                let total: u32 = self.versions.values().sum();
                let wanted: u32 = want.iter().map(|(_, n)| n).sum();
                total == wanted
                    && want.iter().all(|(v, n)| {
                        self.versions.get(*v).copied().unwrap_or(0).abs_diff(*n) <= *slack
                    })
            }
        }
    }
}

fn workload(node: &Node, pod: &str, name: &str, version: &str) -> anyhow::Result<Workload> {
    let pod = node.pod(pod)?;
    let runtime = pod.runtime()?;
    let (app_name, app_version) = (name.to_owned(), version.to_owned());
    let app = runtime
        .block_on(runtime.spawn(async move {
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", 80)).await?;
            anyhow::Ok(App::serve(listener, &app_name, &app_version))
        }))?
        .with_context(|| format!("starting {name} {version} on port 80 of pod {}", pod.name))?;
    Ok(Workload {
        version: version.to_string(),
        app,
        pod,
        _runtime: runtime,
    })
}

/// The frontend pod as a user would write it, injected by the same function the
/// webhook and `sluice inject` use, and read back as the kubelet would run it.
fn injected_frontend(frontend: &Pod) -> anyhow::Result<RunSpec> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "frontend", "namespace": "default", "labels": {"app": "frontend", "version": "v1"}},
        "spec": {"containers": [{"name": "frontend", "image": "example/frontend:1", "ports": [{"containerPort": 8080}]}]}
    });
    let config = InjectConfig::default();
    let Outcome::Injected { pod, .. } = inject(
        &pod,
        &config,
        &Namespace {
            name: "default",
            labels: None,
        },
    )?
    else {
        bail!("injection skipped the demo's frontend pod");
    };
    let runtime = PodRuntime {
        pod_name: "frontend".into(),
        namespace: "default".into(),
        pod_ip: frontend.ipv4.to_string(),
    };
    Ok(run_spec(&pod, &runtime)?)
}

/// Runs the injected sluice-init (as root, like the init container) and starts
/// the injected sluice-proxy as uid 1337 with the demo's config folder.
fn start_sidecar(
    frontend: &Pod,
    run: &RunSpec,
    bin_dir: &Path,
    config_dir: &Path,
) -> anyhow::Result<Process> {
    let files_dir = config_dir.join("podinfo");
    let mut env = run.proxy.env.clone();
    for (path, content) in &run.files {
        let local = files_dir.join(path.strip_prefix("/").unwrap_or(path));
        std::fs::create_dir_all(local.parent().unwrap_or(&files_dir))?;
        std::fs::write(&local, content)?;
        for (_, value) in env
            .iter_mut()
            .filter(|(_, v)| Path::new(v.as_str()) == path)
        {
            *value = local.display().to_string();
        }
    }
    let init = frontend
        .command(bin_dir.join("sluice-init"))
        .args(&run.init.args)
        .envs(run.init.env.iter().cloned())
        .output()?;
    ensure!(
        init.status.success(),
        "sluice-init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut proxy = frontend.command_as(1337, 1337, bin_dir.join("sluice-proxy"));
    proxy
        .args(&run.proxy.args)
        .envs(env)
        .arg("--config")
        .arg(config_dir);
    frontend.spawn(proxy)
}
