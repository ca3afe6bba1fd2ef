//! Validation rules, one case per rule: the YAML a user writes, and the field
//! path and message they get back.

use sluice_api::{Severity, Spec, load_str, validate};

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

fn gw(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: ns}}\nspec:\n{spec}"
    )
}

const ROUTE: &str = "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n";

#[test]
fn each_rule_reports_its_field() {
    let cases: Vec<(String, Severity, &str, &str)> = vec![
        (vs(ROUTE), Severity::Note, "", ""),
        (vs("  hosts: [a]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 60}\n    - {destination: {host: b}, weight: 30}\n"),
            Severity::Note, "", ""),
        (vs("  hosts: [a]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 0}\n    - {destination: {host: b}, weight: 0}\n"),
            Severity::Error, "spec.http[0].route", "are all 0"),
        (vs("  hosts: [a]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 120}\n    - {destination: {host: b}, weight: -20}\n"),
            Severity::Error, "spec.http[0].route[1].weight", "-20 cannot be negative"),
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
            Severity::Note, "", ""),
        (vs("  hosts: [a]\n  http:\n  - match: [{headers: {x.dot: {exact: v}}}]\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].match[0].headers.x.dot", "not a valid header name"),
        (vs("  hosts: [a]\n  http:\n  - retries: {attempts: 3, retryOn: \"5xx,bogus\"}\n    route: [{destination: {host: a}}]\n"),
            Severity::Error, "spec.http[0].retries.retryOn", "unknown retry condition \"bogus\""),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a, subset: v9}}]\n"),
            Severity::Warning, "spec.http[0].route[0].destination.subset", "not defined by any DestinationRule"),
        (vs("  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    fault: {abort: {httpStatus: 700}}\n"),
            Severity::Error, "spec.http[0].fault.abort.httpStatus", "out of range 200..600"),
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
            Severity::Warning, "spec.endpoints", "STATIC without endpoints"),
        (se("  hosts: [db.example.com]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: db.internal}]\n"),
            Severity::Error, "spec.endpoints[0].address", "not an IP address"),
        (se("  hosts: [\"*.example.com\"]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n"),
            Severity::Error, "spec.hosts[0]", "must be DNS names, not wildcards"),
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
        ("apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {headerPropagation: {headers: [x-swimlane, baggage], maxEntries: 5000, ttl: 10s}}\n".into(),
            Severity::Error, "", ""),
        ("apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {headerPropagation: {}}\n".into(),
            Severity::Error, "spec.headerPropagation.headers", "no headers"),
        ("apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {headerPropagation: {headers: [\"x swim\"]}}\n".into(),
            Severity::Error, "spec.headerPropagation.headers[0]", "not a valid header name"),
        ("apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {headerPropagation: {headers: [a], maxEntries: 0}}\n".into(),
            Severity::Error, "spec.headerPropagation.maxEntries", "out of range"),
        ("apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {headerPropagation: {headers: [a], ttl: 0s}}\n".into(),
            Severity::Error, "spec.headerPropagation.ttl", "at least 1ms"),
        ("spec: {hosts: [a]}\n".into(), Severity::Error, "", "no apiVersion and kind"),
        ("- a\n- b\n".into(), Severity::Error, "", "found a list"),
        ("a: [unclosed\n".into(), Severity::Error, "", "not valid YAML"),
    ];
    expect(cases);
}

/// Checks each case: no errors where the message is empty, else a finding of
/// that severity at that path whose message contains the text.
fn expect(cases: Vec<(String, Severity, &str, &str)>) {
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

#[test]
fn destination_rule_fields_and_rules_follow_istio() {
    let lb = |yaml: &str| {
        dr(&format!(
            "  host: a\n  trafficPolicy:\n    loadBalancer: {yaml}\n"
        ))
    };
    let pool = |yaml: &str| {
        dr(&format!(
            "  host: a\n  trafficPolicy:\n    connectionPool: {yaml}\n"
        ))
    };
    let tls = |yaml: &str| dr(&format!("  host: a\n  trafficPolicy:\n    tls: {yaml}\n"));
    let od = |yaml: &str| {
        dr(&format!(
            "  host: a\n  trafficPolicy:\n    outlierDetection: {yaml}\n"
        ))
    };
    expect(vec![
        (
            lb(
                "{simple: LEAST_REQUEST, warmup: {duration: 60s, minimumPercent: 10, aggression: 1.5}}",
            ),
            Severity::Note,
            "",
            "",
        ),
        (
            lb("{warmup: {minimumPercent: 150}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
            "out of range 0..100",
        ),
        (
            lb("{warmup: {aggression: -1}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.warmup.aggression",
            "cannot be negative",
        ),
        (
            lb("{warmup: {duration: 0s}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.warmup.duration",
            "at least 1ms",
        ),
        (
            lb("{warmupDurationSecs: 30s}"),
            Severity::Warning,
            "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
            "deprecated",
        ),
        (
            lb("{warmupDurationSecs: 30s, warmup: {duration: 30s}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
            "only one of warmupDurationSecs and warmup",
        ),
        (
            lb("{consistentHash: {httpHeaderName: x, maglev: {tableSize: 65537}}}"),
            Severity::Note,
            "",
            "",
        ),
        (
            lb("{consistentHash: {httpHeaderName: x, maglev: {tableSize: 65536}}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            "not a prime",
        ),
        (
            lb("{consistentHash: {httpHeaderName: x, maglev: {tableSize: 5000011}}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            "less than 5000011",
        ),
        (
            lb("{consistentHash: {httpHeaderName: x, minimumRingSize: 1024}}"),
            Severity::Warning,
            "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
            "deprecated",
        ),
        (
            lb(
                "{consistentHash: {httpHeaderName: x, minimumRingSize: 1024, ringHash: {minimumRingSize: 1024}}}",
            ),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
            "only one of minimumRingSize and ringHash or maglev",
        ),
        (
            lb("{consistentHash: {ringHash: {minimumRingSize: 1024}}}"),
            Severity::Warning,
            "spec.trafficPolicy.loadBalancer.consistentHash",
            "sluice hashes the client's IP",
        ),
        (
            lb(
                "{consistentHash: {httpCookie: {name: s, ttl: 0s, attributes: [{name: SameSite, value: Strict}, {name: Secure}]}}}",
            ),
            Severity::Note,
            "",
            "",
        ),
        (
            lb(
                "{localityLbSetting: {distribute: [{from: us-west/*, to: {\"us-west/*\": 0, \"us-east/*\": 100}}]}}",
            ),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to.us-west/*",
            "out of range 1..100",
        ),
        (
            lb("{localityLbSetting: {distribute: [{from: \"us-*/a\", to: {\"us-west/*\": 100}}]}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
            "'*' may only be the last part",
        ),
        (
            lb(
                "{localityLbSetting: {distribute: [{from: us-west/*, to: {\"us-west/*\": 50, \"us-west/z1\": 50}}]}}",
            ),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
            "overlaps",
        ),
        (
            lb("{localityLbSetting: {failover: [{from: us-west/z1, to: us-east}]}}"),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            "regions only",
        ),
        (
            lb("{localityLbSetting: {failover: [{from: us-west, to: us-east}]}}"),
            Severity::Warning,
            "spec.trafficPolicy.loadBalancer.localityLbSetting",
            "needs outlier detection",
        ),
        (
            lb(
                "{localityLbSetting: {failover: [{from: us-west, to: us-east}], failoverPriority: [topology.kubernetes.io/zone]}}",
            ),
            Severity::Error,
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority",
            "cannot be used beside failover",
        ),
        (
            pool(
                "{tcp: {maxConnections: 10, connectTimeout: 30ms, maxConnectionDuration: 1h, idleTimeout: 5m, tcpKeepalive: {time: 7200s, interval: 75s, probes: 9}}, http: {maxConcurrentStreams: 100, idleTimeout: 1m}}",
            ),
            Severity::Note,
            "",
            "",
        ),
        (
            pool("{}"),
            Severity::Error,
            "spec.trafficPolicy.connectionPool",
            "needs tcp or http",
        ),
        (
            pool("{tcp: {connectTimeout: 1500us}}"),
            Severity::Error,
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            "whole milliseconds",
        ),
        (
            pool("{tcp: {tcpKeepalive: {interval: 0s}}}"),
            Severity::Error,
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.interval",
            "at least 1ms",
        ),
        (
            pool("{http: {maxConcurrentStreams: -1}}"),
            Severity::Error,
            "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams",
            "cannot be negative",
        ),
        (
            pool("{http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}"),
            Severity::Warning,
            "spec.trafficPolicy.connectionPool.http",
            "Istio rejects this",
        ),
        (
            od("{splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3}"),
            Severity::Note,
            "",
            "",
        ),
        (
            od("{consecutiveLocalOriginFailures: 3}"),
            Severity::Error,
            "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            "splitExternalLocalOriginErrors",
        ),
        (
            od("{interval: 1.5ms}"),
            Severity::Error,
            "spec.trafficPolicy.outlierDetection.interval",
            "whole milliseconds",
        ),
        (
            tls("{mode: SIMPLE, insecureSkipVerify: true}"),
            Severity::Note,
            "",
            "",
        ),
        (
            tls("{mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}"),
            Severity::Error,
            "spec.trafficPolicy.tls.insecureSkipVerify",
            "skips verification",
        ),
        (
            tls("{mode: MUTUAL, credentialName: c, clientCertificate: /c.pem}"),
            Severity::Error,
            "spec.trafficPolicy.tls.credentialName",
            "do not set clientCertificate",
        ),
        (
            tls("{mode: MUTUAL, credentialName: c}"),
            Severity::Note,
            "",
            "",
        ),
        (
            tls("{mode: MUTUAL, clientCertificate: /c.pem}"),
            Severity::Error,
            "spec.trafficPolicy.tls",
            "MUTUAL needs clientCertificate and privateKey",
        ),
        (
            dr("  host: a\n  trafficPolicy: {}\n"),
            Severity::Error,
            "spec.trafficPolicy",
            "at least one field",
        ),
        (
            dr(
                "  host: a\n  trafficPolicy:\n    tunnel: {targetHost: proxy.example.com, targetPort: 8080}\n    proxyProtocol: {version: V2}\n",
            ),
            Severity::Error,
            "spec.trafficPolicy",
            "only one of tunnel and proxyProtocol",
        ),
        (
            dr(
                "  host: a\n  trafficPolicy:\n    tunnel: {protocol: PUT, targetHost: \"bad host\", targetPort: 0}\n",
            ),
            Severity::Error,
            "spec.trafficPolicy.tunnel.protocol",
            "not CONNECT or POST",
        ),
        (
            dr(
                "  host: a\n  trafficPolicy:\n    tunnel: {targetHost: \"bad host\", targetPort: 8080}\n",
            ),
            Severity::Error,
            "spec.trafficPolicy.tunnel.targetHost",
            "not an FQDN or IP address",
        ),
        (
            dr("  host: a\n  trafficPolicy:\n    proxyProtocol: {version: V3}\n"),
            Severity::Error,
            "spec.trafficPolicy.proxyProtocol.version",
            "unknown variant `V3`",
        ),
        (
            dr("  host: a\n  trafficPolicy:\n    portLevelSettings: [{port: {number: 80}}]\n"),
            Severity::Error,
            "spec.trafficPolicy.portLevelSettings[0]",
            "need at least one of",
        ),
        (
            dr(
                "  host: a\n  trafficPolicy:\n    portLevelSettings:\n    - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n    - {port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}\n",
            ),
            Severity::Warning,
            "spec.trafficPolicy.portLevelSettings[1].port",
            "only the first applies",
        ),
        (
            dr("  host: a\n  exportTo: [., ns1, ns1]\n"),
            Severity::Error,
            "spec.exportTo[2]",
            "repeats spec.exportTo[1]",
        ),
        (
            dr("  host: a\n  exportTo: [\"*\", ns1]\n"),
            Severity::Error,
            "spec.exportTo[0]",
            "cannot be combined",
        ),
        (
            dr("  host: a\n  exportTo: [\"~\"]\n"),
            Severity::Error,
            "spec.exportTo[0]",
            "not a namespace name",
        ),
        (
            dr("  host: a\n  workloadSelector: {matchLabels: {app: web}}\n  exportTo: [other]\n"),
            Severity::Error,
            "spec.exportTo",
            "only be exported to its own namespace",
        ),
        (
            dr("  host: a\n  workloadSelector: {matchLabels: {}}\n"),
            Severity::Warning,
            "spec.workloadSelector.matchLabels",
            "without labels",
        ),
        (dr("  host: \"*foo.example.com\"\n"), Severity::Note, "", ""),
        (
            dr("  host: \"foo.*.com\"\n"),
            Severity::Error,
            "spec.host",
            "label \"*\" is invalid",
        ),
        (
            dr("  host: a.b.123\n"),
            Severity::Error,
            "spec.host",
            "all digits",
        ),
    ]);
}

#[test]
fn service_entry_rules_follow_istio() {
    expect(vec![
        (
            se("  hosts: [api.example.com]\n  resolution: DNS\n"),
            Severity::Note,
            "",
            "",
        ),
        (
            se(
                "  hosts: [\"*-api.example.com\"]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n",
            ),
            Severity::Warning,
            "spec.hosts[0]",
            "partial wildcard",
        ),
        (
            se(
                "  hosts: [\"*api.example.com\"]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n",
            ),
            Severity::Note,
            "",
            "",
        ),
        (
            se("  hosts: [\"api.*.com\"]\n"),
            Severity::Error,
            "spec.hosts[0]",
            "label \"*\" is invalid",
        ),
        (
            se("  hosts: [a.example.com]\n  ports: [{number: 80}]\n"),
            Severity::Error,
            "spec.ports[0].name",
            "required: a port needs a name",
        ),
        (
            se("  hosts: [a.example.com]\n  ports: [{number: 53, name: dns, protocol: UDP}]\n"),
            Severity::Note,
            "",
            "",
        ),
        (
            se("  hosts: [a.example.com]\n  addresses: [10.0.0.0/16]\n  resolution: DNS\n"),
            Severity::Error,
            "spec.addresses",
            "only with resolution NONE or STATIC",
        ),
        (
            se(
                "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: DNS_ROUND_ROBIN\n  endpoints: [{address: a1.example.com}, {address: a2.example.com}]\n",
            ),
            Severity::Error,
            "spec.endpoints",
            "at most one endpoint",
        ),
        (
            se(
                "  hosts: [a.example.com, b.example.com]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n  resolution: DNS\n",
            ),
            Severity::Error,
            "spec.hosts",
            "need HTTP or TLS ports",
        ),
        (
            se(
                "  hosts: [a.example.com, b.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  resolution: DNS\n",
            ),
            Severity::Note,
            "",
            "",
        ),
        (
            se(
                "  hosts: [\"*.example.com\"]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  resolution: DYNAMIC_DNS\n",
            ),
            Severity::Warning,
            "spec.resolution",
            "DYNAMIC_DNS is not acted on",
        ),
        (
            se(
                "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: \"unix:///var/run/a.sock\", ports: {http: 80}}]\n",
            ),
            Severity::Error,
            "spec.endpoints[0].ports",
            "takes no ports",
        ),
        (
            se(
                "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: DNS\n  endpoints: [{address: \"bad_name\"}]\n",
            ),
            Severity::Error,
            "spec.endpoints[0].address",
            "not an IP address or DNS name",
        ),
        (
            se(
                "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: \"\", network: remote}]\n",
            ),
            Severity::Warning,
            "spec.endpoints[0].address",
            "sluice skips it",
        ),
        (
            se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, targetPort: 8080}]\n"),
            Severity::Warning,
            "spec.ports[0].targetPort",
            "no effect with resolution NONE",
        ),
        (
            se("  hosts: [a.example.com]\n  exportTo: [\"~\"]\n"),
            Severity::Note,
            "",
            "",
        ),
        (
            se("  hosts: [a.example.com]\n  exportTo: [\"~\", ns1]\n"),
            Severity::Error,
            "spec.exportTo[0]",
            "cannot be combined",
        ),
        (
            se(
                "  hosts: [a.example.com]\n  workloadSelector: {labels: {app: \"*\"}}\n  resolution: STATIC\n",
            ),
            Severity::Error,
            "spec.workloadSelector.labels.app",
            "wildcards are not supported",
        ),
    ]);
}

#[test]
fn virtual_service_rules_follow_istio() {
    let http = |rule: &str| vs(&format!("  hosts: [a]\n  http:\n  - {rule}\n"));
    const TO_A: &str = "route: [{destination: {host: a}}]";
    expect(vec![
        (
            vs(
                "  hosts: [a.example.com, \"*.example.com\"]\n  http: [{route: [{destination: {host: a}}]}]\n",
            ),
            Severity::Error,
            "spec.hosts[1]",
            "overlaps spec.hosts[0]",
        ),
        (
            vs("  hosts: [10.0.0.1]\n  http: [{route: [{destination: {host: a}}]}]\n"),
            Severity::Note,
            "",
            "",
        ),
        (
            vs(
                "  hosts: [a]\n  gateways: [gw.istio-system]\n  http: [{route: [{destination: {host: a}}]}]\n",
            ),
            Severity::Warning,
            "spec.gateways[0]",
            "prefer the NAMESPACE/NAME form, \"istio-system/gw\"",
        ),
        (
            vs(
                "  hosts: [a]\n  gateways: [Bad_NS/gw]\n  http: [{route: [{destination: {host: a}}]}]\n",
            ),
            Severity::Error,
            "spec.gateways[0]",
            "not a valid namespace",
        ),
        (
            http("{redirect: {uri: /b, redirectCode: 305}}"),
            Severity::Note,
            "",
            "",
        ),
        (
            http("{redirect: {uri: /b, redirectCode: 200}}"),
            Severity::Error,
            "spec.http[0].redirect.redirectCode",
            "not a 3xx status",
        ),
        (
            http("{redirect: {scheme: ftp}}"),
            Severity::Error,
            "spec.http[0].redirect.scheme",
            "not http or https",
        ),
        (
            http("{redirect: {}}"),
            Severity::Error,
            "spec.http[0].redirect",
            "at least one of uri",
        ),
        (
            http("{redirect: {uri: /b}, fault: {abort: {httpStatus: 500}}}"),
            Severity::Error,
            "spec.http[0].fault",
            "cannot be combined with redirect",
        ),
        (
            http(&format!("{{rewrite: {{}}, {TO_A}}}")),
            Severity::Error,
            "spec.http[0].rewrite",
            "at least one of uri, uriRegexRewrite and authority",
        ),
        (
            http(&format!(
                "{{rewrite: {{uriRegexRewrite: {{match: \"^/a\", rewrite: \"\"}}}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].rewrite.uriRegexRewrite.rewrite",
            "needs match and rewrite",
        ),
        (
            http(&format!(
                "{{match: [{{uri: {{regex: \"{}\"}}}}], {TO_A}}}",
                "a".repeat(1025)
            )),
            Severity::Error,
            "spec.http[0].match[0].uri.regex",
            "at most 1024",
        ),
        (
            http(&format!("{{match: [{{uri: {{prefix: \"\"}}}}], {TO_A}}}")),
            Severity::Error,
            "spec.http[0].match[0].uri.prefix",
            "prefix is empty",
        ),
        (
            http(&format!(
                "{{retries: {{attempts: 0, retryOn: 5xx}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].retries.attempts",
            "attempts 0 turns retries off",
        ),
        (
            http(&format!(
                "{{retries: {{attempts: 2, retryOn: \"5xx, reset\"}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].retries.retryOn",
            "unknown retry condition \" reset\"",
        ),
        (
            http(&format!(
                "{{retries: {{attempts: 2, retryOn: \"reset-before-request,503\", backoff: 50ms, retryIgnorePreviousHosts: true}}, {TO_A}}}"
            )),
            Severity::Note,
            "",
            "",
        ),
        (
            http(&format!(
                "{{fault: {{abort: {{grpcStatus: NOPE}}}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].fault.abort.grpcStatus",
            "not a gRPC status name",
        ),
        (
            http(&format!("{{fault: {{abort: {{http2Error: x}}}}, {TO_A}}}")),
            Severity::Error,
            "spec.http[0].fault.abort.http2Error",
            "not supported",
        ),
        (
            http(&format!(
                "{{fault: {{abort: {{percentage: {{value: 5}}}}}}, {TO_A}}}"
            )),
            Severity::Warning,
            "spec.http[0].fault.abort",
            "aborts nothing",
        ),
        (
            http(&format!(
                "{{fault: {{delay: {{fixedDelay: 1s, percentage: {{value: 0.00001}}}}}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].fault.delay.percentage.value",
            "neither 0 nor in range 0.0001..100",
        ),
        (
            http(&format!(
                "{{corsPolicy: {{allowMethods: [FETCH]}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].corsPolicy.allowMethods[0]",
            "not a supported HTTP method",
        ),
        (
            http(&format!(
                "{{corsPolicy: {{maxAge: 1500ms, allowHeaders: [\"*\", x-a]}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].corsPolicy.maxAge",
            "whole seconds",
        ),
        (
            http(&format!(
                "{{corsPolicy: {{allowOrigins: [{{exact: \"\"}}]}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "cannot be empty",
        ),
        (
            http(&format!(
                "{{corsPolicy: {{allowOrigins: [{{exact: \"https://a\"}}], unmatchedPreflights: IGNORE}}, {TO_A}}}"
            )),
            Severity::Note,
            "",
            "",
        ),
        (
            http(&format!(
                "{{headers: {{request: {{set: {{\":path\": /x}}}}}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].headers.request.set.:path",
            "cannot be changed here",
        ),
        (
            http(&format!(
                "{{headers: {{response: {{remove: [host]}}}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].headers.response.remove[0]",
            "cannot be changed here",
        ),
        (
            http(&format!(
                "{{rewrite: {{authority: b}}, headers: {{request: {{set: {{host: c}}}}}}, {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].headers.request.set.host",
            "already rewritten by spec.http[0].rewrite.authority",
        ),
        (
            http(&format!("{{match: [{{sourceNamespace: Bad_NS}}], {TO_A}}}")),
            Severity::Error,
            "spec.http[0].match[0].sourceNamespace",
            "not a namespace name",
        ),
        (
            http(&format!(
                "{{match: [{{headers: {{\"@request.auth.claims.group\": {{exact: a}}}}}}], {TO_A}}}"
            )),
            Severity::Error,
            "spec.http[0].match[0].headers.@request.auth.claims.group",
            "only supported for VirtualServices bound to gateways",
        ),
        (
            http("{match: [{uri: {regex: /a.*}}], delegate: {name: d}}"),
            Severity::Error,
            "spec.http[0].match[0].uri",
            "regex matches cannot be used in delegation",
        ),
        (
            http("{directResponse: {status: 503, body: {string: unavailable}}}"),
            Severity::Note,
            "",
            "",
        ),
        (
            http(&format!(
                "{{directResponse: {{status: 200, body: {{string: \"{}\"}}}}}}",
                "x".repeat(200 * 1024)
            )),
            Severity::Warning,
            "spec.http[0].directResponse.body",
            "large direct responses",
        ),
        (
            http(&format!("{{mirrorPercentage: {{value: 10}}, {TO_A}}}")),
            Severity::Warning,
            "spec.http[0].mirrorPercentage",
            "no effect",
        ),
        (
            http("{route: [{destination: {host: \"*.example.com\"}}]}"),
            Severity::Note,
            "",
            "",
        ),
        (
            http("{route: [{destination: {host: \"*\"}}]}"),
            Severity::Error,
            "spec.http[0].route[0].destination.host",
            "cannot be \"*\"",
        ),
        (
            vs(
                "  hosts: [a.example.com]\n  tls:\n  - match: [{sniHosts: [b.example.com]}]\n    route: [{destination: {host: a}}]\n",
            ),
            Severity::Warning,
            "spec.tls[0].match[0].sniHosts[0]",
            "not within any host",
        ),
        (
            vs(
                "  hosts: [\"*.example.com\"]\n  tls:\n  - match: [{sniHosts: [b.example.com]}]\n    route: [{destination: {host: a}}]\n",
            ),
            Severity::Note,
            "",
            "",
        ),
        (
            vs(
                "  hosts: [a]\n  exportTo: [\"*\", ns]\n  http: [{route: [{destination: {host: a}}]}]\n",
            ),
            Severity::Error,
            "spec.exportTo[0]",
            "cannot be combined",
        ),
    ]);
}

#[test]
fn gateway_rules_follow_istio() {
    const TLS: &str = "tls: {mode: SIMPLE, credentialName: cert}";
    let server = |s: &str| {
        gw(&format!(
            "  selector: {{istio: ingressgateway}}\n  servers:\n  - {s}\n"
        ))
    };
    expect(vec![
        (server(&format!("{{port: {{number: 443, name: https, protocol: HTTPS}}, hosts: [ns/a.example.com], {TLS}}}")), Severity::Note, "", ""),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*/*.example.com\"], tls: {}}"), Severity::Note, "", ""),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com]}"), Severity::Error, "spec.servers[0].tls", "needs tls settings"),
        (server("{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com], tls: {httpsRedirect: true}}"), Severity::Note, "", ""),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: c, httpsRedirect: true}}"), Severity::Warning, "spec.servers[0].tls.httpsRedirect", "HTTP servers only"),
        (server("{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: c}}"), Severity::Error, "spec.servers[0].tls", "plain-text HTTP server"),
        (server("{port: {number: 80, protocol: HTTP}, hosts: [a.example.com]}"), Severity::Error, "spec.servers[0].port.name", "required"),
        (server("{port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}, hosts: [a.example.com]}"), Severity::Error, "spec.servers[0].port.targetPort", "no effect on Gateways"),
        (server("{port: {number: 80, name: http, protocol: FTP}, hosts: [a.example.com]}"), Severity::Error, "spec.servers[0].port.protocol", "not one of"),
        (server("{port: {number: 80, name: http, protocol: HTTP}, hosts: [reviews]}"), Severity::Error, "spec.servers[0].hosts[0]", "short names are not allowed"),
        (server("{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*foo.example.com\"]}"), Severity::Error, "spec.servers[0].hosts[0]", "partial wildcards"),
        (server("{port: {number: 80, name: http, protocol: HTTP}, hosts: [10.0.0.1]}"), Severity::Note, "", ""),
        (server("{port: {number: 80, name: http, protocol: HTTP}, bind: nowhere, hosts: [a.example.com]}"), Severity::Error, "spec.servers[0].bind", "not an IP address or unix:// path"),
        (server("{port: {number: 0, name: uds, protocol: HTTP}, bind: \"unix:///var/run/gw.sock\", hosts: [a.example.com]}"), Severity::Note, "", ""),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE}}"), Severity::Error, "spec.servers[0].tls.serverCertificate", "SIMPLE needs serverCertificate"),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}}"), Severity::Error, "spec.servers[0].tls.caCertificates", "MUTUAL needs caCertificates"),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: ISTIO_MUTUAL, credentialName: c}}"), Severity::Error, "spec.servers[0].tls", "ISTIO_MUTUAL uses mesh certificates"),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: c, caCrl: /crl}}"), Severity::Error, "spec.servers[0].tls.caCrl", "belongs in the credential"),
        (server("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_1}}"), Severity::Warning, "spec.servers[0].tls.minProtocolVersion", "need cipherSuites"),
        (gw("  servers:\n  - {port: {number: 80, name: web, protocol: HTTP}, hosts: [a.example.com]}\n  - {port: {number: 81, name: web, protocol: HTTP}, hosts: [b.example.com]}\n"), Severity::Error, "spec.servers[1].port.name", "already used by spec.servers[0]"),
        ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: my.gw}\nspec:\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com]}]\n".into(),
            Severity::Error, "metadata.name", "must be a DNS label"),
    ]);
}

#[test]
fn unquoted_ipv6_addresses_in_flow_sequences_load_as_kubectl_reads_them() {
    let yaml = format!(
        "{}---\n{}",
        dr("  host: a\n"),
        se(
            "  hosts: [db.example.com]\n  addresses: [1.2.3.4, 2001:db8::, \"::1\"]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n  endpoints: [{address: fe80::}]\n  resolution: STATIC\n"
        ),
    );
    let mut set = load_str("v6.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors(), "{:#?}", set.diagnostics);
    let Some(Spec::ServiceEntry(entry)) = set.resources.get(1).map(|r| &r.spec) else {
        panic!("no ServiceEntry in {:#?}", set.resources);
    };
    assert_eq!(entry.addresses, ["1.2.3.4", "2001:db8::", "::1"]);
    assert_eq!(entry.endpoints[0].address, "fe80::");
    assert_eq!(set.resources[1].origin.doc, 2);

    let typo = se("  hosts: [db.example.com]\n  adresses: [2001:db8::]\n");
    let found = findings(&typo);
    assert!(
        found.iter().any(|(s, p, m)| *s == Severity::Error
            && p == "spec.adresses"
            && m.contains("unknown field \"adresses\"")),
        "{found:#?}"
    );
}
