//! The discovery stream's wire format as any HTTP/2 client sees it: a plain hyper client
//! posts its hello, reads JSON lines, acks, and reads the status endpoints on the same
//! connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use sluice_api::load_str;
use sluice_control::discovery::origin;
use sluice_control::discovery::state::{self, ClusterConfig, Publisher, Rejection};
use sluice_control::discovery::stream::{self, Discovery};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  addresses: [10.96.0.20]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.44.0.2, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  exportTo: [b]
  http:
  - route: [{destination: {host: reviews.shop.svc.cluster.local}}]
---
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: sluice-system}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;

fn publish(publisher: &Publisher, version: u64, yaml: &str) {
    let set = load_str("cluster.yaml", yaml);
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    let resources = set
        .resources
        .into_iter()
        .map(|mut r| {
            r.origin = origin(r.spec.kind(), r.meta.namespace(), &r.meta.name);
            Arc::new(r)
        })
        .collect();
    publisher.send_replace(Arc::new(ClusterConfig {
        version,
        resources,
        rejected: vec![Rejection {
            object: "VirtualService shop/broken".into(),
            errors: vec!["spec.http[0]: no route".into()],
        }],
    }));
}

async fn serve() -> (std::net::SocketAddr, Publisher, Arc<Discovery>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (publisher, subscriber) = state::channel();
    let discovery = Discovery::new(subscriber);
    tokio::spawn(stream::serve(
        listener,
        discovery.clone(),
        None,
        std::future::pending(),
    ));
    (addr, publisher, discovery)
}

async fn connect(addr: std::net::SocketAddr) -> SendRequest<Body> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(sender: &mut SendRequest<Body>, path: &str) -> (u16, Value) {
    let req = hyper::Request::get(format!("http://control{path}"))
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Waits (bounded) until `GET /v1/proxies` satisfies `ok`; returns the list.
async fn until_proxies(sender: &mut SendRequest<Body>, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = get(sender, "/v1/proxies").await;
        if ok(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "never; last {list}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Opens the stream with `hello`; the sender for later lines and the response body.
async fn open(sender: &mut SendRequest<Body>, hello: Value) -> (mpsc::Sender<Bytes>, Lines) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok(Frame::data(line)), rx))
    });
    tx.send(Bytes::from(format!("{hello}\n"))).await.unwrap();
    let req = hyper::Request::post("http://control/v1/discovery")
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    (
        tx,
        Lines {
            body: resp.into_body(),
            buf: Vec::new(),
        },
    )
}

/// JSON lines of a response body.
struct Lines {
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Value {
        let read = async {
            loop {
                if let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=at).collect();
                    return serde_json::from_slice(&line).unwrap();
                }
                let frame = self.body.frame().await.expect("the stream ended").unwrap();
                if let Ok(data) = frame.into_data() {
                    self.buf.extend_from_slice(&data);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("no line within 10s")
    }
}

fn ids(list: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn full_state_then_deltas_as_json_lines_acks_in_the_status() {
    let (addr, publisher, discovery) = serve().await;
    let mut sender = connect(addr).await;
    assert_eq!(
        get(&mut sender, "/healthz/ready").await.0,
        503,
        "not synced"
    );
    publish(&publisher, 1, MESH);
    assert_eq!(get(&mut sender, "/healthz/ready").await.0, 200);
    assert_eq!(
        get(&mut sender, "/v1/rejected").await.1,
        json!([{"object": "VirtualService shop/broken", "errors": ["spec.http[0]: no route"]}])
    );

    let hello = json!({"namespace": "a", "podName": "web-a", "labels": {"app": "web"}, "podIp": "10.44.0.9", "serviceAccount": "web"});
    let (tx, mut lines) = open(&mut sender, hello).await;
    let full = lines.next().await;
    assert_eq!(full["version"], 1);
    assert_eq!(full["full"], true);
    assert_eq!(
        ids(&full["resources"]),
        [
            "kubernetes MeshConfig sluice-system/mesh",
            "kubernetes ServiceEntry shop/reviews"
        ],
        "the VirtualService exported to b only is not sent to a"
    );
    let entry = &full["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["doc"]["kind"] == "ServiceEntry")
        .unwrap()["doc"];
    assert_eq!(entry["apiVersion"], "networking.istio.io/v1");
    assert_eq!(
        entry["metadata"],
        json!({"name": "reviews", "namespace": "shop"})
    );
    assert_eq!(entry["spec"]["addresses"], json!(["10.96.0.20"]));

    tx.send(Bytes::from("{\"ack\":1}\n")).await.unwrap();
    let status = until_proxies(&mut sender, |list| list[0]["versionAcked"] == 1).await;
    let proxy = &status[0];
    assert_eq!(proxy["podName"], "web-a");
    assert_eq!(proxy["namespace"], "a");
    assert_eq!(proxy["labels"], json!({"app": "web"}));
    assert_eq!(proxy["podIp"], "10.44.0.9");
    assert_eq!(proxy["serviceAccount"], "web");
    assert_eq!(proxy["versionSent"], 1);
    assert!(proxy["connectedSince"].is_object(), "{proxy}");

    // Version 2 changes only what a does not see: nothing is sent. Version 3 changes the
    // ServiceEntry and drops the MeshConfig: a delta.
    publish(
        &publisher,
        2,
        &MESH.replace("exportTo: [b]", "exportTo: [b, c]"),
    );
    let changed = MESH
        .replace("10.96.0.20", "10.96.0.21")
        .split("---\napiVersion: sluice.dev")
        .next()
        .unwrap()
        .to_string();
    publish(&publisher, 3, &changed);
    let delta = lines.next().await;
    assert_eq!(delta["version"], 3, "{delta}");
    assert_eq!(delta["full"], false);
    assert_eq!(
        ids(&delta["upsert"]),
        ["kubernetes ServiceEntry shop/reviews"]
    );
    assert_eq!(
        delta["upsert"][0]["doc"]["spec"]["addresses"],
        json!(["10.96.0.21"])
    );
    assert_eq!(
        delta["remove"],
        json!(["kubernetes MeshConfig sluice-system/mesh"])
    );
    assert!(delta.get("order").is_none());

    tx.send(Bytes::from("{\"nack\":3,\"error\":\"cannot load\"}\n"))
        .await
        .unwrap();
    until_proxies(&mut sender, |list| {
        list[0]["lastNack"] == json!({"version": 3, "error": "cannot load"})
    })
    .await;
    let metrics = discovery.metrics().encode();
    for want in [
        "sluice_discovery_connected_proxies 1",
        "sluice_discovery_pushes_total{kind=\"full\"} 1",
        "sluice_discovery_pushes_total{kind=\"delta\"} 1",
        "sluice_discovery_nacks_total 1",
    ] {
        assert!(metrics.contains(want), "{want}: {metrics}");
    }

    drop(tx);
    drop(lines);
    until_proxies(&mut sender, |list| *list == json!([])).await;
}

#[tokio::test]
async fn a_stream_without_a_hello_is_refused_with_the_reason() {
    let (addr, _publisher, _discovery) = serve().await;
    let mut sender = connect(addr).await;
    let req = hyper::Request::post("http://control/v1/discovery")
        .body(Full::new(Bytes::from("{\"pod\":\"x\"}\n")).boxed())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("no hello") && text.contains("namespace"),
        "{text}"
    );
}
