//! `sluice check` as a user runs it, against the Kubernetes API stand-in: each check's
//! verdict and fix, and the exit code.

#[path = "support/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sluice_kube_stub::{Options, StubServer};

/// Runs `sluice check --kubeconfig FILE` for the stand-in; returns exit code and output.
fn check(kubeconfig: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .expect("run sluice check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// [`check`] on the blocking pool, so the stand-in on this runtime keeps answering.
async fn check_off_runtime(kubeconfig: &Path) -> (i32, String) {
    let kubeconfig = kubeconfig.to_path_buf();
    tokio::task::spawn_blocking(move || check(&kubeconfig))
        .await
        .unwrap()
}

/// The line of `check` in the output, with the fix line below it if any.
fn verdict<'a>(out: &'a str, check: &str) -> &'a str {
    let start = out
        .find(&format!("  {check}: "))
        .and_then(|i| out[..i].rfind('\n').map(|n| n + 1).or(Some(0)))
        .unwrap_or_else(|| panic!("no {check} line in:\n{out}"));
    let rest = &out[start..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i)
        .find(|i| !rest[i + 1..].starts_with("      fix:"))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The control plane as the chart installs it: Deployment (ready), TLS Secret, webhook
/// configuration whose caBundle is `ca_bundle`.
fn control_plane(cert: &str, key: &str, ca_bundle: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: sluice-system}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sluice-control, namespace: sluice-system}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: sluice-control}}}}
  template:
    metadata: {{labels: {{app: sluice-control}}}}
    spec:
      containers: [{{name: control, image: sluice/control:dev}}]
status: {{replicas: 2, readyReplicas: 2}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sluice-control-tls, namespace: sluice-system}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: sluice-control}}
webhooks:
- name: inject.sluice.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {{name: sluice-control, namespace: sluice-system, path: /inject, port: 443}}
    caBundle: {}
"#,
        b64(cert),
        b64(key),
        b64(ca_bundle)
    )
}

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {sluice-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-injected
  namespace: shop
  annotations: {sluice.dev/status: '{"version":1}'}
spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-old, namespace: shop}
spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: batch-opted-out, namespace: shop, labels: {sluice.dev/inject: "false"}}
spec: {containers: [{name: batch, image: batch:1}]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_check_gives_its_verdict_and_fix() {
    let server = StubServer::start(Options::default()).await.unwrap();
    let kubeconfig = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check.kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();

    // Nothing installed but the CRDs the stand-in serves.
    let (code, out) = check_off_runtime(&kubeconfig).await;
    assert_eq!(code, 1, "{out}");
    assert!(verdict(&out, "API server").starts_with("ok "), "{out}");
    assert!(verdict(&out, "CRDs").starts_with("ok "), "{out}");
    assert!(
        verdict(&out, "CRDs").contains("VirtualService networking.istio.io/v1"),
        "{out}"
    );
    let control = verdict(&out, "control plane");
    assert!(control.starts_with("FAIL"), "{out}");
    assert!(
        control.contains("helm install sluice charts/sluice"),
        "{out}"
    );
    assert!(verdict(&out, "webhook").starts_with("FAIL"), "{out}");
    assert!(verdict(&out, "injection").starts_with("warn"), "{out}");
    // The stand-in has no service proxy: the proxies' status cannot be read through it,
    // which is reported with the port-forward that reads it directly.
    let proxies = verdict(&out, "proxies");
    assert!(proxies.starts_with("FAIL"), "{out}");
    assert!(
        proxies.contains("port-forward service/sluice-control 15012"),
        "{out}"
    );
    assert!(out.ends_with("sluice check: problems found\n"), "{out}");

    // The control plane installed, with a caBundle from another CA: the webhook check
    // catches it; a labelled namespace with a pod created before the label.
    let pki = tls::Pki::new();
    let host = "sluice-control.sluice-system.svc";
    let (cert, key) = pki.leaf_for(&[host], host);
    let other = tls::Pki::new();
    server
        .apply_yaml(&control_plane(&cert, &key, &other.ca_pem()))
        .unwrap();
    server.apply_yaml(SHOP).unwrap();
    let (code, out) = check_off_runtime(&kubeconfig).await;
    assert_eq!(code, 1, "{out}");
    assert!(verdict(&out, "control plane").starts_with("ok "), "{out}");
    assert!(
        verdict(&out, "control plane").contains("2/2 replicas ready"),
        "{out}"
    );
    let webhook = verdict(&out, "webhook");
    assert!(webhook.starts_with("FAIL"), "{out}");
    assert!(webhook.contains("does not verify"), "{out}");
    let injection = verdict(&out, "injection");
    assert!(injection.starts_with("FAIL"), "{out}");
    assert!(injection.contains("shop: web-old"), "{out}");
    assert!(
        !injection.contains("web-injected") && !injection.contains("batch"),
        "{out}"
    );
    assert!(
        injection.contains("kubectl rollout restart deployment -n shop"),
        "{out}"
    );

    // The right caBundle: the webhook check passes.
    server
        .apply_yaml(&control_plane(&cert, &key, &pki.ca_pem()))
        .unwrap();
    let (_, out) = check_off_runtime(&kubeconfig).await;
    let webhook = verdict(&out, "webhook");
    assert!(webhook.starts_with("ok "), "{out}");
    assert!(
        webhook.contains("verifies the certificate of sluice-control.sluice-system.svc"),
        "{out}"
    );
}

#[test]
fn an_unreachable_api_server_fails_first_and_alone() {
    let kubeconfig = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check-closed.kubeconfig");
    // A port nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let (code, out) = check(&kubeconfig);
    assert_eq!(code, 1, "{out}");
    assert!(verdict(&out, "API server").starts_with("FAIL"), "{out}");
    assert!(!out.contains("CRDs"), "nothing else is checked: {out}");
}
