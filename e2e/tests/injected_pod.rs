//! An injected pod end to end: a realistic pod is injected by the webhook's own function, and
//! the injected sluice-init and sluice-proxy run as the kubelet would start them (arguments,
//! environment, downward-API files) in a pod namespace: outbound to a mesh VIP goes through the
//! proxy, an excluded port does not, inbound reaches the app through the proxy, and the
//! rewritten kubelet probes answer from the original checks.

mod proxy_support;

use std::io::{BufRead as _, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use proxy_support::{CATALOG_VIP, TIMEOUT, http_app, service_entry};
use serde_json::{Value, json};
use sluice_control::inject::{PodRuntime, RunSpec, run_spec};
use sluice_control::{InjectConfig, Namespace, Outcome, inject};
use sluice_e2e::apps::{self, banner};
use sluice_e2e::{Node, Pod, Process, binary, eventually};

/// The pod as a user would write it: probes on the app's port, the database port excluded.
fn web_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-6d4cf56db6-x2x9k",
            "namespace": "shop",
            "labels": {"app": "web", "version": "v1", "pod-template-hash": "6d4cf56db6"},
            "annotations": {"traffic.sluice.dev/exclude-outbound-ports": "5432"}
        },
        "spec": {"containers": [{
            "name": "web",
            "image": "example/web:1",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2}
        }]}
    })
}

fn injected(pod_ip: Ipv4Addr) -> anyhow::Result<(Value, RunSpec)> {
    let namespace = Namespace {
        name: "shop",
        labels: None,
    };
    let Outcome::Injected { pod, .. } = inject(&web_pod(), &InjectConfig::default(), &namespace)?
    else {
        bail!("injection skipped the pod");
    };
    let runtime = PodRuntime {
        pod_name: "web-6d4cf56db6-x2x9k".into(),
        namespace: "shop".into(),
        pod_ip: pod_ip.to_string(),
    };
    let run = run_spec(&pod, &runtime)?;
    Ok((pod, run))
}

/// The rewritten probe URLs of the app container, as the kubelet would call them.
fn probe_paths(pod: &Value) -> anyhow::Result<Vec<(String, u16)>> {
    let app = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "web"))
        .context("no web container")?;
    ["readinessProbe", "livenessProbe"]
        .iter()
        .map(|field| {
            let get = &app[field]["httpGet"];
            let path = get["path"].as_str().context("not rewritten")?;
            let port = get["port"].as_u64().context("no port")?;
            Ok((path.to_string(), u16::try_from(port)?))
        })
        .collect()
}

/// Writes the downward-API files under `dir` and points the proxy's environment at them.
fn place_files(run: &RunSpec, dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = run.proxy.env.clone();
    for (path, content) in &run.files {
        let local = dir.join(path.strip_prefix("/").unwrap_or(path));
        std::fs::create_dir_all(local.parent().context("file in a folder")?)?;
        std::fs::write(&local, content)?;
        for (_, value) in env.iter_mut().filter(|(_, v)| Path::new(v) == path) {
            *value = local.display().to_string();
        }
    }
    Ok(env)
}

fn start_sidecar(web: &Pod, run: &RunSpec, config: &Path) -> anyhow::Result<Process> {
    let init = web
        .command(binary("sluice-init"))
        .args(&run.init.args)
        .envs(run.init.env.iter().cloned())
        .output()?;
    ensure!(
        init.status.success(),
        "sluice-init {:?}: {}",
        run.init.args,
        String::from_utf8_lossy(&init.stderr)
    );
    let env = place_files(run, &config.join("podinfo"))?;
    let mut proxy = web.command_as(1337, 1337, binary("sluice-proxy"));
    proxy
        .args(&run.proxy.args)
        .envs(env)
        .arg("--config")
        .arg(config.join("mesh.yaml"));
    web.spawn(proxy)
}

/// GET with curl from `pod`: status and body.
fn curl(pod: &Pod, url: &str) -> anyhow::Result<(u16, String)> {
    let out = pod
        .command("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", url])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let (body, code) = text.rsplit_once('\n').context("no status")?;
    Ok((code.parse()?, body.to_string()))
}

fn app_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            Some(format!(
                "{}-{}",
                v["name"].as_str()?,
                v["version"].as_str()?
            ))
        })
        .unwrap_or_default()
}

/// The value of the first metrics line containing every one of `parts`.
fn metric(metrics: &str, parts: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn injected_pod_captures_proxies_and_answers_probes() -> anyhow::Result<()> {
    let node = Node::new("injected_pod")?;
    let catalog = http_app(&node, "catalog", "catalog", "v1", 8080)?;
    let kubelet = node.pod("kubelet")?;
    let db = node.pod("db")?;
    let db_rt = db.runtime()?;
    let _db = db_rt.block_on(db_rt.spawn(async {
        apps::serve_banner(tokio::net::TcpListener::bind("0.0.0.0:5432").await?, "db")
    }))??;
    let web = node.pod("web")?;
    let web_rt = web.runtime()?;
    let mut app = Some(web_rt.block_on(web_rt.spawn(async {
        let listener = tokio::net::TcpListener::bind(("::", 8080)).await?;
        apps::serve_http(listener, apps::AppId::new("web", "v1"))
    }))??);

    let (pod, run) = injected(web.ipv4)?;
    let probes = probe_paths(&pod)?;
    let config = tempdir(&web.netns)?;
    let catalog_at = [(IpAddr::V4(catalog.pod.ipv4), "v1")];
    std::fs::write(
        config.0.join("mesh.yaml"),
        service_entry(
            "catalog.shop.svc.cluster.local",
            CATALOG_VIP,
            "http",
            8080,
            &catalog_at,
        ),
    )?;
    let proxy = start_sidecar(&web, &run, &config.0)?;
    eventually("the injected proxy to be ready", TIMEOUT, || {
        let (status, body) = curl(&web, "http://127.0.0.1:15021/healthz/ready")?;
        ensure!(status == 200, "{status} {body}");
        Ok(())
    })
    .with_context(|| proxy.stderr())?;

    // Outbound to the VIP: through the proxy to the catalog pod.
    let (status, body) = curl(&web, &format!("http://{CATALOG_VIP}/items"))?;
    assert_eq!(
        (status, app_of(&body).as_str()),
        (200, "catalog-v1"),
        "{body}"
    );
    // Outbound to the excluded database port: straight to the listener.
    let db_addr = SocketAddr::from((db.ipv4, 5432));
    let greeting = web.run(move || -> anyhow::Result<String> {
        let stream = TcpStream::connect_timeout(&db_addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    })?;
    assert_eq!(greeting, banner::greeting("db"));
    // Inbound from another pod: through the proxy to the app.
    let (status, body) = curl(&kubelet, &format!("http://{}:8080/in", web.ipv4))?;
    assert_eq!((status, app_of(&body).as_str()), (200, "web-v1"), "{body}");

    let (_, metrics) = curl(&web, "http://127.0.0.1:15090/metrics")?;
    let outbound = [
        "sluice_requests_total{",
        "direction=\"outbound\"",
        "catalog",
    ];
    assert_eq!(metric(&metrics, &outbound), Some(1.0), "{metrics}");
    let inbound = ["sluice_requests_total{", "direction=\"inbound\""];
    assert_eq!(metric(&metrics, &inbound), Some(1.0), "{metrics}");
    assert!(
        !metrics.contains("5432"),
        "the excluded port is not seen by the proxy:\n{metrics}"
    );
    assert!(
        metrics.contains("source_workload=\"web\""),
        "labels come from the downward-API file:\n{metrics}"
    );

    // The kubelet's probes, from outside the pod, answered by the original checks.
    let probe_url = |(path, port): &(String, u16)| format!("http://{}:{port}{path}", web.ipv4);
    for probe in &probes {
        let (status, body) = curl(&kubelet, &probe_url(probe))?;
        assert_eq!(status, 200, "{probe:?}: {body}");
    }
    let seen = app.as_ref().map(|a| a.log().seen()).unwrap_or_default();
    assert!(
        seen.iter().any(|s| s.uri == "/ready"),
        "the readiness check reached the app's /ready: {seen:?}"
    );
    drop(app.take());
    for probe in &probes {
        eventually("the probe to fail once the app is gone", TIMEOUT, || {
            let (status, body) = curl(&kubelet, &probe_url(probe))?;
            ensure!(status == 503, "{status} {body}");
            Ok(())
        })?;
    }
    Ok(())
}

/// A temporary folder, removed on drop.
struct TempDir(std::path::PathBuf);

fn tempdir(name: &str) -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("sluice-e2e-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(TempDir(dir))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
