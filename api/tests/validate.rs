//! Validation rules, one case per rule: the YAML a user writes, and the field
//! path and message they get back.

use sluice_api::{Severity, load_str, validate};

/// Loads `yaml`, validates it, and returns `(severity, path, message)` of every finding.
fn findings(yaml: &str) -> Vec<(Severity, String, String)> {
    let mut set = load_str("t.yaml", yaml);
    validate::validate(&mut set);
    set.diagnostics
        .into_iter()
        .map(|d| (d.severity, d.path.unwrap_or_default(), d.message))
        .collect()
}

fn vs(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r, namespace: ns}}\nspec:\n{spec}"
    )
}

fn dr(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec:\n{spec}"
    )
}

fn se(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {{name: r}}\nspec:\n{spec}"
    )
}

const ROUTE: &str = "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n";

#[test]
fn each_rule_reports_its_field() {
    let cases: Vec<(String, Severity, &str, &str)> = vec![
        (vs(ROUTE), Severity::Note, "", ""),
        (vs("  hosts: [a]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 60}\n    - {destination: {host: b}, weight: 30}\n"),
            Severity::Error, "spec.http[0].route", "sum to 90; they must sum to 100"),
        (vs("  hosts: [a]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 120}\n    - {destination: {host: b}, weight: -20}\n"),
            Severity::Error, "spec.http[0].route[0].weight", "out of range 0..100"),
        (vs("  hosts: [a]\n  http:\n  - match: [{uri: {regex: \"(unclosed\"}}]\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].match[0].uri.regex", "does not compile (RE2 syntax)"),
        (vs("  hosts: [a]\n  http:\n  - timeout: 5x\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].timeout", "unknown unit `x`"),
        (vs("  hosts: [a]\n  http:\n  - timeout: 0s\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].timeout", "at least 1ms"),
        (vs("  hosts: [a]\n  http:\n  - redirect: {uri: /x}\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0]", "mutually exclusive"),
        (vs("  hosts: [a]\n  http:\n  - mirror: {host: a}\n    mirrorPercentage: {value: 120}\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].mirrorPercentage.value", "out of range 0..100"),
        (vs("  http:\n  - route: [{destination: {host: a}}]\n"), Severity::Note, "", ""),
        (vs("  gateways: [gw]\n  http:\n  - route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.gateways", "without hosts is a delegate"),
        (vs("  tcp:\n  - route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.tcp", "it has http rules only"),
        (vs("  http:\n  - delegate: {name: deeper}\n"),
            Severity::Error, "spec.http[0].delegate", "a delegate cannot delegate again"),
        (vs("  hosts: [a]\n  http:\n  - delegate: {name: missing}\n"),
            Severity::Warning, "spec.http[0].delegate", "ns/missing not found"),
        (vs("  hosts: [\"bad_host!\"]\n  http:\n  - route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.hosts[0]", "not a valid host"),
        (vs("  hosts: [\"*\"]\n  http:\n  - route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.hosts[0]", "only allowed for rules bound to gateways"),
        (vs("  hosts: [a]\n  http:\n  - match: [{port: 70000}]\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].match[0].port", "out of range 1..65535"),
        (vs("  hosts: [a]\n  http:\n  - match: [{headers: {X-Upper: {exact: v}}}]\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].match[0].headers.X-Upper", "must be lowercase"),
        (vs("  hosts: [a]\n  http:\n  - retries: {attempts: 3, retryOn: \"5xx,bogus\"}\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].retries.retryOn", "unknown retry condition \"bogus\""),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a, subset: v9}}]\n"),
            Severity::Warning, "spec.http[0].route[0].destination.subset", "not defined by any DestinationRule"),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    fault: {abort: {httpStatus: 700}}\n"),
            Severity::Error, "spec.http[0].fault.abort.httpStatus", "out of range 200..599"),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    mirrorPercent: 50\n    mirror: {host: b}\n"),
            Severity::Warning, "spec.http[0].mirrorPercent", "deprecated setting \"mirrorPercent\""),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a, port: {number: 0}}}]\n"),
            Severity::Error, "spec.http[0].route[0].destination.port.number", "out of range"),
        (vs("  hosts: [a]\n  tcp:\n  - match: [{destinationSubnets: [10.0.0.0/33]}]\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.tcp[0].match[0].destinationSubnets[0]", "not an IP address or CIDR"),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: a}}]\n"),
            Severity::Warning, "spec.http[1]", "rule #1 not used"),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    retries: {attempts: 2}\n    retrys: 3\n"),
            Severity::Error, "spec.http[0].retrys", "unknown field \"retrys\""),
        (vs("  hosts: a\n  http: []\n"), Severity::Error, "spec.hosts", "expected a sequence"),
        (dr("  host: a\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v1, labels: {version: v2}}\n"),
            Severity::Error, "spec.subsets[1].name", "defined twice"),
        (dr("  host: a\n  subsets:\n  - {name: V_1, labels: {version: v1}}\n"),
            Severity::Error, "spec.subsets[0].name", "not a valid subset name"),
        (dr("  host: a\n  subsets:\n  - {name: v1, labels: {version: \"-bad\"}}\n"),
            Severity::Error, "spec.subsets[0].labels.version", "not a valid label value"),
        (dr("  host: a\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN, consistentHash: {httpHeaderName: x}}\n"),
            Severity::Error, "spec.trafficPolicy.loadBalancer", "only one of simple and consistentHash"),
        (dr("  host: a\n  trafficPolicy:\n    loadBalancer: {simple: LEAST_CONN}\n"),
            Severity::Warning, "spec.trafficPolicy.loadBalancer.simple", "deprecated alias of LEAST_REQUEST"),
        (dr("  host: a\n  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 5}\n"),
            Severity::Warning, "spec.trafficPolicy.outlierDetection.consecutiveErrors", "consecutive errors is deprecated"),
        (dr("  host: a\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n"),
            Severity::Warning, "spec.trafficPolicy.tls.mode", "ISTIO_MUTUAL is not supported by sluice yet"),
        (dr("  host: a\n  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n"),
            Severity::Error, "spec.trafficPolicy.loadBalancer.simple", "unknown variant `FASTEST`"),
        (dr("  host: a\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute: [{from: a/*, to: {b/*: 70}}]\n"),
            Severity::Error, "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to", "sum to 70"),
        (se("  hosts: [db.example.com]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n"),
            Severity::Error, "spec.endpoints", "STATIC needs endpoints"),
        (se("  hosts: [db.example.com]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: db.internal}]\n"),
            Severity::Error, "spec.endpoints[0].address", "not an IP address"),
        (se("  hosts: [\"*.example.com\"]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n"),
            Severity::Error, "spec.hosts[0]", "cannot be wildcards"),
        (se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTPX}]\n"),
            Severity::Error, "spec.ports[0].protocol", "unknown protocol \"HTTPX\""),
        (se("  hosts: [a.example.com]\n  addresses: [300.1.1.1]\n  ports: [{number: 80, name: http}]\n"),
            Severity::Error, "spec.addresses[0]", "not an IP address or CIDR"),
        (se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.1, ports: {web: 8080}}]\n"),
            Severity::Error, "spec.endpoints[0].ports.web", "no port of the ServiceEntry is named \"web\""),
        ("apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: x}\nspec: {}\n".into(),
            Severity::Error, "", "unsupported apiVersion networking.istio.io/v2"),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\nstatus: {}\nextra: 1\n".into(),
            Severity::Error, "extra", "unknown field \"extra\""),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {hosts: [a]}\n".into(),
            Severity::Error, "metadata.name", "required"),
        ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: x}\nspec: {}\n".into(),
            Severity::Warning, "", "Sidecar is not acted on by sluice"),
        ("apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {outboundTrafficPolicy: {mode: DENY}}\n".into(),
            Severity::Error, "spec.outboundTrafficPolicy.mode", "unknown variant `DENY`"),
        ("spec: {hosts: [a]}\n".into(), Severity::Error, "", "no apiVersion and kind"),
        ("- a\n- b\n".into(), Severity::Error, "", "found a list"),
        ("a: [unclosed\n".into(), Severity::Error, "", "not valid YAML"),
    ];
    for (yaml, severity, path, message) in cases {
        let found = findings(&yaml);
        if message.is_empty() {
            assert!(
                found.iter().all(|(s, _, _)| *s != Severity::Error),
                "expected no errors for\n{yaml}\ngot {found:#?}"
            );
            continue;
        }
        assert!(
            found
                .iter()
                .any(|(s, p, m)| *s == severity && p == path && m.contains(message)),
            "expected {severity} at `{path}` containing {message:?} for\n{yaml}\ngot {found:#?}"
        );
    }
}

#[test]
fn kubernetes_lists_and_multiple_documents_load_in_order() {
    let yaml = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n---\n{}",
        "{apiVersion: networking.istio.io/v1alpha3, kind: DestinationRule, metadata: {name: a}, spec: {host: a}}",
        dr("  host: b\n")
    );
    let set = load_str("l.yaml", &yaml);
    let titles: Vec<String> = set
        .resources
        .iter()
        .map(|r| format!("{} {}", r.title(), r.origin))
        .collect();
    assert_eq!(
        titles,
        [
            "DestinationRule default/a l.yaml: doc 1 item 0",
            "DestinationRule default/r l.yaml: doc 2"
        ]
    );
}

#[test]
fn two_rules_for_one_host_and_two_mesh_configs_are_reported() {
    let yaml = format!(
        "{}\n---\n{}\n---\n{}\n---\n{}",
        dr("  host: a\n"),
        dr("  host: a.default.svc.cluster.local\n"),
        vs(ROUTE),
        vs(ROUTE)
    );
    let found = findings(&yaml);
    assert!(
        found
            .iter()
            .any(|(s, _, m)| *s == Severity::Warning && m.contains("only the first one")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|(s, _, m)| *s == Severity::Warning && m.contains("shadowed")),
        "{found:#?}"
    );
    let mc = "apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {}\n";
    let found = findings(&format!("{mc}---\n{mc}"));
    assert!(
        found
            .iter()
            .any(|(s, _, m)| *s == Severity::Error && m.contains("only one MeshConfig")),
        "{found:#?}"
    );
}
