//! The real `sluice-control` binary, plaintext on free ports: the webhook answers whatever
//! the API server does (unreachable, or no cluster at all), and with the Kubernetes API
//! stand-in up the discovery port turns ready and lists its proxies; one `/metrics` holds
//! every part's metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_kube_stub::{Options, StubServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any awaited condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

const SHOP: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.12.34
  clusterIPs: [10.96.12.34]
  ports: [{name: http, port: 9080, protocol: TCP}]
";

/// A running `sluice-control`, killed when dropped.
struct Control {
    child: Child,
    webhook: SocketAddr,
    discovery: SocketAddr,
    log: PathBuf,
}

impl Control {
    /// Starts the binary on two free loopback ports with `kubeconfig` (else no cluster:
    /// no `KUBECONFIG`, an empty home, not in a pod), logging to a file named after `test`.
    fn start(test: &str, kubeconfig: Option<&Path>) -> Control {
        let (webhook, discovery) = free_addresses();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}.log"));
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-home"));
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice-control"));
        command
            .args(["--listen", &webhook.to_string()])
            .args(["--discovery-listen", &discovery.to_string()])
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("SLUICE_TLS_CERT")
            .env_remove("SLUICE_TLS_KEY")
            .env("HOME", &home)
            .env("SLUICE_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(path) = kubeconfig {
            command.arg("--kubeconfig").arg(path);
        }
        let child = command.spawn().expect("run sluice-control");
        Control {
            child,
            webhook,
            discovery,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct addresses nothing listens on: both are bound before either is released,
/// since a port released at once may be handed out again by the next bind to port 0.
fn free_addresses() -> (SocketAddr, SocketAddr) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

/// `GET path` over HTTP/1.1: the status and body, or why there is none.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_string()))
}

/// Polls `GET path` until it answers `status`; returns the body.
async fn until_status(control: &Control, addr: SocketAddr, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = get(addr, path).await;
        if let Ok((got, body)) = &answer
            && *got == status
        {
            return body.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {addr}{path}: not {status} within {WAIT:?}, last {answer:?}; log:\n{}",
            control.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the log until it holds `line`.
async fn until_logged(control: &Control, line: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !control.log().contains(line) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line:?} not logged within {WAIT:?}; log:\n{}",
            control.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stub(yaml: &str) -> StubServer {
    let server = StubServer::start(Options::default())
        .await
        .expect("start the stand-in");
    server.apply_yaml(yaml).expect("apply the test objects");
    server
}

fn kubeconfig_of(server: &StubServer, test: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}.kubeconfig"));
    server.write_kubeconfig(&path).unwrap();
    path
}

#[tokio::test]
async fn the_webhook_answers_while_the_api_server_is_unreachable() {
    let server = stub(SHOP).await;
    let kubeconfig = kubeconfig_of(&server, "unreachable");
    drop(server);
    let control = Control::start("unreachable", Some(&kubeconfig));
    let body = until_status(&control, control.webhook, "/healthz", 200).await;
    assert_eq!(body, "ok\n");
    until_logged(&control, "API discovery failed").await;
    let (status, _) = get(control.discovery, "/healthz/ready").await.unwrap();
    assert_eq!(status, 503, "not ready before any sync");
    let (status, _) = get(control.webhook, "/healthz").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_any_cluster_the_webhook_runs_alone_and_says_so() {
    let control = Control::start("no-cluster", None);
    until_status(&control, control.webhook, "/healthz", 200).await;
    until_logged(&control, "serving the webhook alone").await;
    assert!(
        get(control.discovery, "/healthz/ready").await.is_err(),
        "no stream without discovery"
    );
}

#[tokio::test]
async fn discovery_syncs_and_one_metrics_page_holds_every_part() {
    let server = stub(SHOP).await;
    let kubeconfig = kubeconfig_of(&server, "synced");
    let control = Control::start("synced", Some(&kubeconfig));
    until_status(&control, control.webhook, "/healthz", 200).await;
    let body = until_status(&control, control.discovery, "/healthz/ready", 200).await;
    assert_eq!(body, "ready\n");
    let (status, proxies) = get(control.discovery, "/v1/proxies").await.unwrap();
    assert_eq!((status, proxies.as_str()), (200, "[]"));
    let (status, rejected) = get(control.discovery, "/v1/rejected").await.unwrap();
    assert_eq!((status, rejected.as_str()), (200, "[]"));

    let (status, metrics) = get(control.webhook, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for want in [
        "sluice_control_review_duration_seconds_count 0",
        "sluice_control_config_version 1",
        "sluice_control_rejected_resources{kind=\"VirtualService\"} 0",
        "sluice_discovery_connected_proxies 0",
    ] {
        assert!(metrics.contains(want), "{want:?} not in:\n{metrics}");
    }
    assert_eq!(metrics.matches("# EOF").count(), 1, "{metrics}");
    let mut names: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a metric name twice:\n{metrics}");
}
