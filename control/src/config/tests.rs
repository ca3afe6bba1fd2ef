use super::*;

#[test]
fn defaults_are_valid_and_round_trip() {
    let config = InjectConfig::default();
    config.check().unwrap();
    let yaml = serde_norway::to_string(&config).unwrap();
    assert_eq!(InjectConfig::from_yaml(&yaml).unwrap(), config);
    assert_eq!(InjectConfig::from_yaml("").unwrap(), config);
}

#[test]
fn partial_config_keeps_other_defaults() {
    let config = InjectConfig::from_yaml(
        "nativeSidecar: false\nimages: {proxy: my/proxy:1}\nproxy: {resources: {requests: {cpu: 50m}}}\n",
    )
    .unwrap();
    assert!(!config.native_sidecar);
    assert_eq!(config.images.proxy, "my/proxy:1");
    assert_eq!(config.images.init, InjectConfig::default().images.init);
    assert_eq!(config.proxy.resources.requests.cpu.as_deref(), Some("50m"));
    assert_eq!(
        config.proxy.resources.requests.memory.as_deref(),
        Some("64Mi"),
        "other defaults kept"
    );
    assert_eq!(
        config.proxy.resources.limits.memory.as_deref(),
        Some("256Mi")
    );
    let unset = InjectConfig::from_yaml("proxy: {resources: {limits: {memory: null}}}").unwrap();
    assert_eq!(
        unset.proxy.resources.limits.memory, None,
        "null removes a default"
    );
    assert_eq!(config.proxy.ports.health, 15021);
}

#[test]
fn errors_name_fields() {
    let cases = [
        (
            "images: {proxyImage: x}",
            "images.proxyImage: unknown field `proxyImage`, expected one of",
        ),
        ("- a", "expected a mapping"),
        ("proxy: {uid: [}", "not valid YAML"),
        ("proxy: {ports: {health: 99999}}", "proxy.ports.health"),
        (
            "proxy: {ports: {health: 15000}}",
            "proxy.ports.health: 15000 is also proxy.ports.admin",
        ),
        ("proxy: {uid: 0}", "proxy.uid"),
        ("proxy: {logLevel: loud}", "proxy.logLevel"),
        ("capture: {mode: nat}", "capture.mode"),
        (
            "capture: {excludeOutboundCidrs: '10.0.0.0/40'}",
            "capture.excludeOutboundCidrs",
        ),
        (
            "capture: {excludeInboundPorts: '*'}",
            "capture.excludeInboundPorts",
        ),
        (
            "proxy: {resources: {requests: {memory: 1Gi}}}",
            "proxy.resources.requests.memory: \"1Gi\" is more than the limit",
        ),
        (
            "init: {resources: {limits: {cpu: lots}}}",
            "init.resources.limits.cpu",
        ),
    ];
    for (yaml, want) in cases {
        let err = InjectConfig::from_yaml(yaml).unwrap_err();
        assert!(err.contains(want), "{yaml}: {err}");
    }
    let err = InjectConfig::from_yaml("proxy: {uid: 0, logLevel: loud}").unwrap_err();
    assert!(
        err.contains("proxy.uid") && err.contains("proxy.logLevel"),
        "all at once: {err}"
    );
}

/// The defaults shown in docs/injection.md are the real ones.
#[test]
fn documented_defaults_are_the_defaults() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/injection.md"))
        .expect("docs/injection.md");
    let start = doc
        .find("<!-- default config -->\n```yaml\n")
        .expect("default config marker");
    let block = &doc[start..];
    let block = &block[block.find("```yaml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let documented: serde_json::Value = serde_norway::from_str(block).unwrap();
    assert_eq!(
        documented,
        serde_json::to_value(InjectConfig::default()).unwrap()
    );
}

#[test]
fn discovery_section() {
    assert_eq!(InjectConfig::default().discovery, None, "off by default");
    let config =
        InjectConfig::from_yaml("discovery: {address: sluice-control.sluice-system.svc:15012}")
            .unwrap();
    let discovery = config.discovery.unwrap();
    assert_eq!(discovery.ca_config_map, DEFAULT_CA_CONFIG_MAP);
    assert!(!discovery.insecure);
    assert_eq!(
        discovery.url(),
        "https://sluice-control.sluice-system.svc:15012"
    );
    let insecure =
        InjectConfig::from_yaml("discovery: {address: '10.0.0.1:15012', insecure: true}").unwrap();
    assert_eq!(insecure.discovery.unwrap().url(), "http://10.0.0.1:15012");
    assert_eq!(
        InjectConfig::from_yaml("discovery: null").unwrap(),
        InjectConfig::default()
    );

    for (yaml, wanted) in [
        ("discovery: {}", "discovery.address: \"\" is not HOST:PORT"),
        (
            "discovery: {address: 'https://cp:15012'}",
            "discovery.address: \"https://cp:15012\" is HOST:PORT, without a scheme",
        ),
        ("discovery: {address: 'cp:0'}", "is not HOST:PORT"),
        ("discovery: {address: 'cp'}", "is not HOST:PORT"),
        (
            "discovery: {address: 'cp:15012', caConfigMap: Bad_Name}",
            "discovery.caConfigMap: \"Bad_Name\" is not a ConfigMap name",
        ),
        (
            "discovery: {address: 'cp:15012', tls: true}",
            "discovery.tls: unknown field `tls`",
        ),
    ] {
        let err = InjectConfig::from_yaml(yaml).unwrap_err();
        assert!(err.contains(wanted), "{yaml}: {err}");
    }
}
