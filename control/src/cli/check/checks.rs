//! The checks of `sluice check`, each reading the cluster through the API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::Finding;
use crate::discovery::watch::served::{self, ISTIO_KINDS, SLUICE_KINDS};

/// The port of the control plane's discovery stream and status endpoints.
const DISCOVERY_PORT: u16 = 15012;

/// Runs every check against the cluster of `config`, in order; later checks are skipped
/// when the API server cannot be reached.
pub async fn all(config: kube::Config, namespace: &str, name: &str) -> Vec<Finding> {
    let server = config.cluster_url.to_string();
    let client = match Client::try_from(config) {
        Ok(client) => client,
        Err(e) => return vec![unreachable(&server, e)],
    };
    let api = match client.apiserver_version().await {
        Ok(version) => Finding::ok(
            "API server",
            format!(
                "{server} answers (Kubernetes {}.{})",
                version.major, version.minor
            ),
        ),
        Err(e) => return vec![unreachable(&server, e)],
    };
    vec![
        api,
        crds(&client).await,
        control_plane(&client, namespace, name).await,
        webhook(&client, namespace, name).await,
        namespaces(&client).await,
        proxies(&client, namespace, name).await,
        rejected(&client, namespace, name).await,
    ]
}

fn unreachable(server: &str, error: impl std::fmt::Display) -> Finding {
    Finding::fail(
        "API server",
        format!("{server} cannot be reached: {error}"),
        "check the kubeconfig's server address and credentials (kubectl get ns should work)",
    )
}

/// The Istio CRDs (and sluice's optional MeshConfig), with the version each is read at.
async fn crds(client: &Client) -> Finding {
    const CHECK: &str = "CRDs";
    let served = match served::discover(client.clone()).await {
        Ok(served) => served,
        Err(e) => return Finding::fail(CHECK, format!("API discovery failed: {e}"), RBAC_FIX),
    };
    let kinds: Vec<String> = served
        .kinds
        .iter()
        .map(|r| format!("{} {}", r.kind, r.api_version))
        .collect();
    let missing: Vec<&str> = served
        .missing()
        .into_iter()
        .filter(|kind| !SLUICE_KINDS.contains(kind))
        .collect();
    if missing.len() == ISTIO_KINDS.len() {
        return Finding::fail(
            CHECK,
            "the networking.istio.io CRDs are not installed",
            "helm install sluice charts/sluice -n sluice-system --create-namespace (installs them), or kubectl apply -f charts/sluice/crds/",
        );
    }
    if !missing.is_empty() {
        return Finding::fail(
            CHECK,
            format!(
                "{} not served (found: {})",
                missing.join(", "),
                kinds.join(", ")
            ),
            "kubectl apply -f charts/sluice/crds/",
        );
    }
    let optional: String = SLUICE_KINDS
        .iter()
        .filter(|kind| !served.kinds.iter().any(|r| r.kind == **kind))
        .map(|kind| format!("; {kind} CRD not installed (optional)"))
        .collect();
    Finding::ok(CHECK, format!("{}{optional}", kinds.join(", ")))
}

const RBAC_FIX: &str =
    "run sluice check with credentials that may read the cluster (as for kubectl get -A)";

/// The control plane's Deployment and its ready replicas.
async fn control_plane(client: &Client, namespace: &str, name: &str) -> Finding {
    const CHECK: &str = "control plane";
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = match deployments.get_opt(name).await {
        Ok(Some(deployment)) => deployment,
        Ok(None) => {
            return Finding::fail(
                CHECK,
                format!("no Deployment {namespace}/{name}"),
                format!("helm install sluice charts/sluice -n {namespace} --create-namespace"),
            );
        }
        Err(e) => return Finding::fail(CHECK, format!("cannot read it: {e}"), RBAC_FIX),
    };
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let ready = deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let found = format!("Deployment {namespace}/{name}: {ready}/{wanted} replicas ready");
    if ready == 0 {
        Finding::fail(
            CHECK,
            found,
            format!(
                "kubectl -n {namespace} describe deployment {name}; kubectl -n {namespace} logs deployment/{name} (readiness waits for the first full sync with the API server)"
            ),
        )
    } else if ready < wanted {
        Finding::warn(
            CHECK,
            found,
            format!("kubectl -n {namespace} get pods -l app.kubernetes.io/component=control"),
        )
    } else {
        Finding::ok(CHECK, found)
    }
}

/// The webhook configuration exists and its caBundle verifies the control plane's
/// serving certificate (Secret `NAME-tls`) for the name the API server calls.
async fn webhook(client: &Client, namespace: &str, name: &str) -> Finding {
    const CHECK: &str = "webhook";
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = match configs.get_opt(name).await {
        Ok(Some(config)) => config,
        Ok(None) => {
            return Finding::fail(
                CHECK,
                format!("no MutatingWebhookConfiguration {name}: pods are not injected"),
                format!("helm upgrade --install sluice charts/sluice -n {namespace}"),
            );
        }
        Err(e) => return Finding::fail(CHECK, format!("cannot read it: {e}"), RBAC_FIX),
    };
    let bundles: Vec<Vec<u8>> = config
        .webhooks
        .iter()
        .flatten()
        .filter_map(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()))
        .collect();
    let Some(bundle) = bundles.first() else {
        return Finding::fail(
            CHECK,
            format!(
                "MutatingWebhookConfiguration {name} has no caBundle: the API server cannot call the webhook"
            ),
            "with cert-manager, check its cainjector; else helm upgrade sluice charts/sluice (the chart writes it)",
        );
    };
    let secret_name = format!("{name}-tls");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let cert = match secrets.get_opt(&secret_name).await {
        Ok(Some(secret)) => secret
            .data
            .and_then(|mut d| d.remove("tls.crt"))
            .map(|b| b.0),
        Ok(None) => None,
        Err(e) => {
            return Finding::warn(
                CHECK,
                format!("caBundle present; the serving certificate could not be read ({e})"),
                RBAC_FIX,
            );
        }
    };
    let Some(cert) = cert else {
        return Finding::fail(
            CHECK,
            format!("no certificate in Secret {namespace}/{secret_name}"),
            format!("helm upgrade sluice charts/sluice -n {namespace} (makes the certificate)"),
        );
    };
    let host = format!("{name}.{namespace}.svc");
    match verify(bundle, &cert, &host) {
        Ok(()) => Finding::ok(
            CHECK,
            format!(
                "MutatingWebhookConfiguration {name}: its caBundle verifies the certificate of {host}"
            ),
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("the caBundle does not verify the certificate of {host}: {e}"),
            format!(
                "helm upgrade sluice charts/sluice -n {namespace} (rewrites both), or restore the caBundle that signed Secret {secret_name}"
            ),
        ),
    }
}

/// Verifies the leaf of the PEM chain `cert` against the CAs in the PEM `bundle` for `host`.
fn verify(bundle: &[u8], cert: &[u8], host: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(bundle) {
        let ca = ca.map_err(|e| format!("caBundle: {e}"))?;
        roots.add(ca).map_err(|e| format!("caBundle: {e}"))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or("the Secret's tls.crt holds no certificate")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Namespaces labelled for injection, and their running pods that have no proxy.
async fn namespaces(client: &Client) -> Finding {
    const CHECK: &str = "injection";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = match namespaces
        .list(&ListParams::default().labels("sluice-injection=enabled"))
        .await
    {
        Ok(list) => list.items,
        Err(e) => return Finding::fail(CHECK, format!("cannot list namespaces: {e}"), RBAC_FIX),
    };
    if labelled.is_empty() {
        return Finding::warn(
            CHECK,
            "no namespace is labelled sluice-injection=enabled",
            "kubectl label namespace NAME sluice-injection=enabled, then restart its workloads",
        );
    }
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ns in &labelled {
        let ns = ns.metadata.name.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let list = match pods.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                return Finding::fail(CHECK, format!("cannot list pods of {ns}: {e}"), RBAC_FIX);
            }
        };
        let uninjected = list.iter().filter(|pod| without_proxy(pod));
        for pod in uninjected {
            missing
                .entry(ns.clone())
                .or_default()
                .push(pod.metadata.name.clone().unwrap_or_default());
        }
    }
    let names: Vec<String> = labelled
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    if missing.is_empty() {
        return Finding::ok(
            CHECK,
            format!(
                "labelled: {}; every running pod has the proxy",
                names.join(", ")
            ),
        );
    }
    let found: Vec<String> = missing
        .iter()
        .map(|(ns, pods)| format!("{ns}: {}", pods.join(", ")))
        .collect();
    let fix: Vec<String> = missing
        .keys()
        .map(|ns| format!("kubectl rollout restart deployment -n {ns}"))
        .collect();
    Finding::fail(
        CHECK,
        format!(
            "pods without the proxy (created before the label?): {}",
            found.join("; ")
        ),
        format!("restart them: {}", fix.join("; ")),
    )
}

/// A running pod that injection should have given a proxy and did not.
fn without_proxy(pod: &Pod) -> bool {
    let meta = &pod.metadata;
    let opted_out = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("sluice.dev/inject"))
        .is_some_and(|v| v == "false");
    let injected = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("sluice.dev/status"));
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    !opted_out && !injected && !finished
}

/// `path` of the control plane's discovery port, through the API server's service proxy.
async fn control_plane_get(
    client: &Client,
    namespace: &str,
    name: &str,
    path: &str,
) -> Result<serde_json::Value, String> {
    let uri = format!(
        "/api/v1/namespaces/{namespace}/services/https:{name}:{DISCOVERY_PORT}/proxy{path}"
    );
    let request = http::Request::get(uri)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// The connected proxies and whether each holds the version it was sent.
async fn proxies(client: &Client, namespace: &str, name: &str) -> Finding {
    const CHECK: &str = "proxies";
    let status = match control_plane_get(client, namespace, name, "/v1/proxies").await {
        Ok(status) => status,
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("cannot read the control plane's /v1/proxies through the API server: {e}"),
                format!(
                    "kubectl -n {namespace} port-forward service/{name} {DISCOVERY_PORT} and curl -k https://127.0.0.1:{DISCOVERY_PORT}/v1/proxies"
                ),
            );
        }
    };
    let proxies = status
        .get("proxies")
        .and_then(|p| p.as_array())
        .or_else(|| status.as_array())
        .cloned()
        .unwrap_or_default();
    let behind: Vec<String> = proxies
        .iter()
        .filter(|p| p.get("versionSent") != p.get("versionAcked") || p.get("lastNack").is_some())
        .map(|p| {
            let pod = format!(
                "{}/{}",
                p["namespace"].as_str().unwrap_or("?"),
                p["podName"].as_str().unwrap_or("?")
            );
            match p["lastNack"]["error"].as_str() {
                Some(error) => format!(
                    "{pod} rejected version {}: {error}",
                    p["lastNack"]["version"]
                ),
                None => format!("{pod} has not acknowledged version {}", p["versionSent"]),
            }
        })
        .collect();
    if behind.is_empty() {
        Finding::ok(CHECK, format!("{} connected, all in sync", proxies.len()))
    } else {
        Finding::fail(
            CHECK,
            format!(
                "{} connected; out of sync: {}",
                proxies.len(),
                behind.join("; ")
            ),
            "a rejected version names the resource and field: fix it (sluice validate FILE) and kubectl apply",
        )
    }
}

/// The resources the control plane left out, and why.
async fn rejected(client: &Client, namespace: &str, name: &str) -> Finding {
    const CHECK: &str = "resources";
    let rejected = match control_plane_get(client, namespace, name, "/v1/rejected").await {
        Ok(rejected) => rejected.as_array().cloned().unwrap_or_default(),
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("cannot read the control plane's /v1/rejected through the API server: {e}"),
                format!("kubectl -n {namespace} logs deployment/{name} | grep 'left out'"),
            );
        }
    };
    if rejected.is_empty() {
        return Finding::ok(CHECK, "no resource rejected");
    }
    let lines: Vec<String> = rejected
        .iter()
        .map(|r| {
            let errors: Vec<&str> = r["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .collect();
            format!(
                "{}: {}",
                r["object"].as_str().unwrap_or("?"),
                errors.join("; ")
            )
        })
        .collect();
    Finding::fail(
        CHECK,
        format!(
            "{} left out of the mesh config: {}",
            rejected.len(),
            lines.join(" | ")
        ),
        "fix each named field (sluice validate FILE shows the same errors) and kubectl apply",
    )
}
