//! Gray releases with a `sluice.dev/v1alpha1` ReleasePolicy, end to end: a meshed client
//! pod (sluice-init + sluice-proxy as uid 1337), catalog v1 and v2 in pods of their own,
//! a 90/10 VirtualService, and a ReleasePolicy for catalog. One set-up, the scenarios in
//! turn: sticky users over HTTP/2 (2,000 users, 100 requests each for two of them), a live
//! weight change to 70/30 that keeps every v2 user on v2, the cookie the proxy sets, the
//! fallback of an empty v2 subset to v1 (opt-in), the release fields of the access log and
//! the `destination_version` label, and a bad ReleasePolicy rejected naming its field.

mod proxy_support;

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{Context as _, ensure};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use proxy_support::*;
use sluice_e2e::{Node, eventually};

const CATALOG: &str = "http://catalog";
const USERS: usize = 2000;

fn weighted(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: catalog}}\nspec:\n  hosts: [catalog]\n  http:\n  - route:\n    - {{destination: {{host: catalog, subset: v1}}, weight: {v1}}}\n    - {{destination: {{host: catalog, subset: v2}}, weight: {v2}}}\n---\n"
    )
}

fn release(spec: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: ReleasePolicy\nmetadata: {{name: catalog}}\nspec:\n  host: catalog\n{spec}---\n"
    )
}

const BY_USER: &str = "  sticky: {header: x-user-id}\n  fallback: {subsets: [{from: v2, to: v1}]}\n  accessLog: {headers: [x-swimlane, x-app-version]}\n";

/// The version (`catalog-v1`/`catalog-v2`) each of `users` gets, `rounds` requests each, all
/// on one HTTP/2 connection; a user that gets two versions is an error.
fn versions(
    mesh: &Mesh,
    users: Vec<String>,
    rounds: usize,
) -> anyhow::Result<HashMap<String, String>> {
    let vip = SocketAddr::from((CATALOG_VIP, 80));
    mesh.run(async move {
        let mut conn = h2_connect(vip).await?;
        let mut got = HashMap::new();
        for user in users {
            for _ in 0..rounds {
                let req = hyper::Request::get("http://catalog/")
                    .header("x-user-id", &user)
                    .header("x-swimlane", "gray")
                    .body(Full::new(Bytes::new()))?;
                let resp = conn.send_request(req).await?;
                ensure!(resp.status() == 200, "{user}: status {}", resp.status());
                let app = resp
                    .headers()
                    .get("x-app")
                    .context("x-app")?
                    .to_str()?
                    .to_string();
                resp.into_body().collect().await?;
                let first = got.entry(user.clone()).or_insert_with(|| app.clone());
                ensure!(*first == app, "{user} got {first} then {app}");
            }
        }
        Ok(got)
    })
}

fn share_v2(got: &HashMap<String, String>) -> f64 {
    got.values().filter(|a| *a == "catalog-v2").count() as f64 / got.len() as f64
}

#[test]
fn sticky_users_weight_change_cookie_fallback_and_access_log() -> anyhow::Result<()> {
    let node = Node::new("gray_release")?;
    let v1 = http_app(&node, "v1", "catalog", "v1", 8080)?;
    let v2 = http_app(&node, "v2", "catalog", "v2", 8080)?;
    let both = [(v1.pod.ipv4.into(), "v1"), (v2.pod.ipv4.into(), "v2")];
    let base = |endpoints: &[_]| {
        service_entry("catalog", CATALOG_VIP, "http", 8080, endpoints)
            + &destination_rule("catalog", &[("v1", "v1"), ("v2", "v2")])
    };
    let config = |endpoints: &[_], vs: &str, rp: &str| format!("{}{vs}{rp}", base(endpoints));
    let mesh = Mesh::start(
        &node,
        &config(&both, &weighted(90, 10), &release(BY_USER)),
        &["--access-log"],
    )?;
    mesh.client.set_hosts(&[(CATALOG_VIP.into(), "catalog")])?;

    // The policy and the bucket ranges are in the config dump.
    let dump = mesh.config_dump()?;
    let host = "catalog.default.svc.cluster.local";
    assert_eq!(
        dump["model"]["releases"]["hosts"][host]["sticky"]["Header"], "x-user-id",
        "{:#}",
        dump["model"]["releases"]
    );

    // 10%: the share of 2,000 users on v2 within 3 points; two users keep their version
    // over 100 requests each.
    let users: Vec<String> = (0..USERS).map(|u| format!("user-{u}")).collect();
    let at10 = versions(&mesh, users.clone(), 1)?;
    let share = share_v2(&at10);
    assert!((0.07..=0.13).contains(&share), "10% gave {share} on v2");
    let on = |app: &str| at10.iter().find(|(_, a)| *a == app).map(|(u, _)| u.clone());
    let pair = vec![on("catalog-v1").unwrap(), on("catalog-v2").unwrap()];
    let again = versions(&mesh, pair.clone(), 100)?;
    for user in &pair {
        assert_eq!(again[user], at10[user], "{user} over 100 requests");
    }

    // 30%: every v2 user stays on v2; new buckets move, nobody moves back.
    mesh.reconfigure(&config(&both, &weighted(70, 30), &release(BY_USER)))?;
    let at30 = versions(&mesh, users.clone(), 1)?;
    let share = share_v2(&at30);
    assert!((0.27..=0.33).contains(&share), "30% gave {share} on v2");
    let moved_back = at10
        .iter()
        .filter(|(u, a)| *a == "catalog-v2" && at30[*u] != "catalog-v2")
        .count();
    assert_eq!(moved_back, 0, "v2 users moved back to v1 on a raise");

    // The access log has the release headers; the metric has the endpoint's version.
    let line = eventually("an access log line with release fields", TIMEOUT, || {
        let out = mesh.proxy.stdout();
        let line = out.lines().next().context("no access log yet")?;
        Ok(serde_json::from_str::<serde_json::Value>(line)?)
    })?;
    assert_eq!(
        line["request_headers"],
        serde_json::json!({"x-swimlane": "gray"}),
        "{line}"
    );
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(
        metrics.contains(r#"destination_subset="v2",destination_version="v2",response_code="200""#),
        "{metrics}"
    );

    // v2 scaled to zero: its users land on v1, marked and counted.
    let v2_user = pair[1].clone();
    mesh.reconfigure(&config(&both[..1], &weighted(70, 30), &release(BY_USER)))?;
    let reply = mesh.curl(CATALOG, &["-H", &format!("x-user-id: {v2_user}")])?;
    assert_eq!(
        (reply.status, reply.app.as_str()),
        (200, "catalog-v1"),
        "{reply:?}"
    );
    assert!(
        reply.head.contains("x-sluice-fallback: v2->v1"),
        "{}",
        reply.head
    );
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(
        metrics.contains(r#"sluice_subset_fallback_total{destination_service="catalog.default.svc.cluster.local",from_subset="v2",to_subset="v1"} 1"#),
        "{metrics}"
    );
    // Without the opt-in, the empty subset answers 503 as in Istio.
    let no_fallback = "  sticky: {header: x-user-id}\n";
    mesh.reconfigure(&config(
        &both[..1],
        &weighted(70, 30),
        &release(no_fallback),
    ))?;
    let reply = mesh.curl(CATALOG, &["-H", &format!("x-user-id: {v2_user}")])?;
    assert_eq!(reply.status, 503, "{reply:?}");

    // v2 failing until outlier detection ejects it: its users land on v1, marked.
    let ejecting = service_entry("catalog", CATALOG_VIP, "http", 8080, &both)
        + "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec:\n  host: catalog\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100, minHealthPercent: 0}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n---\n"
        + &weighted(70, 30)
        + &release(BY_USER);
    mesh.reconfigure(&ejecting)?;
    let user = ["-H", &format!("x-user-id: {v2_user}")];
    let failing = mesh.curl(
        CATALOG,
        &[&user[..], &["-H", "x-echo-status: 503"]].concat(),
    )?;
    assert_eq!(
        (failing.status, failing.app.as_str()),
        (503, "catalog-v2"),
        "{failing:?}"
    );
    let reply = eventually("v2 ejected and its users falling back", TIMEOUT, || {
        let reply = mesh.curl(CATALOG, &user)?;
        ensure!(reply.app == "catalog-v1", "{reply:?}");
        Ok(reply)
    })?;
    assert!(
        reply.head.contains("x-sluice-fallback: v2->v1"),
        "{}",
        reply.head
    );

    // A cookie the proxy sets names the user from then on.
    let by_cookie = "  sticky: {cookie: {name: gray-user, ttl: 1h, attributes: [SameSite=Lax]}}\n";
    mesh.reconfigure(&config(&both, &weighted(50, 50), &release(by_cookie)))?;
    let first = mesh.curl(CATALOG, &[])?;
    let set = first
        .head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .context("no set-cookie")?;
    assert!(
        set.ends_with("; Path=/; Max-Age=3600; SameSite=Lax"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    for _ in 0..20 {
        let reply = mesh.curl(CATALOG, &["-H", &format!("cookie: {cookie}")])?;
        assert_eq!(
            reply.app, first.app,
            "the cookie's user keeps {}",
            first.app
        );
        assert!(!reply.head.contains("set-cookie"), "{}", reply.head);
    }

    // A bad policy is rejected naming file, document and field; the old config stays.
    let bad = "  sticky: {header: x-user-id, clientAddress: true}\n";
    mesh.reconfigure(&config(&both, &weighted(50, 50), &release(bad)))?;
    let dump = mesh.config_dump()?;
    let error = dump["status"]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("mesh.yaml")
            && error.contains("spec.sticky")
            && error.contains("exactly one"),
        "{error}"
    );
    let reply = mesh.curl(CATALOG, &["-H", &format!("cookie: {cookie}")])?;
    assert_eq!(reply.app, first.app);
    Ok(())
}
