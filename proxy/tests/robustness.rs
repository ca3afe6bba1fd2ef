//! What the proxy parses from clients never makes it panic: the protocol sniffer (TLS
//! ClientHello with SNI, the HTTP/2 preface, HTTP/1 request lines) and header values as
//! routing and upgrade handling read them. The seeded property harness of `fuzz/harness.rs`
//! over `fuzz/corpus/{sniff,headers}` (the `sniff` and `headers` fuzz targets' entry points).

#[path = "../../fuzz/harness.rs"]
mod harness;
mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use sluice_api::model::routes::RequestInfo;
use sluice_proxy::http::{route, upgrade};
use sluice_proxy::protocol::{Sniff, sniff};

#[test]
fn the_sniffer_never_panics_and_never_reads_past_its_input() {
    harness::run("sniff", &harness::corpus("sniff"), |bytes| {
        let found = sniff(bytes);
        if let Sniff::Tls { sni: Some(name) } = found {
            assert!(name.len() <= bytes.len(), "{name}");
        }
    });
}

/// Header lines (`name: value`) as a map; lines that are not a valid header are left out.
fn headers(bytes: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in bytes.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            map.append(n, v);
        }
    }
    map
}

#[test]
fn header_values_never_panic_routing_or_upgrades() {
    let model = support::model(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: catalog}
spec:
  hosts: [catalog]
  addresses: [10.96.0.10]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - match:
    - headers:
        end-user: {regex: "j.*n"}
        x-user: {prefix: "test"}
      withoutHeaders:
        upgrade: {exact: h2c}
    route: [{destination: {host: catalog}}]
  - route: [{destination: {host: catalog}}]
"#,
    );
    let dst = "10.96.0.10:80".parse().unwrap();
    harness::run("headers", &harness::corpus("headers"), |bytes| {
        let map = headers(bytes);
        let _ = upgrade::is_allowed(&map);
        let authority = map
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("catalog");
        let info = RequestInfo {
            method: "GET",
            scheme: "http",
            authority,
            path: "/",
            query: "",
            port: 80,
            headers: &map,
        };
        let _ = route::route(&model, &info, dst);
    });
}
