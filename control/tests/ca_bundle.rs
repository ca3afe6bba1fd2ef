//! The CA bundle ConfigMap against the Kubernetes API stand-in over HTTPS: created in the
//! labelled namespaces and those with injected pods (POST), put back when edited (PUT of
//! the watched object) or deleted, written into a namespace labelled later, and re-written
//! everywhere when the CA file changes; never in other namespaces.

#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::time::Duration;

use sluice_control::ca_bundle::{CaBundle, Settings};
use sluice_control::discovery::state;
use sluice_control::discovery::watch::{self, Discovery, client_config};
use sluice_control::webhook::Exposed;
use sluice_kube_stub::{Options, StubServer};

/// How long any awaited condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

const NAME: &str = "sluice-ca-root-cert";

const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {sluice-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: lab}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system, labels: {sluice-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: lab, labels: {app: probe, sluice.dev/inject: 'true'}}
spec: {containers: [{name: app, image: probe:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: plain, labels: {app: web}}
spec: {containers: [{name: app, image: web:1}]}
";

/// The `ca.crt` of the ConfigMap in `namespace`, if it exists.
fn ca_in(server: &StubServer, namespace: &str) -> Option<String> {
    let map = server.get("v1", "ConfigMap", namespace, NAME).ok()?;
    map["data"]["ca.crt"].as_str().map(str::to_string)
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn writes(server: &StubServer, method: &str) -> usize {
    let path = |ns: &str| format!("/api/v1/namespaces/{ns}/configmaps");
    server
        .requests()
        .iter()
        .filter(|r| {
            r.method == method
                && ["shop", "lab", "plain"]
                    .iter()
                    .any(|ns| r.path == path(ns) || r.path == format!("{}/{NAME}", path(ns)))
        })
        .count()
}

#[tokio::test]
async fn the_ca_is_kept_in_every_injected_namespace() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ca-bundle");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = StubServer::start(Options::default()).await.unwrap();
    server.apply_yaml(CLUSTER).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let ca_file = dir.join("ca.crt");
    let (first, second) = (tls::Pki::new().ca_pem(), tls::Pki::new().ca_pem());
    tls::replace_file(&ca_file, &first);

    let config = client_config(Some(&kubeconfig)).await.unwrap();
    let (publisher, _subscriber) = state::channel();
    let discovery = Discovery::start(config, watch::Settings::default(), publisher).unwrap();
    let settings = Settings {
        debounce: Duration::from_millis(20),
        retry: Duration::from_millis(50),
        ..Settings::new(NAME.into(), ca_file.clone())
    };
    let bundle = CaBundle::start(discovery.client(), discovery.workloads(), settings).unwrap();

    // Created where the namespace is labelled or a pod asks for injection.
    eventually("the CA in shop and lab", || {
        ca_in(&server, "shop") == Some(first.clone())
            && ca_in(&server, "lab") == Some(first.clone())
    })
    .await;
    let created = server.get("v1", "ConfigMap", "shop", NAME).unwrap();
    assert_eq!(
        created["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sluice-control"
    );
    assert_eq!(writes(&server, "POST"), 2);
    assert_eq!(ca_in(&server, "plain"), None);
    assert_eq!(
        ca_in(&server, "kube-system"),
        None,
        "never in system namespaces"
    );

    // Edited: put back with a PUT, the other keys kept.
    server
        .apply_yaml(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {NAME}, namespace: shop}}\n\
             data: {{ca.crt: edited, note: mine}}\n"
        ))
        .unwrap();
    eventually("the edited CA put back", || {
        ca_in(&server, "shop") == Some(first.clone())
    })
    .await;
    let fixed = server.get("v1", "ConfigMap", "shop", NAME).unwrap();
    assert_eq!(fixed["data"]["note"], "mine");
    assert!(writes(&server, "PUT") >= 1);

    // Deleted: made again.
    server.delete("v1", "ConfigMap", "lab", NAME).unwrap();
    eventually("the deleted ConfigMap made again", || {
        ca_in(&server, "lab") == Some(first.clone())
    })
    .await;

    // A namespace labelled later.
    server
        .apply_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: plain, labels: {sluice-injection: enabled}}\n",
        )
        .unwrap();
    eventually("the CA in a newly labelled namespace", || {
        ca_in(&server, "plain") == Some(first.clone())
    })
    .await;

    // The CA rotates: every ConfigMap follows.
    tls::replace_file(&ca_file, &second);
    eventually("the new CA everywhere", || {
        ["shop", "lab", "plain"]
            .iter()
            .all(|ns| ca_in(&server, ns) == Some(second.clone()))
    })
    .await;

    // A CA file that is not a certificate is reported and changes nothing.
    let settled = server.resource_version();
    tls::replace_file(&ca_file, "not a certificate\n");
    eventually("the bad CA file reported", || {
        metric(&bundle, "sluice_control_ca_bundle_ca_errors_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(ca_in(&server, "shop"), Some(second.clone()));
    assert_eq!(
        server.resource_version(),
        settled,
        "no write for a bad CA file"
    );
}

/// A sample of the CA bundle's metrics.
fn metric(bundle: &CaBundle, name: &str) -> Option<f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, bundle.metrics().registry()).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
