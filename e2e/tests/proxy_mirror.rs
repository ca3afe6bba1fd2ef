//! Mirroring end to end with seed 003-18: every request goes to v1, a copy
//! goes to the v2-canary subset with the `-shadow` authority, and a mirror
//! that hangs or is down changes nothing for the client.

mod proxy_support;

use std::time::{Duration, Instant};

use anyhow::ensure;
use proxy_support::*;
use sluice_e2e::{Node, eventually};

const URL: &str = "http://order-service";

fn rules(v1: std::net::IpAddr, mirror: std::net::IpAddr, mirror_port: u16) -> String {
    let se = format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {{name: order-service}}\nspec:\n  hosts: [order-service]\n  addresses: [{CATALOG_VIP}]\n  ports: [{{number: 80, name: http}}]\n  resolution: STATIC\n  location: MESH_INTERNAL\n  endpoints:\n  - {{address: {v1}, ports: {{http: 8080}}, labels: {{version: v1}}}}\n  - {{address: {mirror}, ports: {{http: {mirror_port}}}, labels: {{version: v2}}}}\n---\n"
    );
    let dr = destination_rule(
        "order-service",
        &[("v1", "v1"), ("v2", "v2"), ("v2-canary", "v2")],
    );
    format!("{se}{dr}{}", seed("003-18-traffic-mirroring.yaml"))
}

#[test]
fn the_mirror_sees_every_request_with_the_shadow_authority_and_the_client_only_v1()
-> anyhow::Result<()> {
    let node = Node::new("proxy_mirror")?;
    let v1 = http_app(&node, "v1", "orders", "v1", 8080)?;
    let v2 = http_app(&node, "v2", "orders", "v2", 8080)?;
    let mesh = Mesh::start(
        &node,
        &rules(v1.pod.ipv4.into(), v2.pod.ipv4.into(), 8080),
        &["--access-log"],
    )?;
    mesh.client
        .set_hosts(&[(CATALOG_VIP.into(), "order-service")])?;
    for i in 0..10 {
        let reply = mesh.curl(&format!("{URL}/order/{i}"), &["-d", "item=42"])?;
        assert_eq!((reply.status, reply.app.as_str()), (200, "orders-v1"));
    }
    let reply = mesh.curl(&format!("{URL}/h2"), &["--http2-prior-knowledge"])?;
    assert_eq!(reply.app, "orders-v1");
    let shadows = eventually("v2 to see all 11 copies", TIMEOUT, || {
        let seen = v2.seen();
        ensure!(seen.len() == 11, "{} copies so far", seen.len());
        Ok(seen)
    })?;
    for (i, copy) in shadows.iter().take(10).enumerate() {
        assert_eq!(
            copy.authority.as_deref(),
            Some("order-service-shadow"),
            "{copy:?}"
        );
        assert_eq!(
            (copy.uri.as_str(), copy.method.as_str(), copy.body_len),
            (format!("/order/{i}").as_str(), "POST", 7)
        );
    }
    assert_eq!(v1.seen().len(), 11);
    let log = eventually("11 access log lines", TIMEOUT, || {
        let lines: Vec<serde_json::Value> = mesh
            .proxy
            .stdout()
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        ensure!(lines.len() == 11, "{} lines", lines.len());
        Ok(lines)
    })?;
    assert_eq!(log[0]["authority"], "order-service");
    assert_eq!(log[0]["path"], "/order/0");
    assert_eq!(log[0]["response_code"], 200);
    assert_eq!(log[0]["destination_subset"], "v1");
    assert_eq!(log[10]["protocol"], "HTTP/2.0");
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(metrics.contains(r#"sluice_mirrored_requests_total{destination_service="order-service.default.svc.cluster.local"} 11"#), "{metrics}");
    Ok(())
}

#[test]
fn a_hanging_or_missing_mirror_changes_nothing_for_the_client() -> anyhow::Result<()> {
    let node = Node::new("proxy_mirror_hang")?;
    let v1 = http_app(&node, "v1", "orders", "v1", 8080)?;
    // A mirror that accepts connections and never answers.
    let hang = node.pod("hang")?;
    let hang_rt = hang.runtime()?;
    let _hole = hang_rt.block_on(hang_rt.spawn(async {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
        anyhow::Ok(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }))
    }))??;
    let mesh = Mesh::start(
        &node,
        &rules(v1.pod.ipv4.into(), hang.ipv4.into(), 8080),
        &[],
    )?;
    mesh.client
        .set_hosts(&[(CATALOG_VIP.into(), "order-service")])?;
    let started = Instant::now();
    for _ in 0..10 {
        let reply = mesh.curl(URL, &[])?;
        assert_eq!((reply.status, reply.app.as_str()), (200, "orders-v1"));
    }
    let hanging = started.elapsed();
    // The mirror is down: nothing listens on its port.
    mesh.reconfigure(&rules(v1.pod.ipv4.into(), hang.ipv4.into(), 9999))?;
    let started = Instant::now();
    for _ in 0..10 {
        let reply = mesh.curl(URL, &[])?;
        assert_eq!((reply.status, reply.app.as_str()), (200, "orders-v1"));
    }
    let down = started.elapsed();
    // Each copy to the hanging mirror is held for 5s; ten requests in well
    // under that show none waited for its copy.
    assert!(
        hanging < Duration::from_secs(4),
        "10 requests took {hanging:?} with a hanging mirror"
    );
    assert!(
        down < Duration::from_secs(4),
        "10 requests took {down:?} with the mirror down"
    );
    assert_eq!(v1.seen().len(), 20);
    Ok(())
}
