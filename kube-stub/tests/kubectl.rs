//! kubectl, a real client, against the stand-in: discovery (`api-resources`, `api-versions`),
//! get in tables, JSON and YAML, create, label, delete, and `get -w` seeing a later change.

#[path = "support/client.rs"]
mod support;

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use sluice_kube_stub::{Catalog, IstioVersion, Options, StubServer};
use support::{WAIT, service, services, start};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// kubectl pointed at one server, with its own kubeconfig and discovery cache.
struct Kubectl {
    binary: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn new(server: &StubServer, test: &str) -> Self {
        let binary = find_kubectl();
        let dir =
            std::env::temp_dir().join(format!("sluice-kube-stub-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        server.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        Self { binary, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl with `stdin`; its stdout, stderr, and whether it succeeded.
    async fn output(&self, args: &[&str], stdin: &str) -> (String, String, bool) {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within {WAIT:?}"))
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (text(out.stdout), text(out.stderr), out.status.success())
    }

    /// Runs kubectl, failing the test with its stderr if it fails; its stdout.
    async fn run(&self, args: &[&str]) -> String {
        self.run_with(args, "").await
    }

    async fn run_with(&self, args: &[&str], stdin: &str) -> String {
        let (out, err, ok) = self.output(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `$KUBECTL` (to try another client version), else kubectl on the PATH; a test without it
/// fails saying how to install it.
fn find_kubectl() -> PathBuf {
    if let Some(chosen) = std::env::var_os("KUBECTL") {
        return PathBuf::from(chosen);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
        .expect(
            "kubectl is not on the PATH: ./scripts/setup installs it (Debian's kubernetes-client)",
        )
}

const ISTIO: &str = "
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
";

fn first_column(table: &str) -> Vec<&str> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[tokio::test]
async fn kubectl_reads_discovery_and_objects() {
    let yaml = format!("{}{ISTIO}", services("shop", 2));
    let server = start(Options::default(), &yaml).await;
    let kubectl = Kubectl::new(&server, "reads");

    let namespaces = kubectl.run(&["get", "ns"]).await;
    assert_eq!(
        first_column(&namespaces),
        [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "shop"
        ],
        "{namespaces}"
    );

    let json: Value =
        serde_json::from_str(&kubectl.run(&["get", "svc", "-A", "-o", "json"]).await).unwrap();
    let names: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["svc-0", "svc-1"]);
    assert_eq!(json["items"][0]["metadata"]["namespace"], "shop");

    let args = [
        "get",
        "virtualservices.networking.istio.io",
        "-n",
        "shop",
        "-o",
        "yaml",
    ];
    let yaml: Value = serde_norway::from_str(&kubectl.run(&args).await).unwrap();
    assert_eq!(
        yaml["items"][0]["apiVersion"], "networking.istio.io/v1",
        "preferred version"
    );
    assert_eq!(yaml["items"][0]["metadata"]["name"], "reviews");
    let args = [
        "get",
        "virtualservices.v1alpha3.networking.istio.io",
        "reviews",
        "-n",
        "shop",
        "-o",
        "yaml",
    ];
    let yaml: Value = serde_norway::from_str(&kubectl.run(&args).await).unwrap();
    assert_eq!(yaml["apiVersion"], "networking.istio.io/v1alpha3");
    assert_eq!(yaml["spec"]["hosts"][0], "reviews");

    let resources = kubectl.run(&["api-resources"]).await;
    let vs: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("virtualservices "))
        .unwrap_or_else(|| panic!("no virtualservices row:\n{resources}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        vs,
        [
            "virtualservices",
            "vs",
            "networking.istio.io/v1",
            "true",
            "VirtualService"
        ]
    );
    assert!(
        resources.lines().any(|l| l.starts_with("endpointslices ")),
        "{resources}"
    );

    let versions = kubectl.run(&["api-versions"]).await;
    for expected in [
        "v1",
        "networking.istio.io/v1alpha3",
        "networking.istio.io/v1",
        "sluice.dev/v1alpha1",
        "discovery.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == expected),
            "{expected} in:\n{versions}"
        );
    }

    let (_, err, ok) = kubectl
        .output(&["get", "svc", "nope", "-n", "shop"], "")
        .await;
    assert!(!ok);
    assert!(
        err.contains("(NotFound): services \"nope\" not found"),
        "{err}"
    );
}

#[tokio::test]
async fn kubectl_creates_labels_and_deletes() {
    let server = start(Options::default(), &services("shop", 1)).await;
    let kubectl = Kubectl::new(&server, "writes");
    let new = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n\
               metadata: {name: web, namespace: shop}\nspec: {host: web, subsets: [{name: v1, labels: {version: v1}}]}\n\
               ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\ndata: {a: b}\n";
    let created = kubectl.run_with(&["create", "-f", "-"], new).await;
    assert_eq!(
        created.lines().collect::<Vec<_>>(),
        [
            "destinationrule.networking.istio.io/web created",
            "configmap/cfg created"
        ]
    );
    let dr = server
        .get(
            "networking.istio.io/v1alpha3",
            "DestinationRule",
            "shop",
            "web",
        )
        .unwrap();
    assert_eq!(dr["spec"]["subsets"][0]["name"], "v1");

    let (_, err, ok) = kubectl.output(&["create", "-f", "-"], new).await;
    assert!(!ok && err.contains("AlreadyExists"), "{err}");

    kubectl
        .run(&["label", "svc", "svc-0", "-n", "shop", "tier=front"])
        .await;
    kubectl
        .run(&["label", "dr", "web", "-n", "shop", "canary=yes"])
        .await;
    kubectl
        .run(&["annotate", "dr", "web", "-n", "shop", "note=hello"])
        .await;
    let svc = server.get("v1", "Service", "shop", "svc-0").unwrap();
    assert_eq!(svc["metadata"]["labels"]["tier"], "front");
    assert_eq!(svc["metadata"]["labels"]["app"], "web");
    let dr = server
        .get("networking.istio.io/v1", "DestinationRule", "shop", "web")
        .unwrap();
    assert_eq!(dr["metadata"]["labels"]["canary"], "yes");
    assert_eq!(dr["metadata"]["annotations"]["note"], "hello");
    assert_eq!(
        dr["metadata"]["generation"], 1,
        "labels do not move the generation"
    );

    let deleted = kubectl.run(&["delete", "cm", "cfg", "-n", "shop"]).await;
    assert_eq!(deleted.trim(), "configmap \"cfg\" deleted");
    assert!(server.get("v1", "ConfigMap", "shop", "cfg").is_err());
    let listed = kubectl
        .run(&["get", "dr", "-n", "shop", "--show-labels"])
        .await;
    assert!(listed.contains("canary=yes"), "{listed}");
}

#[tokio::test]
async fn kubectl_get_watch_sees_a_later_change() {
    let server = start(Options::default(), &services("shop", 1)).await;
    let kubectl = Kubectl::new(&server, "watch");
    let mut child = kubectl
        .command(&["get", "svc", "-n", "shop", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run kubectl get -w");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async |what: &str| {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("kubectl get -w printed no line within {WAIT:?}: {what}"))
            .unwrap()
            .unwrap_or_else(|| panic!("kubectl get -w ended: {what}"))
    };
    assert!(next_line("the header").await.starts_with("NAME"));
    assert!(next_line("svc-0").await.starts_with("svc-0 "));
    let watch_started = async || {
        server
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/shop/services" && r.is_watch())
    };
    support::eventually("kubectl started watching", watch_started).await;
    server.apply_yaml(&service("shop", "later", "web")).unwrap();
    assert!(next_line("the later service").await.starts_with("later "));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn kubectl_sees_only_the_served_istio_version() {
    let options = Options {
        catalog: Catalog::kubernetes().with_istio(&[IstioVersion::V1alpha3]),
        ..Options::default()
    };
    let server = start(options, &format!("{}{ISTIO}", services("shop", 0))).await;
    let kubectl = Kubectl::new(&server, "v1alpha3");
    let yaml: Value = serde_norway::from_str(
        &kubectl
            .run(&["get", "vs", "reviews", "-n", "shop", "-o", "yaml"])
            .await,
    )
    .unwrap();
    assert_eq!(yaml["apiVersion"], "networking.istio.io/v1alpha3");
    let versions = kubectl.run(&["api-versions"]).await;
    assert!(!versions.contains("networking.istio.io/v1\n"), "{versions}");
    assert!(!versions.contains("sluice.dev"), "{versions}");
}

#[tokio::test]
async fn the_binary_serves_files_for_kubectl() {
    let dir = std::env::temp_dir().join(format!("sluice-kube-stub-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, format!("{}{ISTIO}", services("shop", 1))).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-kube-stub"))
        .args(["--listen", "127.0.0.1:0", "--token", "binary-token"])
        .args(["--istio-versions", "v1alpha3", "--no-meshconfig"])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg(&objects)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start sluice-kube-stub");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let serving = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .unwrap_or_else(|_| panic!("sluice-kube-stub printed nothing within {WAIT:?}"))
        .unwrap()
        .expect("sluice-kube-stub exited before serving");
    assert!(
        serving.starts_with("serving https://127.0.0.1:"),
        "{serving}"
    );

    let binary = find_kubectl();
    let out = Command::new(binary)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["get", "vs", "-n", "shop", "-o", "yaml"])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(
        yaml["items"][0]["apiVersion"],
        "networking.istio.io/v1alpha3"
    );
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains("token: binary-token"), "{config}");
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
