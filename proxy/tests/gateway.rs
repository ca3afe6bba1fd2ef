//! The gateway mode through the real `run`, real sockets and a watched config directory:
//! ports of the Gateways that select its labels, host filtering, VirtualServices bound to
//! one or two Gateways, the edge headers, HTTP/1.1 and h2c, httpsRedirect, and listeners
//! opened and closed as the Gateways change while a bad change keeps the last good config;
//! the client limits (a header count beyond the limit answered 431) hold at the edge too.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::model::Workload;
use sluice_proxy::{Ports, Settings, admin, listener};
use support::{echo_app, free_ports, get, h2, h2_get};

fn backends(v1: SocketAddr, v2: SocketAddr) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: myapp, namespace: production}}
spec:
  hosts: [myapp.production.svc.cluster.local]
  ports: [{{number: 80, name: http}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: myapp, namespace: production}}
spec:
  host: myapp.production.svc.cluster.local
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: myapp, namespace: production}}
spec:
  hosts: [shop.example.com, a.wild.test]
  gateways: [istio-system/edge, public]
  http:
  - match: [{{headers: {{x-gray: {{exact: "on"}}}}}}]
    route: [{{destination: {{host: myapp.production.svc.cluster.local, subset: v2}}}}]
  - match: [{{headers: {{x-gray: {{exact: "v3"}}}}}}]
    route: [{{destination: {{host: myapp.production.svc.cluster.local, subset: v3}}}}]
  - route: [{{destination: {{host: myapp.production.svc.cluster.local, subset: v1}}}}]
"#,
        v1.port(),
        v2.port()
    )
}

fn gateway(namespace: &str, name: &str, selector: &str, servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  selector: {{{selector}}}\n  servers:\n{servers}"
    )
}

fn write(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(file)).unwrap();
}

async fn refused(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_mode_serves_the_gateways_that_select_it_and_follows_changes() {
    let v1 = echo_app("127.0.0.1", "myapp", "v1").await;
    let v2 = echo_app("127.0.0.1", "myapp", "v2").await;
    let dir = std::env::temp_dir().join(format!("sluice-gateway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let [
        edge_port,
        public_port,
        redirect_port,
        other_port,
        admin,
        health,
        metrics,
    ] = free_ports();
    write(
        &dir,
        "backends.yaml",
        &backends(v1.local_addr(), v2.local_addr()),
    );
    let edge = |extra: &str| {
        gateway(
            "istio-system",
            "edge",
            "istio: ingressgateway",
            &format!(
                "  - port: {{number: {edge_port}, name: http, protocol: HTTP}}\n    hosts: [\"production/shop.example.com\", \"*.wild.test\", \"./own.example.com\"]\n{extra}"
            ),
        )
    };
    write(&dir, "edge.yaml", &edge(""));
    write(
        &dir,
        "public.yaml",
        &gateway(
            "production",
            "public",
            "istio: ingressgateway",
            &format!(
                "  - port: {{number: {public_port}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n"
            ),
        ),
    );
    write(
        &dir,
        "other.yaml",
        &gateway(
            "production",
            "eastwest",
            "istio: eastwestgateway",
            &format!(
                "  - port: {{number: {other_port}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n"
            ),
        ),
    );
    let settings = Settings {
        source: sluice_proxy::Source::Files(dir.clone()),
        workload: Workload {
            namespace: "istio-system".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
            cluster_domain: Default::default(),
        },
        ports: Ports {
            outbound: 0,
            inbound: 0,
            admin,
            health,
            metrics,
        },
        mode: listener::Mode::Gateway,
        ..support::settings()
    };
    let set_level: admin::SetLevel = Arc::new(|_: &str| Ok(()));
    tokio::spawn(sluice_proxy::run(settings, set_level, "info".into()));
    let edge_addr = SocketAddr::from(([127, 0, 0, 1], edge_port));
    let public_addr = SocketAddr::from(([127, 0, 0, 1], public_port));
    let redirect_addr = SocketAddr::from(([127, 0, 0, 1], redirect_port));
    wait_listening(edge_addr).await;

    // Host filtering and binding.
    let r = get(edge_addr, "shop.example.com", "/a", &[]).await;
    assert_eq!((r.status, r.app()), (200, "myapp-v1"), "{}", r.text());
    let seen = r.seen();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-request-id"].len(), 36, "an id is made");
    let r = get(
        edge_addr,
        "shop.example.com:80",
        "/",
        &[
            ("x-gray", "on"),
            ("x-request-id", "mine"),
            ("x-forwarded-for", "198.51.100.9"),
        ],
    )
    .await;
    assert_eq!(r.app(), "myapp-v2");
    let seen = r.seen();
    assert_eq!(seen.headers["x-request-id"], "mine", "a given id is kept");
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.9, 127.0.0.1");
    // A failure answered to an outside caller names no service, subset or address.
    let r = get(edge_addr, "shop.example.com", "/", &[("x-gray", "v3")]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    for internal in ["myapp", "svc", "v3", "127.0.0.1"] {
        assert!(!r.text().contains(internal), "{internal} in {:?}", r.text());
    }
    assert_eq!(
        get(edge_addr, "a.wild.test", "/", &[]).await.app(),
        "myapp-v1"
    );
    // The edge enforces the client limits too (the shared accept loop and server): more
    // headers than the default 100 are refused with 431 before any routing.
    let many: Vec<(String, String)> = (0..120).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        get(edge_addr, "shop.example.com", "/", &many).await.status,
        431
    );
    for host in ["unknown.test", "own.example.com", "b.wild.test"] {
        let r = get(edge_addr, host, "/", &[]).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "no route for this host\n"),
            "{host}"
        );
    }
    // The same VirtualService through its second Gateway (a `*` server in its namespace).
    assert_eq!(
        get(public_addr, "shop.example.com", "/", &[]).await.app(),
        "myapp-v1"
    );
    assert_eq!(get(public_addr, "nothing.test", "/", &[]).await.status, 404);
    // HTTP/2 with prior knowledge on a plain-text port.
    let mut conn = h2(edge_addr).await;
    let r = h2_get(&mut conn, "http://shop.example.com/h2", &[("x-gray", "on")]).await;
    assert_eq!(
        (r.status, r.app()),
        (200, "myapp-v2"),
        "over HTTP/2 from the client"
    );
    // A Gateway that selects other labels opens nothing.
    assert!(refused(SocketAddr::from(([127, 0, 0, 1], other_port))).await);

    // A server added live: an httpsRedirect port opens.
    let redirect = format!(
        "  - port: {{number: {redirect_port}, name: http-redirect, protocol: HTTP}}\n    hosts: [\"*\"]\n    tls: {{httpsRedirect: true}}\n"
    );
    write(&dir, "edge.yaml", &edge(&redirect));
    wait_listening(redirect_addr).await;
    let r = get(redirect_addr, "shop.example.com", "/p?q=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "https://shop.example.com/p?q=1");

    // A bad change is rejected: everything keeps serving.
    write(
        &dir,
        "public.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: production}\nspec:\n  servers: [{port: {number: 99999, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n",
    );
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], admin));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !get(admin_addr, "localhost", "/config_dump", &[])
        .await
        .text()
        .contains("99999")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bad change was never rejected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(public_addr, "shop.example.com", "/", &[]).await.app(),
        "myapp-v1"
    );
    assert_eq!(get(redirect_addr, "x.test", "/", &[]).await.status, 301);

    // The Gateway removed: its port closes, the others stay.
    std::fs::remove_file(dir.join("public.yaml")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !refused(public_addr).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {public_port} never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(edge_addr, "shop.example.com", "/", &[]).await.app(),
        "myapp-v1"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits (bounded) until `addr` accepts connections.
async fn wait_listening(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while refused(addr).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
