//! Which namespaces get the ConfigMap, what is written, and which CA files are read.

use super::*;

fn parse_all<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<Arc<T>> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| Arc::new(serde::Deserialize::deserialize(doc).expect("fixture parses")))
        .collect()
}

const NAMESPACES: &str = "
metadata: {name: shop, labels: {sluice-injection: enabled}}
---
metadata: {name: bank, labels: {sluice-injection: disabled}}
---
metadata: {name: lab}
---
metadata: {name: old}
---
metadata: {name: quiet}
---
metadata: {name: kube-system, labels: {sluice-injection: enabled}}
";

const PODS: &str = "
metadata: {name: a, namespace: lab, labels: {sluice.dev/inject: 'true'}}
---
metadata: {name: b, namespace: old, annotations: {sluice.dev/status: '{}'}}
---
metadata: {name: c, namespace: quiet, labels: {sluice.dev/inject: 'false'}}
---
metadata: {name: d, namespace: gone, labels: {sluice.dev/inject: 'true'}}
---
metadata: {name: e, namespace: kube-system, annotations: {sluice.dev/status: '{}'}}
";

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

#[test]
fn labelled_namespaces_and_those_with_injected_pods_get_it_system_and_unknown_ones_do_not() {
    let wanted = namespaces(&parse_all(NAMESPACES), &parse_all(PODS));
    assert_eq!(
        wanted.iter().map(String::as_str).collect::<Vec<_>>(),
        ["lab", "old", "shop"]
    );
}

#[test]
fn a_missing_config_map_is_created_with_the_ca_and_the_managed_by_label() {
    let Some(Write::Create(map)) = plan("sluice-ca-root-cert", "shop", None, PEM) else {
        panic!("expected a create");
    };
    assert_eq!(map.metadata.name.as_deref(), Some("sluice-ca-root-cert"));
    assert_eq!(map.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(map.metadata.labels.unwrap()[MANAGED_BY.0], MANAGED_BY.1);
    assert_eq!(map.data.unwrap()[CA_FILE], PEM);
}

#[test]
fn a_right_config_map_is_left_alone_and_a_wrong_one_replaced_from_its_stored_version() {
    let stored: ConfigMap = serde_norway::from_str(&format!(
        "metadata: {{name: sluice-ca-root-cert, namespace: shop, resourceVersion: '42', labels: {{team: x}}}}\n\
         data: {{ca.crt: {PEM:?}, extra: kept}}\n"
    ))
    .unwrap();
    assert_eq!(
        plan("sluice-ca-root-cert", "shop", Some(&stored), PEM),
        None
    );

    let rotated = PEM.replace("MIIB", "MIIC");
    let Some(Write::Replace(fixed)) = plan("sluice-ca-root-cert", "shop", Some(&stored), &rotated)
    else {
        panic!("expected a replace");
    };
    assert_eq!(fixed.metadata.resource_version.as_deref(), Some("42"));
    assert_eq!(fixed.metadata.labels.as_ref().unwrap()["team"], "x");
    let data = fixed.data.unwrap();
    assert_eq!(data[CA_FILE], rotated);
    assert_eq!(data["extra"], "kept");

    let emptied = ConfigMap {
        data: None,
        ..stored
    };
    assert!(matches!(
        plan("sluice-ca-root-cert", "shop", Some(&emptied), PEM),
        Some(Write::Replace(_))
    ));
}

#[test]
fn a_ca_file_must_hold_pem_certificates() {
    let dir = std::env::temp_dir().join(format!("sluice-ca-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ca.crt");
    std::fs::write(&file, "not a certificate\n").unwrap();
    let error = read_ca(&file).unwrap_err();
    assert!(error.contains("no CERTIFICATE"), "{error}");
    let missing = read_ca(&dir.join("missing.crt")).unwrap_err();
    assert!(missing.starts_with("cannot read the CA"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failed_passes_back_off_up_to_the_resync() {
    let settings = Settings::new("x".into(), "ca.crt".into());
    let delays: Vec<u64> = (1..=12)
        .map(|failures| retry_delay(&settings, failures).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
}
