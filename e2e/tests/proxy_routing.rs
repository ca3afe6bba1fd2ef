//! sluice-proxy routing end to end: a client pod captured by sluice-init, the
//! proxy as uid 1337, catalog v1 and v2 in pods of their own behind a VIP,
//! and the seed rules of `examples/seeds` with a ServiceEntry and
//! DestinationRule around them. Real clients: curl and hyper.

mod proxy_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::ensure;
use proxy_support::*;
use sluice_e2e::{Node, eventually};

const CATALOG: &str = "http://catalog";

/// catalog v1 and v2, their ServiceEntry (port `web`: undeclared, so detected) and
/// DestinationRule, and `rules`.
fn catalog_mesh(node: &Node, rules: &str) -> anyhow::Result<(Mesh, App, App, String)> {
    let v1 = http_app(node, "v1", "catalog", "v1", 8080)?;
    let v2 = http_app(node, "v2", "catalog", "v2", 8080)?;
    let base = service_entry(
        "catalog",
        CATALOG_VIP,
        "web",
        8080,
        &[(v1.pod.ipv4.into(), "v1"), (v2.pod.ipv4.into(), "v2")],
    ) + &destination_rule("catalog", &[("version-v1", "v1"), ("version-v2", "v2")]);
    let mesh = Mesh::start(node, &format!("{base}{rules}"), &[])?;
    mesh.client.set_hosts(&[(CATALOG_VIP.into(), "catalog")])?;
    Ok((mesh, v1, v2, base))
}

#[test]
fn header_routing_of_seed_000_02_with_curl_over_http1_and_http2() -> anyhow::Result<()> {
    let node = Node::new("proxy_header_routing")?;
    let (mesh, _v1, v2, _) = catalog_mesh(&node, &seed("000-02-catalog-mesh-header-routing.yaml"))?;
    for extra in [&[][..], &["--http2-prior-knowledge"][..]] {
        let internal = [extra, &["-H", "x-istio-cohort: internal"]].concat();
        for _ in 0..5 {
            assert_eq!(
                mesh.curl(CATALOG, &internal)?.app,
                "catalog-v2",
                "{extra:?}"
            );
            assert_eq!(mesh.curl(CATALOG, extra)?.app, "catalog-v1", "{extra:?}");
            assert_eq!(
                mesh.curl(
                    &format!("{CATALOG}/other"),
                    &[extra, &["-H", "x-istio-cohort: external"]].concat()
                )?
                .app,
                "catalog-v1"
            );
        }
    }
    let seen = v2.seen();
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter()
            .all(|s| s.authority.as_deref() == Some("catalog")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.proto == "HTTP/2.0"),
        "h2 clients reach the app over HTTP/2 on an undeclared port"
    );
    Ok(())
}

/// Counts answers by `x-app` over `n` requests on one connection.
fn split(mesh: &Mesh, n: usize, h2: bool) -> anyhow::Result<(usize, usize)> {
    let vip = SocketAddr::from((CATALOG_VIP, 80));
    mesh.run(async move {
        let (mut v1, mut v2) = (0, 0);
        if h2 {
            let mut conn = h2_connect(vip).await?;
            for _ in 0..n {
                let (status, app) = h2_get(&mut conn, "http://catalog/").await?;
                ensure!(status == 200, "status {status}");
                if app == "catalog-v2" {
                    v2 += 1
                } else {
                    v1 += 1
                }
            }
        } else {
            let mut conn = h1_connect(vip).await?;
            for _ in 0..n {
                let (status, app) = h1_get(&mut conn, "catalog", "/").await?;
                ensure!(status == 200, "status {status}");
                if app == "catalog-v2" {
                    v2 += 1
                } else {
                    v1 += 1
                }
            }
        }
        Ok((v1, v2))
    })
}

/// The weighted seeds 003-19 (90/10), 003-20 (50/50), 003-21 (100) applied to catalog.
fn canary(seed_name: &str) -> String {
    seed(seed_name)
        .replace("recommendation-service", "catalog")
        .replace("subset: v1", "subset: version-v1")
        .replace("subset: v2", "subset: version-v2")
}

/// 1,000 requests at 90/10 must give 100 ± 47 to v2: five standard deviations
/// of the binomial (sd = sqrt(1000 * 0.1 * 0.9) = 9.5), which even a
/// per-request coin flip misses with probability below 1e-6. The smooth
/// schedule in fact gives exactly 100. 50/50 likewise: 500 ± 80.
#[test]
fn canary_weights_90_10_then_50_50_then_100_with_a_live_change_and_no_failed_request()
-> anyhow::Result<()> {
    let node = Node::new("proxy_canary")?;
    let (mesh, _v1, _v2, base) = catalog_mesh(&node, &canary("003-19-canary-10.yaml"))?;
    let (v1, v2) = split(&mesh, 1000, true)?;
    assert_eq!(v1 + v2, 1000);
    assert!(
        (53..=147).contains(&v2),
        "90/10 over HTTP/2 gave {v2} to v2"
    );
    let (_, v2) = split(&mesh, 1000, false)?;
    assert!(
        (53..=147).contains(&v2),
        "90/10 over HTTP/1.1 keep-alive gave {v2} to v2"
    );

    mesh.reconfigure(&format!("{base}{}", canary("003-20-canary-50.yaml")))?;
    let (_, v2) = split(&mesh, 1000, true)?;
    assert!((420..=580).contains(&v2), "50/50 gave {v2} to v2");

    // Requests keep flowing on long-lived connections (HTTP/1.1 and HTTP/2) while the config changes.
    let stop = Arc::new(AtomicBool::new(false));
    let vip = SocketAddr::from((CATALOG_VIP, 80));
    let background = {
        let stop = stop.clone();
        mesh.runtime.spawn(async move {
            let mut h1 = h1_connect(vip).await?;
            let mut h2 = h2_connect(vip).await?;
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let (s1, _) = h1_get(&mut h1, "catalog", "/").await?;
                let (s2, _) = h2_get(&mut h2, "http://catalog/").await?;
                ensure!(
                    s1 == 200 && s2 == 200,
                    "failed during the change: {s1} {s2}"
                );
                sent += 2;
            }
            anyhow::Ok(sent)
        })
    };
    mesh.reconfigure(&format!("{base}{}", canary("003-21-canary-100.yaml")))?;
    eventually("all traffic on v2", TIMEOUT, || {
        let (v1, _) = split(&mesh, 20, false)?;
        ensure!(v1 == 0, "{v1} of 20 still on v1");
        Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let sent = mesh.runtime.block_on(background)??;
    assert!(sent > 0);
    let (v1, v2) = split(&mesh, 200, true)?;
    assert_eq!(
        (v1, v2),
        (0, 200),
        "the old HTTP/2 connection follows the new weights too"
    );
    Ok(())
}

#[test]
fn uri_prefix_exact_and_regex_routing() -> anyhow::Result<()> {
    let rules = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - match: [{uri: {prefix: /api/v2}}]
    rewrite: {uri: /v2, authority: catalog-internal}
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{uri: {exact: /checkout}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{headers: {user-agent: {regex: ".*Firefox.*"}}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - route: [{destination: {host: catalog, subset: version-v1}}]
"#;
    let node = Node::new("proxy_uri_routing")?;
    let (mesh, _v1, _v2, _) = catalog_mesh(&node, rules)?;
    let rewritten = mesh.curl(&format!("{CATALOG}/api/v2/items"), &[])?;
    assert_eq!(
        rewritten.seen().authority.as_deref(),
        Some("catalog-internal"),
        "the rewritten authority is the Host the app sees"
    );
    let cases = [
        ("/api/v2/items", &[][..], "catalog-v2", "/v2/items"),
        ("/api/v1/items", &[][..], "catalog-v1", "/api/v1/items"),
        ("/checkout", &[][..], "catalog-v2", "/checkout"),
        ("/checkout/now", &[][..], "catalog-v1", "/checkout/now"),
        ("/items/42", &[][..], "catalog-v2", "/items/42"),
        ("/items/42/x", &[][..], "catalog-v1", "/items/42/x"),
        (
            "/",
            &["-A", "Mozilla/5.0 Firefox/120"][..],
            "catalog-v2",
            "/",
        ),
    ];
    for (path, extra, app, seen_uri) in cases {
        let reply = mesh.curl(&format!("{CATALOG}{path}"), extra)?;
        assert_eq!(
            (reply.app.as_str(), reply.seen().uri.as_str()),
            (app, seen_uri),
            "{path}"
        );
    }
    Ok(())
}

#[test]
fn a_bad_config_change_keeps_the_old_routing_and_shows_the_error() -> anyhow::Result<()> {
    let node = Node::new("proxy_bad_config")?;
    let (mesh, _v1, _v2, base) =
        catalog_mesh(&node, &seed("000-02-catalog-mesh-header-routing.yaml"))?;
    let internal = ["-H", "x-istio-cohort: internal"];
    assert_eq!(mesh.curl(CATALOG, &internal)?.app, "catalog-v2");
    // Seed 000-03 is invalid: weight sits inside destination.
    mesh.reconfigure(&format!(
        "{base}{}",
        seed("000-03-catalog-weighted-90-10.yaml")
    ))?;
    let dump = mesh.config_dump()?;
    let error = dump["status"]["last_error"].as_str().unwrap_or("");
    assert!(error.contains("weight"), "{dump:#}");
    assert_eq!(dump["status"]["version"], 1);
    for _ in 0..5 {
        assert_eq!(
            mesh.curl(CATALOG, &internal)?.app,
            "catalog-v2",
            "the old routing stays"
        );
        assert_eq!(mesh.curl(CATALOG, &[])?.app, "catalog-v1");
    }
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(
        metrics.contains("sluice_config_reload_errors_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_config_version 1"), "{metrics}");
    // The log level changes at run time on the admin port, by POST only.
    assert_eq!(mesh.curl_local(15000, "/logging?level=debug")?.0, 405);
    assert!(mesh.curl_local(15000, "/logging")?.1.contains("info"));
    assert_eq!(mesh.post_local(15000, "/logging?level=debug")?.0, 200);
    assert_eq!(mesh.post_local(15000, "/logging?level=no[such")?.0, 400);
    assert!(mesh.curl_local(15000, "/logging")?.1.contains("debug"));
    Ok(())
}
