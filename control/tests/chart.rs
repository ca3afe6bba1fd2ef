//! The Helm chart (`charts/sluice`) against the code it deploys, so the two cannot drift
//! apart:
//!
//! - the CRDs of `crds/` define exactly the kinds, groups and versions sluice loads, their
//!   top-level fields are the fields sluice's types accept, printer columns point at
//!   declared fields, and they validate against the Kubernetes schema;
//! - `injector.config` of values.yaml is the injector's built-in config, field for field;
//! - the chart rendered (with `helm` when it is on the PATH, else with Helm's own engine
//!   from the `helm-python-sdk` PyPI package): every object validates against the Kubernetes
//!   schema; the webhook selectors send a pod to the webhook exactly when the injection
//!   rules of docs/injection.md say it is for sluice; names, ports, probes and volumes fit
//!   together; and the real `sluice-control`, started with the rendered Deployment's
//!   arguments, config and certificate, is trusted with the webhook's caBundle under the
//!   Service's DNS name and injects with the rendered config.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_api::load::ISTIO_VERSIONS;
use sluice_control::InjectConfig;
use sluice_control::config::DiscoveryConfig;

const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/sluice")
}

fn tmp_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("chart")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The documents of a YAML text, empty ones left out.
fn yaml_docs(name: &str, text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: not valid YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {value}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| str_of(v, "list item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// CRDs

/// The kinds sluice loads (api/src/load.rs), with the versions it reads them in, and the
/// printer columns the chart gives them (Istio's for the Istio kinds):
/// (group, kind) → (versions, printer column names).
type Kinds = BTreeMap<(&'static str, &'static str), (Vec<&'static str>, Vec<&'static str>)>;

fn expected_kinds() -> Kinds {
    let istio = ISTIO_VERSIONS.to_vec();
    BTreeMap::from([
        (
            ("networking.istio.io", "VirtualService"),
            (istio.clone(), vec!["Gateways", "Hosts", "Age"]),
        ),
        (
            ("networking.istio.io", "DestinationRule"),
            (istio.clone(), vec!["Host", "Age"]),
        ),
        (
            ("networking.istio.io", "ServiceEntry"),
            (
                istio.clone(),
                vec!["Hosts", "Location", "Resolution", "Age"],
            ),
        ),
        (("networking.istio.io", "Gateway"), (istio, vec![])),
        (
            ("sluice.dev", "MeshConfig"),
            (vec!["v1alpha1"], vec!["Outbound", "Age"]),
        ),
        (
            ("sluice.dev", "ReleasePolicy"),
            (vec!["v1alpha1"], vec!["Host", "Age"]),
        ),
    ])
}

/// A small valid spec of each kind.
fn sample_spec(kind: &str) -> Value {
    match kind {
        "VirtualService" => json!({
            "hosts": ["reviews"],
            "http": [{ "route": [{ "destination": { "host": "reviews" } }] }],
        }),
        "DestinationRule" => json!({ "host": "reviews" }),
        "ServiceEntry" => json!({
            "hosts": ["api.example.com"],
            "ports": [{ "number": 443, "name": "https", "protocol": "TLS" }],
            "resolution": "DNS",
            "location": "MESH_EXTERNAL",
        }),
        "Gateway" => json!({
            "selector": { "istio": "ingressgateway" },
            "servers": [{ "port": { "number": 80, "name": "http", "protocol": "HTTP" }, "hosts": ["*"] }],
        }),
        "MeshConfig" => json!({ "outboundTrafficPolicy": { "mode": "REGISTRY_ONLY" } }),
        "ReleasePolicy" => json!({
            "host": "reviews",
            "sticky": { "cookie": { "name": "gray-user", "ttl": "720h" } },
            "fallback": { "subsets": [{ "from": "v2", "to": "v1" }] },
            "accessLog": { "headers": ["x-swimlane"] },
            "protectedHeaders": {
                "gateways": ["edge"],
                "token": { "header": "x-gray-auth", "secretFile": "/etc/gray/token" },
                "jwt": { "jwksFile": "/etc/gray/jwks.json", "claim": "groups", "values": ["gray"] },
            },
        }),
        other => panic!("no sample for {other}"),
    }
}

fn crd_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in charts/sluice/crds");
    files
}

/// Every CRD of crds/ by (group, kind); each file holds one.
fn crds() -> BTreeMap<(String, String), Value> {
    let mut crds = BTreeMap::new();
    for file in crd_files() {
        let name = file.display().to_string();
        assert!(
            name.ends_with(".yaml"),
            "{name}: crds/ should hold only .yaml files"
        );
        let docs = yaml_docs(&name, &read(&file));
        assert_eq!(docs.len(), 1, "{name}: one CRD per file");
        let crd = docs.into_iter().next().unwrap();
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1", "{name}");
        assert_eq!(crd["kind"], "CustomResourceDefinition", "{name}");
        let group = str_of(&crd["spec"]["group"], "spec.group").to_string();
        let kind = str_of(&crd["spec"]["names"]["kind"], "spec.names.kind").to_string();
        let plural = str_of(&crd["spec"]["names"]["plural"], "plural");
        assert_eq!(
            file.file_name().unwrap().to_str().unwrap(),
            format!("{plural}.{group}.yaml"),
            "file name"
        );
        let previous = crds.insert((group, kind), crd);
        assert!(previous.is_none(), "{name}: a second CRD for its kind");
    }
    crds
}

/// Loads one resource with sluice's loader; returns the error diagnostics' texts.
fn load_errors(api_version: &str, kind: &str, spec: &Value) -> Vec<String> {
    let doc = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": { "name": "sample", "namespace": "shop" },
        "spec": spec,
    });
    let set = sluice_api::load_str("crd-sample.yaml", &doc.to_string());
    let mut errors: Vec<String> = set
        .errors()
        .map(|d| format!("{}: {}", d.path.clone().unwrap_or_default(), d.message))
        .collect();
    if errors.is_empty() && set.resources.len() != 1 {
        errors.push(format!(
            "{kind} ({api_version}) was not loaded as a resource: {:?}",
            set.diagnostics
        ));
    }
    errors
}

/// The fields sluice accepts in the object at `path` of a `kind`'s spec, read from the
/// loader's error for an unknown field ("allowed here: a, b, c").
fn accepted_fields(api_version: &str, kind: &str, path: &[&str]) -> BTreeSet<String> {
    let mut spec = sample_spec(kind);
    let mut slot = &mut spec;
    for key in path {
        slot = &mut slot[*key];
    }
    slot["zzNotAField"] = json!(1);
    let errors = load_errors(api_version, kind, &spec);
    let message = errors
        .iter()
        .find(|e| e.contains("zzNotAField"))
        .unwrap_or_else(|| panic!("{kind}: no unknown-field error for zzNotAField: {errors:?}"));
    let allowed = message
        .split("allowed here: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{kind}: the error does not list the allowed fields: {message}"));
    // serde lists them as `a`, `a or b`, or `one of a, b, c`.
    let allowed = allowed.split(')').next().unwrap().replace(" or ", ", ");
    allowed.split(", ").map(str::to_string).collect()
}

/// Checks that a schema node is structural (a type on every node, items on arrays) and
/// returns its declared property names.
fn check_structural(schema: &Value, at: &str) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    let ty = schema["type"].as_str();
    assert!(
        ty.is_some() || preserve,
        "{at}: a structural schema needs a type on every node"
    );
    assert!(
        schema["description"].is_string(),
        "{at}: give every field a description (kubectl explain shows it)"
    );
    if ty == Some("array") {
        assert!(schema["items"].is_object(), "{at}: array without items");
        let items = &schema["items"];
        assert!(
            items["type"].is_string(),
            "{at}.items: a structural schema needs a type"
        );
        if let Some(props) = items["properties"].as_object() {
            for (name, prop) in props {
                check_structural(prop, &format!("{at}[].{name}"));
            }
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        assert_eq!(ty, Some("object"), "{at}: properties on a non-object");
        for (name, prop) in props {
            check_structural(prop, &format!("{at}.{name}"));
        }
    }
}

#[test]
fn crds_define_exactly_the_kinds_and_versions_sluice_loads() {
    let crds = crds();
    let expected = expected_kinds();
    let found: BTreeSet<(String, String)> = crds.keys().cloned().collect();
    let wanted: BTreeSet<(String, String)> = expected
        .keys()
        .map(|(g, k)| (g.to_string(), k.to_string()))
        .collect();
    assert_eq!(found, wanted, "the kinds of charts/sluice/crds");

    for ((group, kind), crd) in &crds {
        let (versions, columns) = &expected[&(group.as_str(), kind.as_str())];
        let spec = &crd["spec"];
        let names = &spec["names"];
        let plural = str_of(&names["plural"], "plural");
        assert_eq!(crd["metadata"]["name"], format!("{plural}.{group}"));
        assert_eq!(names["singular"], kind.to_lowercase(), "{kind}: singular");
        assert_eq!(names["listKind"], format!("{kind}List"), "{kind}: listKind");
        assert!(
            plural.starts_with(&kind.to_lowercase()[..kind.len() - 1]),
            "{kind}: plural {plural}"
        );
        assert_eq!(spec["scope"], "Namespaced", "{kind}: scope");
        if group == "networking.istio.io" {
            // As Istio names them, so `kubectl get vs` keeps working.
            let short = match kind.as_str() {
                "VirtualService" => "vs",
                "DestinationRule" => "dr",
                "ServiceEntry" => "se",
                _ => "gw",
            };
            assert_eq!(strings(&names["shortNames"]), [short], "{kind}: shortNames");
            assert!(
                strings(&names["categories"]).contains(&"istio-io".to_string()),
                "{kind}: category istio-io"
            );
        }

        let list = spec["versions"].as_array().unwrap();
        let served: Vec<&str> = list
            .iter()
            .map(|v| str_of(&v["name"], "version name"))
            .collect();
        assert_eq!(&served, versions, "{kind}: versions");
        let storage: Vec<&str> = list
            .iter()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        let want_storage = if group == "sluice.dev" {
            "v1alpha1"
        } else {
            "v1"
        };
        assert_eq!(storage, [want_storage], "{kind}: the storage version");
        for version in list {
            let name = version["name"].as_str().unwrap();
            assert_eq!(version["served"], true, "{kind} {name}: served");
            // The same schema and columns in every version: sluice reads them alike.
            assert_eq!(
                version["schema"], list[0]["schema"],
                "{kind} {name}: schema"
            );
            assert_eq!(
                version["additionalPrinterColumns"], list[0]["additionalPrinterColumns"],
                "{kind} {name}: printer columns"
            );
            assert_eq!(
                version["subresources"],
                json!({"status": {}}),
                "{kind} {name}"
            );

            // sluice loads a resource of this apiVersion.
            let api_version = format!("{group}/{name}");
            let errors = load_errors(&api_version, kind, &sample_spec(kind));
            assert!(
                errors.is_empty(),
                "{kind} {api_version} from the CRD does not load in sluice: {errors:?}"
            );
        }

        let schema = &list[0]["schema"]["openAPIV3Schema"];
        check_structural(schema, kind);
        assert_eq!(schema["type"], "object");
        let spec_schema = &schema["properties"]["spec"];
        assert_eq!(spec_schema["type"], "object", "{kind}: spec");
        assert!(schema["properties"]["status"].is_object(), "{kind}: status");

        // The top-level fields of the schema are exactly those sluice accepts.
        let api_version = format!("{group}/{}", versions[0]);
        let declared: BTreeSet<String> = spec_schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{kind}: spec declares no properties"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            declared,
            accepted_fields(&api_version, kind, &[]),
            "{kind}: the CRD's spec fields and the fields sluice reads"
        );
        if kind == "ReleasePolicy" {
            check_release_policy_schema(spec_schema, &api_version);
        } else if group == "sluice.dev" {
            // sluice's own kind: a complete schema, nothing left unchecked.
            assert_ne!(
                spec_schema["x-kubernetes-preserve-unknown-fields"], true,
                "{kind}: a complete schema"
            );
            let policy = &spec_schema["properties"]["outboundTrafficPolicy"];
            let declared: BTreeSet<String> = policy["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(
                declared,
                accepted_fields(&api_version, kind, &["outboundTrafficPolicy"]),
                "MeshConfig outboundTrafficPolicy fields"
            );
            let propagation: BTreeSet<String> =
                spec_schema["properties"]["headerPropagation"]["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
            assert_eq!(
                propagation,
                accepted_fields(&api_version, kind, &["headerPropagation"]),
                "MeshConfig headerPropagation fields"
            );
            let modes = strings(&policy["properties"]["mode"]["enum"]);
            assert_eq!(modes, ["ALLOW_ANY", "REGISTRY_ONLY"]);
            for mode in modes {
                let spec = json!({ "outboundTrafficPolicy": { "mode": mode } });
                assert_eq!(load_errors(&api_version, kind, &spec), Vec::<String>::new());
            }
            assert!(
                !load_errors(
                    &api_version,
                    kind,
                    &json!({ "outboundTrafficPolicy": { "mode": "DENY" } })
                )
                .is_empty(),
                "a mode outside the CRD's enum is refused by sluice too"
            );
            for (field, value) in [
                ("mirrorAuthoritySuffix", json!("-shadow")),
                ("protocolDetectionTimeout", json!("100ms")),
                ("connectTimeout", json!("10s")),
            ] {
                assert_eq!(
                    spec_schema["properties"][field]["type"], "string",
                    "MeshConfig {field}"
                );
                let spec = json!({ field: value });
                assert_eq!(load_errors(&api_version, kind, &spec), Vec::<String>::new());
            }
        } else {
            assert_eq!(
                spec_schema["x-kubernetes-preserve-unknown-fields"], true,
                "{kind}: sluice validates below the top level itself"
            );
        }

        // Printer columns: the expected ones, each on a declared field.
        let printer = list[0]["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let column_names: Vec<&str> = printer
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(&column_names, columns, "{kind}: printer columns");
        for column in &printer {
            let path = str_of(&column["jsonPath"], "jsonPath");
            if column["name"] == "Age" {
                assert_eq!(path, ".metadata.creationTimestamp");
                assert_eq!(column["type"], "date");
                continue;
            }
            let mut node = schema;
            for step in path.trim_start_matches('.').split('.') {
                node = &node["properties"][step];
                assert!(
                    node.is_object(),
                    "{kind}: column path {path} is not declared"
                );
            }
            assert_eq!(column["type"], "string", "{kind}: column {path}");
        }
    }
}

/// ReleasePolicy's schema is complete: each object declares exactly the fields sluice reads.
fn check_release_policy_schema(spec_schema: &Value, api_version: &str) {
    for path in [
        &["sticky"][..],
        &["sticky", "cookie"],
        &["fallback"],
        &["accessLog"],
        &["protectedHeaders"],
        &["protectedHeaders", "token"],
        &["protectedHeaders", "jwt"],
    ] {
        let mut node = spec_schema;
        for step in path {
            node = &node["properties"][*step];
        }
        assert_ne!(node["x-kubernetes-preserve-unknown-fields"], true);
        let declared: BTreeSet<String> = node["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("ReleasePolicy {path:?}: no properties"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            declared,
            accepted_fields(api_version, "ReleasePolicy", path),
            "ReleasePolicy {path:?} fields"
        );
    }
    let subset = &spec_schema["properties"]["fallback"]["properties"]["subsets"]["items"];
    let declared: BTreeSet<&str> = subset["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(declared, BTreeSet::from(["from", "to"]));
}

#[test]
fn crds_validate_against_the_kubernetes_schema() {
    kubernetes_validate(&crd_files());
}

fn require_kubernetes_validate() {
    let found = Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs python3 with the kubernetes-validate package (PyPI), which validates \
         offline: run ./scripts/setup, or `python3 -m pip install kubernetes-validate`"
    );
}

fn kubernetes_validate(files: &[PathBuf]) {
    require_kubernetes_validate();
    for version in KUBERNETES_VERSIONS {
        let out = Command::new("python3")
            .args([
                "-m",
                "kubernetes_validate",
                "--strict",
                "--quiet",
                "--no-warn",
            ])
            .args(["-k", version])
            .args(files)
            .output()
            .expect("run python3 -m kubernetes_validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !report.contains("ERROR"),
            "the chart's manifests do not validate against Kubernetes {version}:\n{report}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Chart.yaml and values.yaml

fn values() -> Value {
    let path = chart_dir().join("values.yaml");
    yaml_docs("values.yaml", &read(&path)).remove(0)
}

#[test]
fn chart_metadata_follows_the_crate() {
    let chart = yaml_docs("Chart.yaml", &read(&chart_dir().join("Chart.yaml"))).remove(0);
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "sluice");
    assert_eq!(chart["type"], "application");
    assert!(chart["description"].as_str().is_some_and(|d| d.len() > 20));
    // The injector image's tag defaults to appVersion: the version of the code.
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"), "appVersion");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"), "version");
    assert_eq!(
        values()["injector"]["image"]["tag"],
        "",
        "image tag: appVersion"
    );
}

#[test]
fn values_injector_config_is_the_injectors_default_config() {
    let config = values()["injector"]["config"].clone();
    assert!(config.is_object(), "values.yaml has no injector.config");
    // Every field spelled out, every value the code's default: a field added to the
    // config, or a default changed, without the chart fails here.
    let default = serde_json::to_value(InjectConfig::default()).unwrap();
    assert_eq!(
        config,
        default,
        "values.yaml injector.config differs from InjectConfig::default():\nchart: {}\ncode:  {}",
        serde_json::to_string_pretty(&config).unwrap(),
        serde_json::to_string_pretty(&default).unwrap()
    );
    // And it loads with the loader of `--config`.
    let loaded = InjectConfig::from_yaml(&serde_norway::to_string(&config).unwrap())
        .unwrap_or_else(|e| panic!("values.yaml injector.config does not load: {e}"));
    assert_eq!(loaded, InjectConfig::default());
}

// ---------------------------------------------------------------------------------------
// Rendering

enum Renderer {
    /// `helm template`.
    Helm(PathBuf),
    /// Helm's engine through the helm-python-sdk PyPI package (`import helm_python`).
    Python,
}

/// Renders the chart's templates with the helm_python module: a JSON object, template
/// path → text. Arguments: chart, release name, namespace, values file (JSON).
const PYTHON_RENDER: &str = r#"
import json, sys
import helm_python as helm
chart_dir, name, namespace, values_file = sys.argv[1:5]
with open(values_file) as f:
    values = json.load(f)
with helm.Chart.load(chart_dir) as chart:
    out = chart.render(values, name=name, namespace=namespace, is_install=True)
json.dump(out, sys.stdout)
"#;

fn renderer() -> Renderer {
    if let Some(helm) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("helm"))
            .find(|p| p.is_file())
    }) {
        return Renderer::Helm(helm);
    }
    let python = Command::new("python3")
        .args(["-c", "import helm_python"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        python,
        "rendering the chart needs Helm: `helm` on the PATH, or python3 with the \
         helm-python-sdk package (PyPI; Helm's own engine, renders offline): \
         `python3 -m pip install helm-python-sdk` (scripts/setup should install it)"
    );
    Renderer::Python
}

/// Helm's linter, strict (warnings fail), on the chart with `values` over values.yaml.
const PYTHON_LINT: &str = r#"
import json, sys
import helm_python as helm
chart_dir, values_file = sys.argv[1:3]
with open(values_file) as f:
    values = json.load(f)
report = helm.lint(chart_dir, values, strict=True, namespace="sluice-system")
problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
"#;

fn lint(test: &str, values: &Value) {
    let dir = tmp_dir(test);
    let values_file = dir.join("values.json");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let out = match renderer() {
        Renderer::Helm(helm) => Command::new(helm)
            .args([
                "lint",
                "--strict",
                "--namespace",
                "sluice-system",
                "--values",
            ])
            .arg(&values_file)
            .arg(chart_dir())
            .output(),
        Renderer::Python => Command::new("python3")
            .args(["-c", PYTHON_LINT])
            .arg(chart_dir())
            .arg(&values_file)
            .output(),
    }
    .unwrap();
    assert!(
        out.status.success(),
        "helm lint --strict with {values}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chart_lints_clean() {
    lint("lint-default", &json!({}));
    lint(
        "lint-all",
        &json!({
            "certManager": { "enabled": true },
            "metrics": { "serviceMonitor": { "enabled": true } },
            "webhook": { "failurePolicy": "Ignore" },
        }),
    );
}

/// The chart rendered for a release `name` in `namespace` with `values` over values.yaml:
/// the objects of the templates, in order (NOTES.txt and partials left out).
fn render(test: &str, name: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let dir = tmp_dir(test);
    let values_file = dir.join("values.json");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let chart = chart_dir();
    let texts: Vec<(String, String)> = match renderer() {
        Renderer::Helm(helm) => {
            let out = Command::new(helm)
                .args(["template", name])
                .arg(&chart)
                .args(["--namespace", namespace, "--values"])
                .arg(&values_file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "helm template failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            vec![(
                "helm template".into(),
                String::from_utf8(out.stdout).unwrap(),
            )]
        }
        Renderer::Python => {
            let out = Command::new("python3")
                .args(["-c", PYTHON_RENDER])
                .arg(&chart)
                .args([name, namespace])
                .arg(&values_file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "rendering with helm_python failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let files: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
            files
                .into_iter()
                .filter(|(path, _)| path.ends_with(".yaml"))
                .collect()
        }
    };
    let docs: Vec<Value> = texts
        .iter()
        .flat_map(|(path, text)| yaml_docs(path, text))
        .collect();
    assert!(!docs.is_empty(), "the chart rendered no objects");
    docs
}

/// The rendered object of a kind; exactly one must exist.
fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "rendered {kind} objects: {found:?}");
    found[0]
}

fn all<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name_of(doc: &Value) -> &str {
    str_of(&doc["metadata"]["name"], "metadata.name")
}

fn b64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(str_of(text, "base64 data"))
        .unwrap()
}

const CLUSTER_SCOPED: [&str; 3] = [
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
];

/// Validates the rendered objects of built-in kinds against the Kubernetes schema.
fn validate_rendered(test: &str, docs: &[Value]) {
    let dir = tmp_dir(&format!("{test}-validate"));
    let mut files = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let api_version = doc["apiVersion"].as_str().unwrap();
        if api_version.contains("cert-manager.io") || api_version.contains("coreos.com") {
            continue;
        }
        let path = dir.join(format!("{i:02}-{}.yaml", doc["kind"].as_str().unwrap()));
        std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
        files.push(path);
    }
    kubernetes_validate(&files);
}

/// A label selector (matchLabels, matchExpressions) against labels.
fn selects(selector: &Value, labels: &BTreeMap<&str, &str>) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k.as_str()) == Some(&str_of(v, "matchLabels value")))
        })
        .unwrap_or(true);
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .map(|list| {
            list.iter().all(|e| {
                let value = labels.get(str_of(&e["key"], "key"));
                let values = strings(&e["values"]);
                let listed = value.is_some_and(|v| values.iter().any(|x| x == v));
                match str_of(&e["operator"], "operator") {
                    "In" => listed,
                    "NotIn" => !listed,
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    other => panic!("unknown selector operator {other}"),
                }
            })
        })
        .unwrap_or(true);
    by_labels && by_expressions
}

/// Everything that must hold for any values: names, references and the injection rules.
fn check_release(docs: &[Value], release_ns: &str, excluded_extra: &[&str]) {
    // Namespaced objects in the release namespace.
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap();
        if CLUSTER_SCOPED.contains(&kind) {
            assert!(
                doc["metadata"]["namespace"].is_null(),
                "{kind} is cluster-scoped"
            );
        } else {
            assert_eq!(doc["metadata"]["namespace"], release_ns, "{kind} namespace");
        }
    }

    let deployment = one(docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let pod_labels: BTreeMap<&str, &str> = pod["metadata"]["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    assert!(
        selects(&deployment["spec"]["selector"], &pod_labels),
        "the Deployment's selector does not select its pods"
    );
    assert_eq!(
        pod_labels.get("sluice.dev/inject"),
        Some(&"false"),
        "the injector must never be injected"
    );
    let spec = &pod["spec"];
    let security = &spec["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert!(security["runAsUser"].as_i64().unwrap() > 0);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let csec = &container["securityContext"];
    assert_eq!(csec["readOnlyRootFilesystem"], true);
    assert_eq!(csec["allowPrivilegeEscalation"], false);
    assert_eq!(csec["capabilities"]["drop"], json!(["ALL"]));
    assert!(csec["capabilities"]["add"].is_null());
    assert!(container["resources"]["requests"].is_object(), "resources");
    // Two ports: the webhook (liveness) and discovery (readiness: the first full sync).
    let ports = container["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2, "{ports:?}");
    let port_of = |name: &str| {
        let found = ports
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}: {ports:?}"));
        found["containerPort"].as_u64().unwrap()
    };
    let (port_name, port) = ("https", port_of("https"));
    let discovery_port = port_of("discovery");
    for (probe, path, name, number) in [
        ("livenessProbe", "/healthz", port_name, port),
        (
            "readinessProbe",
            "/healthz/ready",
            "discovery",
            discovery_port,
        ),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["scheme"], "HTTPS", "{probe}");
        assert!(
            get["port"] == name || get["port"] == number,
            "{probe} port {}",
            get["port"]
        );
    }
    let args = strings(&container["args"]);
    let listen = flag(&args, "--listen");
    assert!(listen.ends_with(&format!(":{port}")), "--listen {listen}");
    let listen = flag(&args, "--discovery-listen");
    assert!(
        listen.ends_with(&format!(":{discovery_port}")),
        "--discovery-listen {listen}"
    );

    // Service → pods, webhook → Service; the injector config's discovery address → Service.
    let service = one(docs, "Service");
    assert!(selects(
        &json!({ "matchLabels": service["spec"]["selector"] }),
        &pod_labels
    ));
    let service_ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(service_ports.len(), 2, "{service_ports:?}");
    assert_eq!(service_ports[0]["port"], 443);
    assert!(service_ports[0]["targetPort"] == port_name || service_ports[0]["targetPort"] == port);
    assert!(
        service_ports[1]["targetPort"] == "discovery"
            || service_ports[1]["targetPort"] == discovery_port
    );
    if let Some(discovery) = rendered_config(docs).discovery {
        assert_eq!(
            discovery.address,
            format!(
                "{}.{release_ns}.svc:{}",
                name_of(service),
                service_ports[1]["port"]
            ),
            "the injector config's discovery address"
        );
        assert!(!discovery.insecure);
    }

    // The CA the control plane keeps in each injected namespace: the serving
    // certificate's CA, in the ConfigMap the injected pods mount.
    let discovery = rendered_config(docs).discovery;
    if discovery.is_some() {
        let ca = flag(&args, "--ca-cert");
        let (kind, name, key) = mounted_files(docs)
            .remove(&ca)
            .unwrap_or_else(|| panic!("--ca-cert {ca}: no volume puts a file there"));
        assert_eq!(
            (kind.as_str(), key.as_str()),
            ("secret", "ca.crt"),
            "--ca-cert {ca}"
        );
        let cert = mounted_files(docs)
            .remove(&flag(&args, "--tls-cert"))
            .unwrap();
        assert_eq!(name, cert.1, "the CA of the serving certificate's Secret");
    } else {
        assert!(
            !args.iter().any(|a| a.starts_with("--ca-cert")),
            "no CA ConfigMap without discovery: {args:?}"
        );
    }

    // RBAC: the Deployment's ServiceAccount, read-only, the mesh's kinds; with discovery,
    // create and update of ConfigMaps (the CA bundle), never delete.
    let account = one(docs, "ServiceAccount");
    assert_eq!(spec["serviceAccountName"], account["metadata"]["name"]);
    let binding = one(docs, "ClusterRoleBinding");
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": name_of(account), "namespace": release_ns }])
    );
    let role = one(docs, "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        if strings(&rule["resources"]) == ["configmaps"] {
            assert!(discovery.is_some(), "ConfigMap writes without discovery");
            assert_eq!(strings(&rule["apiGroups"]), [""]);
            assert_eq!(
                strings(&rule["verbs"]),
                ["get", "list", "watch", "create", "update"],
                "the CA bundle: no delete, no patch"
            );
            continue;
        }
        assert_eq!(
            strings(&rule["verbs"]),
            ["get", "list", "watch"],
            "read-only"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert((group.clone(), resource));
            }
        }
    }
    let mut wanted: BTreeSet<(String, String)> = [
        ("", "pods"),
        ("", "namespaces"),
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
    ]
    .iter()
    .map(|(g, r)| (g.to_string(), r.to_string()))
    .collect();
    for ((group, _), crd) in crds() {
        let plural = str_of(&crd["spec"]["names"]["plural"], "plural").to_string();
        wanted.insert((group, plural));
    }
    assert_eq!(granted, wanted, "the ClusterRole's resources");

    if let Some(pdb) = all(docs, "PodDisruptionBudget").first() {
        assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    }

    // The webhooks.
    let config = one(docs, "MutatingWebhookConfiguration");
    let webhooks = config["webhooks"].as_array().unwrap();
    let names: Vec<&str> = webhooks
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "namespace.injector.sluice.dev",
            "object.injector.sluice.dev"
        ]
    );
    for webhook in webhooks {
        let client = &webhook["clientConfig"]["service"];
        assert_eq!(client["name"], service["metadata"]["name"]);
        assert_eq!(client["namespace"], release_ns);
        assert_eq!(client["port"], service_ports[0]["port"]);
        assert_eq!(client["path"], "/inject");
        assert_eq!(
            webhook["rules"],
            json!([{ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                     "resources": ["pods"], "scope": "Namespaced" }])
        );
        assert_eq!(webhook["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(webhook["sideEffects"], "None");
    }

    // Which pods reach the webhook: docs/injection.md, "Which pods are injected".
    let mut excluded = vec!["kube-system", "kube-public", release_ns];
    excluded.extend_from_slice(excluded_extra);
    let namespaces: Vec<(&str, Option<&str>)> = [
        "shop",
        "legacy",
        "plain",
        "other",
        "kube-system",
        "kube-public",
        release_ns,
    ]
    .into_iter()
    .chain(excluded_extra.iter().copied())
    .flat_map(|ns| {
        [None, Some("enabled"), Some("disabled")]
            .into_iter()
            .map(move |label| (ns, label))
    })
    .collect();
    for (ns, ns_label) in namespaces {
        let mut ns_labels = BTreeMap::from([("kubernetes.io/metadata.name", ns)]);
        if let Some(label) = ns_label {
            ns_labels.insert("sluice-injection", label);
        }
        for pod_label in [None, Some("true"), Some("false"), Some("yes")] {
            let mut labels = BTreeMap::from([("app", "web")]);
            if let Some(label) = pod_label {
                labels.insert("sluice.dev/inject", label);
            }
            let matching: Vec<&str> = webhooks
                .iter()
                .filter(|w| {
                    selects(&w["namespaceSelector"], &ns_labels)
                        && selects(&w["objectSelector"], &labels)
                })
                .map(|w| w["name"].as_str().unwrap())
                .collect();
            // The pod's label decides both ways; else the namespace's. A pod label other
            // than true/false reaches the webhook in an enabled namespace, which refuses
            // the pod naming the label.
            let enabled = ns_label == Some("enabled");
            let wanted = !excluded.contains(&ns)
                && match pod_label {
                    Some("true") => true,
                    Some("false") => false,
                    _ => enabled,
                };
            assert!(
                matching.len() <= 1,
                "namespace {ns} {ns_label:?}, pod {pod_label:?}: two webhooks {matching:?}"
            );
            assert_eq!(
                !matching.is_empty(),
                wanted,
                "namespace {ns} (sluice-injection={ns_label:?}), pod sluice.dev/inject={pod_label:?}: \
                 webhooks {matching:?}"
            );
        }
    }
}

/// The value of `--flag=value` or `--flag value` in a list of arguments.
fn flag(args: &[String], name: &str) -> String {
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix(&format!("{name}=")) {
            return value.to_string();
        }
        if arg == name {
            return args[i + 1].clone();
        }
    }
    panic!("{name} not among the injector's arguments {args:?}")
}

/// The injector config the rendered ConfigMap holds, as the injector loads it.
fn rendered_config(docs: &[Value]) -> InjectConfig {
    let map = one(docs, "ConfigMap");
    let text = str_of(&map["data"]["injector.yaml"], "ConfigMap injector.yaml");
    InjectConfig::from_yaml(text)
        .unwrap_or_else(|e| panic!("the rendered injector config does not load: {e}\n{text}"))
}

/// The files the Deployment's volume puts where: mount path of each file → (ConfigMap or
/// Secret, its name, key).
fn mounted_files(docs: &[Value]) -> BTreeMap<String, (String, String, String)> {
    let spec = &one(docs, "Deployment")["spec"]["template"]["spec"];
    let mut files = BTreeMap::new();
    for mount in spec["containers"][0]["volumeMounts"].as_array().unwrap() {
        let at = str_of(&mount["mountPath"], "mountPath");
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        let sources: Vec<Value> = if let Some(sources) = volume["projected"]["sources"].as_array() {
            sources.clone()
        } else {
            vec![volume.clone()]
        };
        for source in sources {
            for kind in ["configMap", "secret"] {
                let Some(src) = source.get(kind) else {
                    continue;
                };
                let name = src["name"]
                    .as_str()
                    .or_else(|| src["secretName"].as_str())
                    .unwrap()
                    .to_string();
                for item in src["items"].as_array().expect("items of the volume source") {
                    files.insert(
                        format!("{at}/{}", str_of(&item["path"], "path")),
                        (
                            kind.to_string(),
                            name.clone(),
                            str_of(&item["key"], "key").to_string(),
                        ),
                    );
                }
            }
        }
    }
    files
}

/// Kills the child process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real `sluice-control` with the rendered Deployment's arguments, its files
/// (config and certificate) taken from the rendered ConfigMap and Secret and put where the
/// volume mounts them (under `root`), listening on a loopback port.
fn run_rendered_injector(test: &str, docs: &[Value]) -> (Running, SocketAddr) {
    let root = tmp_dir(&format!("{test}-root"));
    let files = mounted_files(docs);
    let args =
        strings(&one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
    let mut paths = Vec::new();
    for flag_name in ["--config", "--tls-cert", "--tls-key", "--ca-cert"] {
        if !args.iter().any(|a| a.starts_with(&format!("{flag_name}="))) {
            continue;
        }
        let path = flag(&args, flag_name);
        let (kind, name, key) = files
            .get(&path)
            .unwrap_or_else(|| panic!("{flag_name} {path}: no volume puts a file there"))
            .clone();
        let source = docs
            .iter()
            .find(|d| {
                d["kind"]
                    == if kind == "configMap" {
                        "ConfigMap"
                    } else {
                        "Secret"
                    }
                    && d["metadata"]["name"] == name
            })
            .unwrap_or_else(|| panic!("{flag_name} {path}: the chart renders no {kind} {name}"));
        let content = if kind == "configMap" {
            str_of(&source["data"][&key], "ConfigMap data")
                .as_bytes()
                .to_vec()
        } else {
            b64(&source["data"][&key])
        };
        let local = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, content).unwrap();
        paths.push((path, local));
    }
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, discovery_port) = (free_port(), free_port());
    let help = Command::new(env!("CARGO_BIN_EXE_sluice-control"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let args: Vec<String> = args
        .iter()
        // The discovery flags are checked by `check_release`; a sluice-control that does
        // not run discovery yet (before the control-wiring branch) is started without them.
        .filter(|arg| {
            let name = arg.split('=').next().unwrap_or_default();
            !["--discovery-listen", "--cluster-domain"].contains(&name)
                || help.contains(&format!("{name} "))
        })
        .map(|arg| {
            if arg.starts_with("--listen") {
                return format!("--listen=127.0.0.1:{port}");
            }
            if arg.starts_with("--discovery-listen") {
                return format!("--discovery-listen=127.0.0.1:{discovery_port}");
            }
            let mut arg = arg.clone();
            for (path, local) in &paths {
                arg = arg.replace(path.as_str(), local.to_str().unwrap());
            }
            arg
        })
        .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice-control"))
        .args(&args)
        .env_remove("SLUICE_CONFIG")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Running(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One HTTPS/1.1 request, the server verified against `ca_pem` under `server_name`, as the
/// API server verifies the webhook; retried while the server is starting.
async fn https(
    addr: SocketAddr,
    ca_pem: &[u8],
    server_name: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let deadline = Instant::now() + Duration::from_secs(20);
    let tcp = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(tcp) => break tcp,
            Err(e) if Instant::now() > deadline => panic!("sluice-control is not up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let tls = connector.connect(name, tcp).await.unwrap_or_else(|e| {
        panic!("TLS to the injector as {server_name}, trusting the webhook's caBundle: {e}")
    });
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", server_name)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

/// The rendered injector, checked through the webhook's own eyes: TLS with the caBundle
/// (or, with cert-manager, not testable here) under every name of the Service, health at
/// the webhook's liveness path, and a pod injected with the rendered config. Returns the
/// injected pod.
fn check_rendered_injector(test: &str, docs: &[Value], ca_pem: &[u8], pod_ns: &str) -> Value {
    let service = one(docs, "Service");
    let host = format!(
        "{}.{}.svc",
        name_of(service),
        str_of(&service["metadata"]["namespace"], "namespace")
    );
    let (_injector, addr) = run_rendered_injector(test, docs);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let args =
            strings(&one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
        let domain = flag(&args, "--cluster-domain");
        for name in [host.clone(), format!("{host}.{domain}")] {
            let (status, body) = https(addr, ca_pem, &name, "GET", "/healthz", Vec::new()).await;
            assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()), "{name}");
        }
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "web", "namespace": pod_ns, "labels": { "app": "web" } },
            "spec": { "containers": [{ "name": "web", "image": "nginx",
                                       "ports": [{ "containerPort": 8080 }] }] },
        });
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "chart-1",
                "kind": { "group": "", "version": "v1", "kind": "Pod" },
                "resource": { "group": "", "version": "v1", "resource": "pods" },
                "namespace": pod_ns,
                "operation": "CREATE",
                "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
                "object": pod,
                "dryRun": false,
            }
        });
        let path = one(docs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
            ["service"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, body) = https(
            addr,
            ca_pem,
            &host,
            "POST",
            &path,
            serde_json::to_vec(&review).unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        let patch: json_patch::Patch =
            serde_json::from_slice(&b64(&answer["response"]["patch"])).unwrap();
        let mut injected = pod.clone();
        json_patch::patch(&mut injected, &patch).unwrap();
        injected
    })
}

/// The `sluice.dev/status` of an injected pod.
fn status_of(pod: &Value) -> Value {
    let status = str_of(
        &pod["metadata"]["annotations"]["sluice.dev/status"],
        "sluice.dev/status",
    );
    serde_json::from_str(status).unwrap()
}

/// The environment of the injected proxy: name → value (downward-API variables left out).
fn proxy_env(pod: &Value) -> BTreeMap<String, String> {
    let containers = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .chain(pod["spec"]["containers"].as_array())
        .flatten();
    let proxy = containers
        .into_iter()
        .find(|c| c["name"] == "sluice-proxy")
        .expect("an injected sluice-proxy");
    proxy["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn default_render_is_a_working_webhook() {
    let docs = render("default", "sluice", "sluice-system", &json!({}));
    validate_rendered("default", &docs);
    check_release(&docs, "sluice-system", &[]);

    let kinds: BTreeSet<(&str, &str)> = docs
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), name_of(d)))
        .collect();
    let wanted: BTreeSet<(&str, &str)> = [
        ("ServiceAccount", "sluice-control"),
        ("ClusterRole", "sluice-control"),
        ("ClusterRoleBinding", "sluice-control"),
        ("ConfigMap", "sluice-control"),
        ("Deployment", "sluice-control"),
        ("Service", "sluice-control"),
        ("PodDisruptionBudget", "sluice-control"),
        ("Secret", "sluice-control-tls"),
        ("MutatingWebhookConfiguration", "sluice-control"),
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, wanted, "what the chart installs by default");

    // The config the injector reads is its built-in default, with discovery on through
    // the release's Service (its certificate names it: checked below).
    let wanted = InjectConfig {
        discovery: Some(DiscoveryConfig {
            address: "sluice-control.sluice-system.svc:15012".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(rendered_config(&docs), wanted);

    // docs/injection.md's webhook: Fail, IfNeeded, 10 s, the Helm-made CA in the caBundle.
    let secret = one(&docs, "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let webhooks = one(&docs, "MutatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap();
    for webhook in webhooks {
        assert_eq!(webhook["failurePolicy"], "Fail");
        assert_eq!(webhook["reinvocationPolicy"], "IfNeeded");
        assert_eq!(webhook["timeoutSeconds"], 10);
        assert_eq!(
            webhook["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
            "the caBundle is the Secret's CA"
        );
    }

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let template = &deployment["spec"]["template"];
    let args = strings(&template["spec"]["containers"][0]["args"]);
    assert_eq!(flag(&args, "--config"), "/etc/sluice/injector.yaml");
    assert_eq!(
        template["spec"]["containers"][0]["image"],
        format!(
            "ghcr.io/sluice-mesh/sluice-control:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(annotations["prometheus.io/scheme"], "https");
    assert_eq!(
        annotations["prometheus.io/port"],
        template["spec"]["containers"][0]["ports"][0]["containerPort"].to_string()
    );
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    // The certificate works where the API server uses it, and the config reaches the
    // injector: a pod comes out injected as the defaults say.
    let ca_bundle = b64(&webhooks[0]["clientConfig"]["caBundle"]);
    let pod = check_rendered_injector("default", &docs, &ca_bundle, "shop");
    let status = status_of(&pod);
    assert_eq!(status["mode"], "native");
    let env = proxy_env(&pod);
    assert_eq!(
        env["SLUICE_DISCOVERY"],
        "https://sluice-control.sluice-system.svc:15012"
    );
    assert_eq!(env["SLUICE_DISCOVERY_CA"], "/etc/sluice/podinfo/ca.crt");
    assert!(!env.contains_key("SLUICE_CONFIG"), "{env:?}");
    assert!(
        pod["spec"]["volumes"]
            .to_string()
            .contains("sluice-ca-root-cert"),
        "the CA ConfigMap is mounted"
    );
    assert_eq!(
        status["images"]["sluice-proxy"],
        InjectConfig::default().images.proxy
    );
}

#[test]
fn values_reach_the_injector_and_the_webhook() {
    let mut values = json!({
        "injector": {
            "replicas": 3,
            "listenAddress": "::",
            "config": {
                "nativeSidecar": false,
                "images": { "proxy": "registry.example.com/sluice-proxy:test" },
                "proxy": { "resources": { "requests": { "cpu": "50m" }, "limits": { "memory": null } } },
                "capture": { "excludeOutboundCidrs": "169.254.169.254/32" },
            },
        },
        "webhook": { "failurePolicy": "Ignore", "excludeNamespaces": ["legacy"] },
        "metrics": { "podAnnotations": false },
        "clusterDomain": "corp.internal",
    });
    values["injector"]["discovery"] = json!({ "port": 15100, "caConfigMap": "mesh-ca" });
    // Another release name and namespace: every name follows.
    let docs = render("values", "mesh", "mesh-system", &values);
    validate_rendered("values", &docs);
    check_release(&docs, "mesh-system", &["legacy"]);
    assert_eq!(name_of(one(&docs, "Service")), "mesh-sluice-control");

    let mut wanted = InjectConfig {
        native_sidecar: false,
        ..InjectConfig::default()
    };
    wanted.images.proxy = "registry.example.com/sluice-proxy:test".into();
    wanted.proxy.resources.requests.cpu = Some("50m".into());
    // Helm drops a null value; the chart writes it as null so the injector leaves the
    // limit unset instead of putting its default back.
    wanted.proxy.resources.limits.memory = None;
    wanted.capture.exclude_outbound_cidrs = "169.254.169.254/32".into();
    wanted.cluster_domain = "corp.internal".parse().unwrap();
    wanted.discovery = Some(DiscoveryConfig {
        address: "mesh-sluice-control.mesh-system.svc:15100".into(),
        ca_config_map: "mesh-ca".into(),
        insecure: false,
    });
    assert_eq!(rendered_config(&docs), wanted);

    for webhook in one(&docs, "MutatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap()
    {
        assert_eq!(webhook["failurePolicy"], "Ignore");
    }
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert_eq!(flag(&args, "--listen"), "[::]:9443");
    assert_eq!(flag(&args, "--discovery-listen"), "[::]:15100");
    assert_eq!(flag(&args, "--cluster-domain"), "corp.internal");
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"].is_null()
    );

    let webhook = &one(&docs, "MutatingWebhookConfiguration")["webhooks"][1];
    let ca_bundle = b64(&webhook["clientConfig"]["caBundle"]);
    let pod = check_rendered_injector("values", &docs, &ca_bundle, "shop");
    let status = status_of(&pod);
    assert_eq!(status["mode"], "classic");
    assert_eq!(
        proxy_env(&pod)["SLUICE_DISCOVERY"],
        "https://mesh-sluice-control.mesh-system.svc:15100"
    );
    assert_eq!(proxy_env(&pod)["SLUICE_CLUSTER_DOMAIN"], "corp.internal");
    assert_eq!(
        status["images"]["sluice-proxy"],
        "registry.example.com/sluice-proxy:test"
    );
}

#[test]
fn discovery_off_is_configmap_mode() {
    let values = json!({ "injector": { "discovery": { "enabled": false } } });
    let docs = render("discovery-off", "sluice", "sluice-system", &values);
    check_release(&docs, "sluice-system", &[]);
    // The built-in config: proxies serve their namespace's sluice-mesh-config.
    assert_eq!(rendered_config(&docs), InjectConfig::default());

    // A discovery section given by hand wins over the chart's.
    let values = json!({ "injector": { "config": {
        "discovery": { "address": "cp.example:15012", "caConfigMap": "corp-ca" } } } });
    let docs = render("discovery-own", "sluice", "sluice-system", &values);
    let discovery = rendered_config(&docs).discovery.unwrap();
    assert_eq!(
        (discovery.address.as_str(), discovery.ca_config_map.as_str()),
        ("cp.example:15012", "corp-ca")
    );
}

#[test]
fn cert_manager_and_service_monitor() {
    let values = json!({
        "certManager": { "enabled": true },
        "metrics": { "serviceMonitor": { "enabled": true, "labels": { "release": "prom" } } },
    });
    let docs = render("cert-manager", "sluice", "sluice-system", &values);
    validate_rendered("cert-manager", &docs);
    check_release(&docs, "sluice-system", &[]);
    assert!(
        all(&docs, "Secret").is_empty(),
        "cert-manager makes the Secret"
    );

    let files = mounted_files(&docs);
    let secret_name = &files["/etc/sluice/tls.crt"].1;
    let certificates = all(&docs, "Certificate");
    let serving = certificates
        .iter()
        .find(|c| &c["spec"]["secretName"] == secret_name)
        .expect("a Certificate for the Secret the injector mounts");
    let dns = strings(&serving["spec"]["dnsNames"]);
    assert!(
        dns.contains(&"sluice-control.sluice-system.svc".to_string()),
        "{dns:?}"
    );
    assert!(strings(&serving["spec"]["usages"]).contains(&"server auth".to_string()));

    let config = one(&docs, "MutatingWebhookConfiguration");
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("sluice-system/{}", name_of(serving))
    );
    for webhook in config["webhooks"].as_array().unwrap() {
        assert!(
            webhook["clientConfig"]["caBundle"].is_null(),
            "cert-manager's cainjector fills in the caBundle"
        );
    }

    // The chart's own CA: self-signed Issuer → CA Certificate → CA Issuer → serving cert.
    let issuers = all(&docs, "Issuer");
    let issuer = |name: &Value| {
        *issuers
            .iter()
            .find(|i| &i["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Issuer {name} rendered"))
    };
    assert_eq!(serving["spec"]["issuerRef"]["kind"], "Issuer");
    let ca_issuer = issuer(&serving["spec"]["issuerRef"]["name"]);
    let ca_secret = &ca_issuer["spec"]["ca"]["secretName"];
    let ca_cert = certificates
        .iter()
        .find(|c| &c["spec"]["secretName"] == ca_secret)
        .expect("a CA Certificate for the CA Issuer");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let root = issuer(&ca_cert["spec"]["issuerRef"]["name"]);
    assert_eq!(root["spec"]["selfSigned"], json!({}));

    let monitor = one(&docs, "ServiceMonitor");
    let service = one(&docs, "Service");
    let service_labels: BTreeMap<&str, &str> = service["metadata"]["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    assert!(selects(&monitor["spec"]["selector"], &service_labels));
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(&endpoint["tlsConfig"]["ca"]["secret"]["name"], secret_name);

    // A given issuer replaces the chart's own CA.
    let values = json!({
        "certManager": { "enabled": true, "issuerRef": { "kind": "ClusterIssuer", "name": "corp-ca" } },
    });
    let docs = render("cert-manager-issuer", "sluice", "sluice-system", &values);
    assert!(all(&docs, "Issuer").is_empty());
    let certificate = one(&docs, "Certificate");
    assert_eq!(
        certificate["spec"]["issuerRef"],
        json!({ "kind": "ClusterIssuer", "name": "corp-ca" })
    );
}

/// The labels of a rendered object's pod template.
fn pod_labels(deployment: &Value) -> BTreeMap<&str, &str> {
    deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect()
}

#[test]
fn the_gateway_is_off_by_default_and_an_edge_when_on() {
    let docs = render("gateway-off", "sluice", "sluice-system", &json!({}));
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] != "gateway"),
        "no gateway objects by default"
    );

    let values = json!({ "gateway": { "enabled": true, "credentials": ["myapp-tls"] } });
    lint("lint-gateway", &values);
    let docs = render("gateway-on", "sluice", "sluice-system", &values);
    validate_rendered("gateway-on", &docs);
    let gateway: Vec<&Value> = docs
        .iter()
        .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway")
        .collect();
    let of = |kind: &str| {
        let found: Vec<&&Value> = gateway.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "gateway {kind}: {found:?}");
        *found[0]
    };
    let deployment = of("Deployment");
    assert_eq!(name_of(deployment), "sluice-gateway");
    let labels = pod_labels(deployment);
    assert_eq!(
        labels.get("istio"),
        Some(&"ingressgateway"),
        "Istio's selector works"
    );
    assert!(selects(&deployment["spec"]["selector"], &labels));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 1337);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["sysctls"][0],
        json!({"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"})
    );
    assert_eq!(pod["automountServiceAccountToken"], false, "no API access");
    let container = &pod["containers"][0];
    assert!(
        container["resources"]["requests"]["cpu"].is_string(),
        "CPU requests for an autoscaler"
    );
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (str_of(&e["name"], "env name"), &e["value"]))
        .collect();
    assert_eq!(env["SLUICE_MODE"], "gateway");
    assert_eq!(
        env["SLUICE_DISCOVERY"],
        "https://sluice-control.sluice-system.svc:15012"
    );
    assert!(
        str_of(env["SLUICE_LABELS"], "labels").contains("istio=ingressgateway"),
        "{:?}",
        env["SLUICE_LABELS"]
    );
    let mounts = strings(
        &container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].clone())
            .collect::<Value>(),
    );
    assert!(mounts.contains(&"/etc/sluice/credentials/myapp-tls".to_string()));
    let secrets: Vec<&Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["secret"])
        .collect();
    assert!(secrets.iter().any(|s| s["secretName"] == "myapp-tls"));
    assert!(
        secrets
            .iter()
            .any(|s| s["secretName"] == "sluice-control-tls"
                && s["items"] == json!([{"key": "ca.crt", "path": "ca.crt"}])),
        "only the control plane's CA from its Secret"
    );
    let service = of("Service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert!(selects(
        &json!({"matchLabels": service["spec"]["selector"]}),
        &labels
    ));
    let ports: Vec<i64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [80, 443]);
    let pdb = of("PodDisruptionBudget");
    assert!(selects(&pdb["spec"]["selector"], &labels));
    assert!(
        all(&docs, "Role").is_empty() && all(&docs, "RoleBinding").is_empty(),
        "the gateway is given no RBAC"
    );
}
