//! The operator's endpoints through real sockets: readiness turns 503 when
//! draining starts, and `POST /quitquitquit` on the admin port drains the
//! whole proxy and makes `run` return.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sluice_api::model::{Model, Workload};
use sluice_proxy::config::Store;
use sluice_proxy::metrics::Metrics;
use sluice_proxy::{Ports, Settings, admin, drain};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request; `None` when nothing answers.
async fn call(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Waits (bounded) until `path` on `addr` answers `status`.
async fn until_status(addr: SocketAddr, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = call(addr, "GET", path).await;
        if let Some((s, body)) = &got
            && *s == status
        {
            return body.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}; last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readiness_turns_503_when_draining_starts() {
    let metrics = Metrics::new(false);
    let model = Model::compile(&[], &Workload::default());
    let store = Arc::new(Store::with_model(model, metrics.config.clone()));
    let (signal, watch) = drain::channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(admin::serve_health(
        listener,
        store,
        signal.observe(),
        Default::default(),
    ));
    assert_eq!(
        call(addr, "GET", "/healthz/ready").await,
        Some((200, "ready\n".into()))
    );
    // An in-flight connection holds the drain open while readiness is asked.
    let draining = tokio::spawn(signal.drain(Duration::from_secs(10)));
    assert_eq!(
        until_status(addr, "/healthz/ready", 503).await,
        "draining\n"
    );
    drop(watch);
    assert!(draining.await.unwrap(), "drained once the connection ended");
}

#[tokio::test]
async fn quitquitquit_drains_and_returns() {
    let dir = std::env::temp_dir().join(format!("sluice-proxy-quit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mesh.yaml"),
        "apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {}\n",
    )
    .unwrap();
    let [outbound, inbound, admin, health, metrics] = support::free_ports();
    let ports = Ports {
        outbound,
        inbound,
        admin,
        health,
        metrics,
    };
    let settings = Settings {
        source: sluice_proxy::Source::Files(dir.clone()),
        workload: Workload::default(),
        ports,
        ..support::settings()
    };
    let set_level: admin::SetLevel = Arc::new(|_: &str| Ok(()));
    let running = tokio::spawn(sluice_proxy::run(settings, set_level, "info".into()));
    let health = SocketAddr::from(([127, 0, 0, 1], ports.health));
    let admin = SocketAddr::from(([127, 0, 0, 1], ports.admin));
    until_status(health, "/healthz/ready", 200).await;

    assert_eq!(
        call(admin, "GET", "/quitquitquit").await.map(|r| r.0),
        Some(405),
        "only POST quits"
    );
    assert!(!running.is_finished());
    let (status, body) = call(admin, "POST", "/quitquitquit").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns after /quitquitquit")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
