use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn pod(spec: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" }, "spec": spec })
}

fn app() -> Value {
    json!({ "containers": [{ "name": "app", "image": "app:1", "ports": [{ "name": "http", "containerPort": 8080 }] }] })
}

fn with_annotations(mut pod: Value, annotations: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    pod["metadata"]["annotations"] = Value::Object(map);
    pod
}

const NS: Namespace = Namespace {
    name: "shop",
    labels: None,
};

fn injected(pod: &Value, config: &InjectConfig) -> Value {
    match inject(pod, config, &NS).unwrap() {
        Outcome::Injected { pod, .. } => pod,
        Outcome::Skipped(skip) => panic!("skipped: {skip}"),
    }
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod["spec"][f].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn init_args(pod: &Value) -> Vec<String> {
    serde_json::from_value(container(pod, INIT_CONTAINER)["args"].clone()).unwrap()
}

fn env<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    container(pod, PROXY_CONTAINER)["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
}

#[test]
fn skips_with_reasons() {
    let labels =
        |v: &str| BTreeMap::from([(annotation::NAMESPACE_INJECTION.to_string(), v.to_string())]);
    let (enabled, disabled, other) = (labels("enabled"), labels("disabled"), BTreeMap::new());
    let plain = pod(app());
    let mut host = plain.clone();
    host["spec"]["hostNetwork"] = json!(true);
    let mut opt_out = plain.clone();
    opt_out["metadata"]["labels"] = json!({ "sluice.dev/inject": "false" });
    let mut opt_in = plain.clone();
    opt_in["metadata"]["labels"] = json!({ "sluice.dev/inject": "true" });
    let mut by_hand = plain.clone();
    by_hand["spec"]["containers"][0]["name"] = json!("sluice-proxy");
    let config = InjectConfig::default();
    let ns = |name, labels| Namespace { name, labels };
    let cases: [(&Value, Namespace, Option<&str>); 10] = [
        (&plain, ns("shop", None), None),
        (&plain, ns("shop", Some(&enabled)), None),
        (
            &plain,
            ns("shop", Some(&disabled)),
            Some("namespace-disabled"),
        ),
        (
            &plain,
            ns("shop", Some(&other)),
            Some("namespace-not-enabled"),
        ),
        (&opt_in, ns("shop", Some(&disabled)), None),
        (&opt_out, ns("shop", Some(&enabled)), Some("pod-label")),
        (&host, ns("shop", Some(&enabled)), Some("host-network")),
        (&opt_in, ns("kube-system", None), Some("system-namespace")),
        (
            &plain,
            ns("kube-public", Some(&enabled)),
            Some("system-namespace"),
        ),
        (&by_hand, ns("shop", None), Some("has-sidecar")),
    ];
    for (i, (pod, ns, want)) in cases.into_iter().enumerate() {
        let got = match inject(pod, &config, &ns).unwrap() {
            Outcome::Injected { .. } => None,
            Outcome::Skipped(skip) => Some(skip.kind()),
        };
        assert_eq!(got, want, "case {i}");
    }
    let err = inject(
        &{
            let mut p = plain.clone();
            p["metadata"]["labels"] = json!({ "sluice.dev/inject": "yes" });
            p
        },
        &config,
        &NS,
    )
    .unwrap_err();
    assert!(err.to_string().contains("sluice.dev/inject"), "{err}");
}

#[test]
fn injected_pod_is_left_unchanged() {
    let config = InjectConfig::default();
    let once = injected(&pod(app()), &config);
    assert_eq!(
        inject(&once, &config, &NS).unwrap(),
        Outcome::Skipped(Skip::AlreadyInjected)
    );
}

#[test]
fn bare_pod_gets_every_field_and_uninject_removes_them() {
    let bare = json!({ "spec": { "containers": [{ "name": "app", "image": "app:1" }] } });
    for native in [true, false] {
        let config = InjectConfig {
            native_sidecar: native,
            ..Default::default()
        };
        let out = injected(&bare, &config);
        let status = Status::parse(
            out["metadata"]["annotations"][annotation::STATUS]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let mut created = status.created.clone();
        created.sort();
        assert_eq!(
            created,
            [
                "metadata",
                "metadata.annotations",
                "spec.initContainers",
                "spec.volumes"
            ]
        );
        assert_eq!(names(&out, "volumes"), [PODINFO_VOLUME]);
        assert_eq!(
            uninject(&out).unwrap(),
            Some(bare.clone()),
            "native={native}"
        );
    }
    assert_eq!(uninject(&bare).unwrap(), None);
}

#[test]
fn container_order_in_both_modes() {
    let mut p = pod(app());
    p["spec"]["initContainers"] = json!([{ "name": "migrate", "image": "m" }]);
    let last = with_annotations(p.clone(), &[(annotation::CAPTURE_INIT_CONTAINERS, "false")]);
    let native = InjectConfig::default();
    let classic = InjectConfig {
        native_sidecar: false,
        ..Default::default()
    };
    let cases = [
        (
            &p,
            &native,
            vec!["sluice-init", "sluice-proxy", "migrate"],
            vec!["app"],
        ),
        (
            &last,
            &native,
            vec!["migrate", "sluice-init", "sluice-proxy"],
            vec!["app"],
        ),
        (
            &p,
            &classic,
            vec!["sluice-init", "migrate"],
            vec!["sluice-proxy", "app"],
        ),
        (
            &last,
            &classic,
            vec!["migrate", "sluice-init"],
            vec!["sluice-proxy", "app"],
        ),
    ];
    for (input, config, init, containers) in cases {
        let out = injected(input, config);
        assert_eq!(names(&out, "initContainers"), init);
        assert_eq!(names(&out, "containers"), containers);
        assert_eq!(uninject(&out).unwrap().as_ref(), Some(input));
    }
}

#[test]
fn native_and_classic_proxy() {
    let native = injected(&pod(app()), &InjectConfig::default());
    let proxy = container(&native, PROXY_CONTAINER);
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["startupProbe"]["httpGet"]["path"], "/healthz/ready");
    assert!(proxy.get("lifecycle").is_none());
    assert!(
        native["metadata"]["annotations"]
            .get(annotation::DEFAULT_CONTAINER)
            .is_none()
    );

    let classic = injected(
        &pod(app()),
        &InjectConfig {
            native_sidecar: false,
            ..Default::default()
        },
    );
    let proxy = container(&classic, PROXY_CONTAINER);
    assert!(proxy.get("restartPolicy").is_none());
    assert!(proxy.get("startupProbe").is_none());
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        json!(["sluice-proxy", "wait", "--timeout=60s"])
    );
    assert_eq!(
        classic["metadata"]["annotations"][annotation::DEFAULT_CONTAINER],
        "app"
    );
    for pod in [&native, &classic] {
        let sc = &container(pod, PROXY_CONTAINER)["securityContext"];
        assert_eq!(
            (sc["runAsUser"].as_i64(), sc["runAsGroup"].as_i64()),
            (Some(1337), Some(1337))
        );
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"], json!({ "drop": ["ALL"] }));
        let init = &container(pod, INIT_CONTAINER)["securityContext"]["capabilities"];
        assert_eq!(
            init,
            &json!({ "add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"] })
        );
    }
}

#[test]
fn capture_annotations_become_init_args() {
    let config = InjectConfig {
        capture: crate::config::CaptureConfig {
            exclude_outbound_cidrs: "169.254.169.254/32".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = with_annotations(
        pod(app()),
        &[
            (annotation::INCLUDE_INBOUND_PORTS, "http, 9090"),
            (annotation::EXCLUDE_INBOUND_PORTS, "9090"),
            (annotation::EXCLUDE_OUTBOUND_PORTS, "5432,5432"),
            (
                annotation::INCLUDE_OUTBOUND_CIDRS,
                "10.96.0.0/12,fd00::/108",
            ),
            (annotation::EXCLUDE_OUTBOUND_CIDRS, "10.96.0.1"),
        ],
    );
    let args = init_args(&injected(&p, &config));
    for want in [
        "--inbound-ports=8080,9090",
        "--exclude-inbound-ports=9090",
        "--exclude-outbound-ports=5432",
        "--outbound-cidrs=10.96.0.0/12,fd00::/108",
        "--exclude-outbound-cidrs=169.254.169.254/32,10.96.0.1",
    ] {
        assert!(args.contains(&want.to_string()), "{want} not in {args:?}");
    }
    let none = with_annotations(pod(app()), &[(annotation::INCLUDE_INBOUND_PORTS, "")]);
    assert!(init_args(&injected(&none, &config)).contains(&"--inbound-ports=".to_string()));
}

#[test]
fn bad_annotations_are_errors_naming_them() {
    let cases = [
        (annotation::EXCLUDE_INBOUND_PORTS, "*"),
        (annotation::EXCLUDE_INBOUND_PORTS, "70000"),
        (annotation::INCLUDE_INBOUND_PORTS, "grpc"),
        (annotation::EXCLUDE_OUTBOUND_CIDRS, "10.0.0.0/33"),
        (annotation::PROXY_CPU, "fast"),
        (annotation::PROXY_LOG_LEVEL, "loud"),
        (annotation::CAPTURE_INIT_CONTAINERS, "maybe"),
        (annotation::APP_LOOPBACK_PORTS, "*"),
        (annotation::APP_LOOPBACK_PORTS, "admin"),
    ];
    for (key, value) in cases {
        let p = with_annotations(pod(app()), &[(key, value)]);
        let err = inject(&p, &InjectConfig::default(), &NS).unwrap_err();
        assert!(
            matches!(&err, InjectError::Annotation { key: k, .. } if k == key),
            "{key}: {err}"
        );
        assert!(err.to_string().contains(value), "{err}");
    }
}

#[test]
fn loopback_delivery_only_for_the_ports_the_pod_names() {
    assert_eq!(
        env(
            &injected(&pod(app()), &InjectConfig::default()),
            "SLUICE_APP_LOOPBACK_PORTS"
        ),
        None,
        "no loopback delivery unless asked for"
    );
    let p = with_annotations(
        pod(app()),
        &[(annotation::APP_LOOPBACK_PORTS, "http, 9090")],
    );
    let out = injected(&p, &InjectConfig::default());
    assert_eq!(
        env(&out, "SLUICE_APP_LOOPBACK_PORTS"),
        Some(&json!("8080,9090"))
    );
}

#[test]
fn proxy_annotations() {
    let p = with_annotations(
        pod(app()),
        &[
            (annotation::PROXY_CPU, "250m"),
            (annotation::PROXY_LOG_LEVEL, "debug"),
        ],
    );
    let out = injected(&p, &InjectConfig::default());
    let resources = &container(&out, PROXY_CONTAINER)["resources"];
    assert_eq!(
        resources,
        &json!({ "requests": { "cpu": "250m", "memory": "64Mi" }, "limits": { "memory": "256Mi" } })
    );
    assert_eq!(env(&out, "SLUICE_LOG_LEVEL"), Some(&json!("debug")));
}

#[test]
fn the_proxys_worker_threads_follow_its_cpu_limit() {
    // (cpu-limit annotation, SLUICE_CONCURRENCY)
    let cases = [
        (None, None),
        (Some("500m"), Some("1")),
        (Some("1"), Some("1")),
        (Some("2500m"), Some("3")),
    ];
    for (limit, threads) in cases {
        let annotations: Vec<(&str, &str)> = limit
            .map(|l| (annotation::PROXY_CPU_LIMIT, l))
            .into_iter()
            .collect();
        let p = with_annotations(pod(app()), &annotations);
        let out = injected(&p, &InjectConfig::default());
        assert_eq!(
            env(&out, "SLUICE_CONCURRENCY"),
            threads.map(|t| json!(t)).as_ref(),
            "{limit:?}"
        );
    }
}

#[test]
fn probes_on_captured_ports_go_through_the_proxy() {
    let spec = json!({ "containers": [{
        "name": "app",
        "image": "app:1",
        "ports": [{ "name": "http", "containerPort": 8080 }, { "name": "admin", "containerPort": 9901 }],
        "readinessProbe": { "httpGet": { "path": "/ready", "port": "http", "httpHeaders": [{ "name": "X", "value": "1" }] }, "periodSeconds": 3 },
        "livenessProbe": { "tcpSocket": { "port": 9901 }, "timeoutSeconds": 4 },
        "startupProbe": { "grpc": { "port": 8080, "service": "health" } },
    }, {
        "name": "side",
        "image": "side:1",
        "readinessProbe": { "exec": { "command": ["true"] } },
        "livenessProbe": { "httpGet": { "port": "nope" } },
        "startupProbe": { "httpGet": { "host": "10.0.0.1", "port": 80 } },
    }]});
    let p = with_annotations(pod(spec), &[(annotation::EXCLUDE_INBOUND_PORTS, "admin")]);
    let Outcome::Injected { pod: out, warnings } =
        inject(&p, &InjectConfig::default(), &NS).unwrap()
    else {
        panic!("skipped")
    };
    let app = container(&out, "app");
    assert_eq!(
        app["readinessProbe"],
        json!({ "httpGet": { "path": "/app-health/app/readyz", "port": 15021, "scheme": "HTTP" }, "periodSeconds": 3 })
    );
    assert_eq!(
        app["startupProbe"]["httpGet"]["path"],
        "/app-health/app/startupz"
    );
    assert_eq!(
        app["livenessProbe"], p["spec"]["containers"][0]["livenessProbe"],
        "port 9901 is not captured"
    );
    let side = container(&out, "side");
    assert_eq!(
        side, &p["spec"]["containers"][1],
        "exec, unknown port name and host probes stay"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("\"nope\""), "{warnings:?}");

    let app_probes: Value =
        serde_json::from_str(env(&out, "SLUICE_APP_PROBES").unwrap().as_str().unwrap()).unwrap();
    assert_eq!(
        app_probes,
        json!({
            "/app-health/app/readyz": { "httpGet": { "path": "/ready", "port": 8080, "httpHeaders": [{ "name": "X", "value": "1" }] }, "timeoutSeconds": 1 },
            "/app-health/app/startupz": { "grpc": { "port": 8080, "service": "health" }, "timeoutSeconds": 1 },
        })
    );
    assert_eq!(uninject(&out).unwrap(), Some(p.clone()));

    let off = InjectConfig {
        rewrite_probes: false,
        ..Default::default()
    };
    let out = injected(&p, &off);
    assert_eq!(
        container(&out, "app")["readinessProbe"],
        p["spec"]["containers"][0]["readinessProbe"]
    );
    assert_eq!(env(&out, "SLUICE_APP_PROBES"), None);
}

#[test]
fn prometheus_annotations_merge() {
    let out = injected(&pod(app()), &InjectConfig::default());
    let annotations = &out["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "15090");
    let own = with_annotations(pod(app()), &[("prometheus.io/port", "9100"), ("team", "a")]);
    let out = injected(&own, &InjectConfig::default());
    let annotations = out["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(annotations["prometheus.io/port"], "9100");
    assert!(!annotations.contains_key("prometheus.io/scrape"));
    assert_eq!(annotations["team"], "a");
    assert_eq!(uninject(&out).unwrap(), Some(own));
}

#[test]
fn conflicts_are_errors() {
    let mut p = pod(app());
    p["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 15001 }]);
    let err = inject(&p, &InjectConfig::default(), &NS).unwrap_err();
    assert!(err.to_string().contains("outbound port"), "{err}");
    p["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 15001, "protocol": "UDP" }]);
    assert!(inject(&p, &InjectConfig::default(), &NS).is_ok());
    p["spec"]["volumes"] = json!([{ "name": PODINFO_VOLUME, "emptyDir": {} }]);
    assert!(matches!(
        inject(&p, &InjectConfig::default(), &NS),
        Err(InjectError::Conflict(_))
    ));
}

#[test]
fn malformed_pods_name_the_field() {
    let cases = [
        (json!("pod"), ""),
        (json!({ "metadata": {} }), "spec"),
        (
            json!({ "spec": { "containers": "app" } }),
            "spec.containers",
        ),
        (
            json!({ "metadata": { "labels": { "a": 1 } }, "spec": { "containers": [] } }),
            "metadata.labels.a",
        ),
    ];
    for (p, path) in cases {
        match inject(&p, &InjectConfig::default(), &NS) {
            Err(InjectError::Malformed { path: got, .. }) => assert_eq!(got, path),
            other => panic!("{p}: {other:?}"),
        }
    }
}

#[test]
fn tproxy_gives_the_proxy_net_admin() {
    let mut config = InjectConfig::default();
    config.capture.mode = "tproxy".into();
    let out = injected(&pod(app()), &config);
    let proxy = container(&out, PROXY_CONTAINER);
    assert_eq!(
        proxy["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN"])
    );
    assert_eq!(env(&out, "SLUICE_MODE"), Some(&json!("tproxy")));
    assert!(init_args(&out).contains(&"--mode=tproxy".to_string()));
}

#[test]
fn run_spec_resolves_the_downward_api() {
    let mut p = pod(app());
    p["metadata"]["labels"] = json!({ "app": "web", "note": "say \"hi\"" });
    p["spec"]["serviceAccountName"] = json!("web-sa");
    let out = injected(&p, &InjectConfig::default());
    let runtime = PodRuntime {
        pod_name: "web-1".into(),
        namespace: "shop".into(),
        pod_ip: "10.1.0.5".into(),
    };
    let spec = run_spec(&out, &runtime).unwrap();
    assert_eq!(spec.init.args, init_args(&out));
    let env: BTreeMap<_, _> = spec.proxy.env.iter().cloned().collect();
    assert_eq!(env["SLUICE_POD_NAME"], "web-1");
    assert_eq!(env["SLUICE_NAMESPACE"], "shop");
    assert_eq!(env["SLUICE_POD_IP"], "10.1.0.5");
    assert_eq!(env["SLUICE_SERVICE_ACCOUNT"], "web-sa");
    assert_eq!(env["SLUICE_INBOUND_PORT"], "15006");
    assert_eq!(
        spec.files,
        [(
            std::path::PathBuf::from("/etc/sluice/podinfo/labels"),
            "app=\"web\"\nnote=\"say \\\"hi\\\"\"\n".to_string()
        )]
    );
    assert!(run_spec(&p, &runtime).is_err(), "not injected");
}

fn discovery_config(insecure: bool) -> InjectConfig {
    InjectConfig {
        discovery: Some(crate::config::DiscoveryConfig {
            address: "sluice-control.sluice-system.svc:15012".into(),
            ca_config_map: "mesh-ca".into(),
            insecure,
        }),
        ..Default::default()
    }
}

fn volume_sources(pod: &Value) -> &Vec<Value> {
    pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == PODINFO_VOLUME)
        .unwrap()["projected"]["sources"]
        .as_array()
        .unwrap()
}

#[test]
fn configmap_mode_without_discovery() {
    let out = injected(&pod(app()), &InjectConfig::default());
    assert_eq!(env(&out, "SLUICE_CONFIG"), Some(&json!(PODINFO_PATH)));
    assert_eq!(env(&out, "SLUICE_DISCOVERY"), None);
    assert_eq!(env(&out, "SLUICE_DISCOVERY_CA"), None);
    assert_eq!(
        volume_sources(&out)[1]["configMap"],
        json!({ "name": MESH_CONFIG_MAP, "optional": true })
    );
}

#[test]
fn discovery_mode_points_the_proxy_at_the_control_plane() {
    for native in [true, false] {
        let config = InjectConfig {
            native_sidecar: native,
            ..discovery_config(false)
        };
        let original = pod(app());
        let out = injected(&original, &config);
        assert_eq!(
            env(&out, "SLUICE_CONFIG"),
            None,
            "no --config with --discovery"
        );
        assert_eq!(
            env(&out, "SLUICE_DISCOVERY"),
            Some(&json!("https://sluice-control.sluice-system.svc:15012"))
        );
        assert_eq!(
            env(&out, "SLUICE_DISCOVERY_CA"),
            Some(&json!("/etc/sluice/podinfo/ca.crt"))
        );
        // Who the proxy is, told to the control plane: the downward API as in ConfigMap mode.
        for (name, field) in [
            ("SLUICE_POD_NAME", "metadata.name"),
            ("SLUICE_NAMESPACE", "metadata.namespace"),
            ("SLUICE_POD_IP", "status.podIP"),
            ("SLUICE_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ] {
            let var = container(&out, PROXY_CONTAINER)["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .unwrap();
            assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field);
        }
        assert_eq!(
            env(&out, "SLUICE_LABELS_FILE"),
            Some(&json!("/etc/sluice/podinfo/labels"))
        );
        // The CA, required: the kubelet holds the pod until the ConfigMap exists.
        let sources = volume_sources(&out);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[1]["configMap"],
            json!({ "name": "mesh-ca", "items": [{ "key": "ca.crt", "path": "ca.crt" }],
                    "optional": false })
        );
        assert!(
            !out.to_string().contains(MESH_CONFIG_MAP),
            "no mesh-config ConfigMap"
        );
        assert_eq!(uninject(&out).unwrap(), Some(original), "native={native}");
    }
}

#[test]
fn insecure_discovery_is_plain_text_without_a_ca() {
    let original = pod(app());
    let out = injected(&original, &discovery_config(true));
    assert_eq!(
        env(&out, "SLUICE_DISCOVERY"),
        Some(&json!("http://sluice-control.sluice-system.svc:15012"))
    );
    assert_eq!(env(&out, "SLUICE_DISCOVERY_CA"), None);
    assert_eq!(env(&out, "SLUICE_CONFIG"), None);
    let sources = volume_sources(&out);
    assert_eq!(sources.len(), 1, "labels only: {sources:?}");
    assert!(sources[0]["downwardAPI"].is_object());
    assert_eq!(uninject(&out).unwrap(), Some(original));
}

#[test]
fn run_spec_gives_the_discovery_environment() {
    let out = injected(&pod(app()), &discovery_config(false));
    let runtime = PodRuntime {
        pod_name: "web-1".into(),
        namespace: "shop".into(),
        pod_ip: "10.1.0.5".into(),
    };
    let env: BTreeMap<_, _> = run_spec(&out, &runtime)
        .unwrap()
        .proxy
        .env
        .into_iter()
        .collect();
    assert_eq!(
        env["SLUICE_DISCOVERY"],
        "https://sluice-control.sluice-system.svc:15012"
    );
    assert_eq!(env["SLUICE_NAMESPACE"], "shop");
    assert_eq!(env["SLUICE_POD_IP"], "10.1.0.5");
    assert!(!env.contains_key("SLUICE_CONFIG"));
}

#[test]
fn a_cluster_domain_other_than_cluster_local_reaches_the_proxy() {
    let default = injected(&pod(app()), &InjectConfig::default());
    assert_eq!(env(&default, "SLUICE_CLUSTER_DOMAIN"), None);
    let config: InjectConfig = serde_norway::from_str("clusterDomain: corp.internal\n").unwrap();
    let out = injected(&pod(app()), &config);
    assert_eq!(
        env(&out, "SLUICE_CLUSTER_DOMAIN"),
        Some(&json!("corp.internal"))
    );
    let bad = serde_norway::from_str::<InjectConfig>("clusterDomain: Corp_Internal\n");
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("not a cluster domain")
    );
}
