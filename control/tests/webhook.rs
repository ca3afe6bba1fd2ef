//! The webhook served over real TLS, answering real AdmissionReview JSON.

#[path = "support/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sluice_control::InjectConfig;
use sluice_control::manifest::{Action, Source, parse_all, process, to_yaml};
use tls::{Server, replace_file};

fn dir(test: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("webhook")
        .join(test)
}

fn review(uid: &str, namespace: &str, pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": { "kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1" },
        }
    })
}

async fn post(client: &mut tls::Client, body: &Value) -> (u16, Value) {
    let (status, body) = client
        .request("POST", "/inject", serde_json::to_vec(body).unwrap())
        .await
        .unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, json)
}

/// Every pod template in the corpus, as the pod the API server would send (namespace from
/// the workload, as the request carries it).
fn corpus_pods() -> Vec<(String, Value)> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut pods = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let source = Source {
            name: file.display().to_string(),
            text: std::fs::read_to_string(&file).unwrap(),
        };
        let mut docs = parse_all(&source).unwrap();
        let mut expanded = Vec::new();
        for doc in docs.drain(..) {
            match doc["kind"].as_str() {
                Some("List") => expanded.extend(doc["items"].as_array().unwrap().iter().cloned()),
                _ => expanded.push(doc),
            }
        }
        for doc in expanded {
            let template = match doc["kind"].as_str().unwrap() {
                "Pod" => doc.clone(),
                "CronJob" => doc["spec"]["jobTemplate"]["spec"]["template"].clone(),
                "Deployment"
                | "StatefulSet"
                | "DaemonSet"
                | "ReplicaSet"
                | "ReplicationController"
                | "Job" => doc["spec"]["template"].clone(),
                _ => continue,
            };
            let namespace = doc
                .pointer("/metadata/namespace")
                .cloned()
                .unwrap_or(json!("default"));
            let mut pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"] });
            if pod["metadata"].is_null() {
                pod["metadata"] = json!({});
            }
            pod["metadata"]["namespace"] = namespace;
            pod["metadata"]["generateName"] = json!(format!(
                "{}-",
                doc["metadata"]["name"].as_str().unwrap_or("pod")
            ));
            let name = format!(
                "{} {}",
                file.file_name().unwrap().to_string_lossy(),
                doc["metadata"]["name"]
            );
            pods.push((name, pod));
        }
    }
    assert!(pods.len() >= 15, "corpus pods: {}", pods.len());
    pods
}

/// What `sluice inject` makes of the pod.
fn cli_result(pod: &Value, config: &InjectConfig) -> Value {
    let source = Source {
        name: "pod.yaml".into(),
        text: to_yaml(pod),
    };
    let out = process(&[source], Action::Inject(config)).unwrap();
    let mut docs = parse_all(&Source {
        name: "out".into(),
        text: out.text,
    })
    .unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn patch_of(response: &Value) -> Option<json_patch::Patch> {
    let patch = response["response"]["patch"].as_str()?;
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_applied_to_the_pod_gives_the_cli_result() {
    let config = InjectConfig::default();
    let server = Server::start(&dir("patch"), config.clone()).await;
    for http2 in [false, true] {
        let mut client = server.client(http2).await;
        let mut injected = 0;
        for (i, (name, pod)) in corpus_pods().into_iter().enumerate() {
            let namespace = pod["metadata"]["namespace"].as_str().unwrap().to_string();
            let uid = format!("uid-{i}");
            let (status, response) = post(&mut client, &review(&uid, &namespace, &pod)).await;
            assert_eq!(status, 200, "{name}: {response}");
            assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(response["kind"], "AdmissionReview");
            assert_eq!(response["response"]["uid"], uid.as_str());
            assert_eq!(response["response"]["allowed"], true, "{name}: {response}");
            let expected = cli_result(&pod, &config);
            match patch_of(&response) {
                Some(patch) => {
                    let mut patched = pod.clone();
                    json_patch::patch(&mut patched, &patch)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(patched, expected, "{name}");
                    assert_ne!(patched, pod);
                    injected += 1;
                }
                None => assert_eq!(
                    expected, pod,
                    "{name}: skipped by the webhook, not by the CLI"
                ),
            }
        }
        assert!(injected >= 12, "injected {injected}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_pod_and_generate_name_patch_paths() {
    let server = Server::start(&dir("bare"), InjectConfig::default()).await;
    let mut client = server.client(false).await;
    // No labels, annotations, initContainers or volumes; a generated name; no namespace in the
    // object (it comes from the request).
    let bare = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "generateName": "job-" },
                       "spec": { "containers": [{ "name": "job", "image": "job:1" }] } });
    let (_, response) = post(&mut client, &review("a", "batch", &bare)).await;
    let patch = patch_of(&response).expect("a patch");
    let ops = serde_json::to_value(&patch).unwrap();
    let paths: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    for path in [
        "/metadata/annotations",
        "/spec/initContainers",
        "/spec/volumes",
    ] {
        assert!(paths.contains(&path), "{path} not in {paths:?}");
    }
    let mut patched = bare.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched["spec"]["initContainers"][1]["name"], "sluice-proxy");
    assert_eq!(patched["metadata"]["generateName"], "job-");

    // Existing annotations: keys with `/` are escaped as `~1` in the patch paths.
    let mut annotated = bare.clone();
    annotated["metadata"]["annotations"] = json!({ "a~b/c": "1" });
    annotated["spec"]["initContainers"] = json!([{ "name": "setup", "image": "s" }]);
    let (_, response) = post(&mut client, &review("b", "batch", &annotated)).await;
    let patch = patch_of(&response).unwrap();
    let text = serde_json::to_string(&patch).unwrap();
    assert!(
        text.contains("\"/metadata/annotations/sluice.dev~1status\""),
        "{text}"
    );
    let mut patched = annotated.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched["metadata"]["annotations"]["a~b/c"], "1");
    let inits: Vec<&str> = patched["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(inits, ["sluice-init", "sluice-proxy", "setup"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_pods_are_allowed_without_a_patch() {
    let server = Server::start(&dir("skip"), InjectConfig::default()).await;
    let mut client = server.client(false).await;
    let pod = |extra: Value| {
        let mut pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
                              "spec": { "containers": [{ "name": "app", "image": "app" }] } });
        json_patch::merge(&mut pod, &extra);
        pod
    };
    let injected = {
        let (_, response) = post(&mut client, &review("x", "shop", &pod(json!({})))).await;
        let mut p = pod(json!({}));
        json_patch::patch(&mut p, &patch_of(&response).unwrap()).unwrap();
        p
    };
    let cases = [
        (
            "hostNetwork",
            "shop",
            pod(json!({ "spec": { "hostNetwork": true } })),
        ),
        (
            "label false",
            "shop",
            pod(json!({ "metadata": { "labels": { "sluice.dev/inject": "false" } } })),
        ),
        ("kube-system", "kube-system", pod(json!({}))),
        (
            "kube-public",
            "kube-public",
            pod(json!({ "metadata": { "labels": { "sluice.dev/inject": "true" } } })),
        ),
        ("already injected", "shop", injected),
    ];
    for (what, namespace, pod) in cases {
        let (status, response) = post(&mut client, &review(what, namespace, &pod)).await;
        assert_eq!(status, 200, "{what}");
        assert_eq!(
            response["response"],
            json!({ "uid": what, "allowed": true }),
            "{what}"
        );
    }
    let mut update = review("u", "shop", &pod(json!({})));
    update["request"]["operation"] = json!("UPDATE");
    let mut binding = review("s", "shop", &pod(json!({})));
    binding["request"]["subResource"] = json!("binding");
    let mut deployment = review("d", "shop", &json!({ "kind": "Deployment" }));
    deployment["request"]["kind"] =
        json!({ "group": "apps", "version": "v1", "kind": "Deployment" });
    for body in [update, binding, deployment] {
        let (status, response) = post(&mut client, &body).await;
        assert_eq!(status, 200);
        assert_eq!(response["response"]["allowed"], true);
        assert!(response["response"].get("patch").is_none());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_with_a_reason_and_the_server_carries_on() {
    let server = Server::start(&dir("malformed"), InjectConfig::default()).await;
    let mut client = server.client(false).await;
    let good = review(
        "g",
        "shop",
        &json!({ "metadata": {}, "spec": { "containers": [{ "name": "a", "image": "a" }] } }),
    );
    let mut no_uid = good.clone();
    no_uid["request"]["uid"] = json!("");
    let mut v1beta1 = good.clone();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_object = good.clone();
    no_object["request"]
        .as_object_mut()
        .unwrap()
        .remove("object");
    let mut bad_pod = good.clone();
    bad_pod["request"]["object"]["spec"]["containers"] = json!("a");
    let mut no_request = good.clone();
    no_request.as_object_mut().unwrap().remove("request");
    let cases: [(&str, Vec<u8>, &str); 8] = [
        ("empty", Vec::new(), "not an AdmissionReview"),
        (
            "not json",
            b"{\"apiVersion\": ".to_vec(),
            "not an AdmissionReview",
        ),
        ("array", b"[1,2]".to_vec(), "not an AdmissionReview"),
        (
            "no request",
            serde_json::to_vec(&no_request).unwrap(),
            "request: missing",
        ),
        (
            "no uid",
            serde_json::to_vec(&no_uid).unwrap(),
            "request.uid",
        ),
        (
            "v1beta1",
            serde_json::to_vec(&v1beta1).unwrap(),
            "admissionReviewVersions: [v1]",
        ),
        (
            "no object",
            serde_json::to_vec(&no_object).unwrap(),
            "request.object",
        ),
        (
            "bad pod",
            serde_json::to_vec(&bad_pod).unwrap(),
            "request.object.spec.containers: invalid type",
        ),
    ];
    for (what, body, reason) in cases {
        let (status, body) = client.request("POST", "/inject", body).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body.contains(reason), "{what}: {body}");
    }

    // A pod that cannot take the sidecar as annotated is denied, naming the annotation.
    let mut denied = good.clone();
    denied["request"]["object"]["metadata"]["annotations"] =
        json!({ "proxy.sluice.dev/memory": "lots" });
    let (status, response) = post(&mut client, &denied).await;
    assert_eq!(status, 200);
    assert_eq!(response["response"]["allowed"], false);
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("proxy.sluice.dev/memory"), "{message}");

    // Mangled bodies (truncated, bytes changed): 200 or 400, never a dropped connection.
    let bytes = serde_json::to_vec(&good).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut body = bytes.clone();
        match next() % 3 {
            0 => body.truncate((next() as usize) % body.len()),
            1 => {
                let i = (next() as usize) % body.len();
                body[i] = (next() % 256) as u8;
            }
            _ => {
                let i = (next() as usize) % body.len();
                body.insert(i, b"{[\"}]:,0\\"[(next() % 9) as usize]);
            }
        }
        let (status, _) = client.request("POST", "/inject", body).await.unwrap();
        assert!(status == 200 || status == 400, "status {status}");
    }
    let (status, response) = post(&mut client, &good).await;
    assert_eq!(
        (status, &response["response"]["allowed"]),
        (200, &json!(true))
    );

    let (status, _) = client.request("GET", "/inject", Vec::new()).await.unwrap();
    assert_eq!(status, 405);
    // Bodies over the limit are refused early (413, or the connection closed mid-upload).
    let mut big = server.client(false).await;
    if let Ok((status, _)) = big.request("POST", "/inject", vec![b' '; 9 << 20]).await {
        assert_eq!(status, 413);
    }
    let (status, _) = server
        .client(false)
        .await
        .request("GET", "/healthz", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let server = Server::start(&dir("metrics"), InjectConfig::default()).await;
    let mut client = server.client(false).await;
    let (status, body) = client.request("GET", "/healthz", Vec::new()).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));
    let pod = json!({ "spec": { "containers": [{ "name": "a", "image": "a" }] } });
    post(&mut client, &review("m", "shop", &pod)).await;
    client
        .request("POST", "/inject", b"nope".to_vec())
        .await
        .unwrap();
    let (status, body) = client.request("GET", "/metrics", Vec::new()).await.unwrap();
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    for want in [
        "sluice_control_reviews_total{outcome=\"injected\",reason=\"\"} 1",
        "sluice_control_reviews_total{outcome=\"malformed\",reason=\"\"} 1",
        "sluice_control_review_duration_seconds_count 2",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    server.stop().await;
}

/// Polls `check` until it holds, for at most ten seconds.
/// Reads until the server closes; what it sent and how long that took (fails after 20 s).
async fn until_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, Duration) {
    use tokio::io::AsyncReadExt as _;
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "still open: {}",
        String::from_utf8_lossy(&got)
    );
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn slow_clients_are_cut_off_at_the_header_and_request_timeouts() {
    use tokio::io::AsyncWriteExt as _;
    let server = Server::start(&dir("slow"), InjectConfig::default()).await;
    let ca = server.pki.ca_pem();
    let mut headers = tls::tls_stream(server.addr, &ca, b"http/1.1")
        .await
        .unwrap();
    headers
        .write_all(b"POST /inject HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut body = tls::tls_stream(server.addr, &ca, b"http/1.1")
        .await
        .unwrap();
    body.write_all(
        b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"a\"",
    )
    .await
    .unwrap();
    let (slow_headers, slow_body) =
        tokio::join!(until_closed(&mut headers), until_closed(&mut body));
    let limit = sluice_control::serve::HEADER_READ_TIMEOUT + Duration::from_secs(2);
    assert!(slow_headers.1 < limit, "{slow_headers:?}");
    assert!(!slow_headers.0.contains("200"), "{slow_headers:?}");
    assert!(slow_body.0.starts_with("HTTP/1.1 408"), "{slow_body:?}");
    let limit = sluice_control::webhook::REQUEST_TIMEOUT + Duration::from_secs(2);
    assert!(slow_body.1 < limit, "{slow_body:?}");
    // The server carries on.
    let mut client = server.client(false).await;
    let (status, _) = client.request("GET", "/healthz", Vec::new()).await.unwrap();
    assert_eq!(status, 200);
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_without_restart() {
    let server = Server::start(&dir("rotation"), InjectConfig::default()).await;
    let first = server.client(false).await.server_cert;

    // A broken certificate file is not taken: the last good one keeps serving.
    replace_file(&server.cert, "not a certificate");
    let metrics = server.injector.metrics();
    eventually("the failed reload is counted", || async {
        metrics
            .encode(&[])
            .contains("sluice_control_reloads_total{what=\"certificate\",result=\"error\"}")
    })
    .await;
    assert_eq!(server.client(false).await.server_cert, first);

    // A renewed pair (key first, then cert, as a Secret update may land) is served to new
    // connections; an open connection keeps working.
    let mut open = server.client(false).await;
    let (cert, key) = server.pki.leaf("second");
    replace_file(&server.key, &key);
    replace_file(&server.cert, &cert);
    let expected =
        <rustls::pki_types::CertificateDer as PemObject>::from_pem_slice(cert.as_bytes()).unwrap();
    let (addr, ca) = (server.addr, server.pki.ca_pem());
    eventually("the new certificate is served", || {
        let (ca, expected) = (ca.clone(), expected.clone());
        async move {
            let client = tls::Client::connect(addr, &ca, false).await.unwrap();
            client.server_cert == expected
        }
    })
    .await;
    let (status, _) = open.request("GET", "/healthz", Vec::new()).await.unwrap();
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_changes_apply_without_restart() {
    let dir = dir("config");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let path = dir.join("config").join("injector.yaml");
    std::fs::write(&path, "nativeSidecar: true\n").unwrap();
    let config = InjectConfig::load(&path).unwrap();
    let server = Server::start_with(&dir, config, Some(path.clone())).await;
    let pod = json!({ "metadata": {}, "spec": { "containers": [{ "name": "a", "image": "a" }] } });
    let (addr, ca) = (server.addr, server.pki.ca_pem());
    let proxy_place = |pod: Value| {
        let ca = ca.clone();
        async move {
            let mut client = tls::Client::connect(addr, &ca, false).await.unwrap();
            let (_, response) = post(&mut client, &review("c", "shop", &pod)).await;
            let mut patched = pod.clone();
            json_patch::patch(&mut patched, &patch_of(&response).unwrap()).unwrap();
            if patched["spec"]["containers"][0]["name"] == "sluice-proxy" {
                "classic"
            } else {
                "native"
            }
        }
    };
    assert_eq!(proxy_place(pod.clone()).await, "native");

    // A bad config is refused and the last good one stays.
    replace_file(&path, "nativeSidecar: maybe\n");
    let metrics = server.injector.metrics();
    eventually("the bad config is refused", || async {
        metrics
            .encode(&[])
            .contains("sluice_control_reloads_total{what=\"config\",result=\"error\"}")
    })
    .await;
    assert_eq!(proxy_place(pod.clone()).await, "native");

    replace_file(&path, "nativeSidecar: false\n");
    eventually("the new config is used", || {
        let place = proxy_place(pod.clone());
        async move { place.await == "classic" }
    })
    .await;
    server.stop().await;
}
