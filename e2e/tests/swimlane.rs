//! Header propagation across hops (MeshConfig `headerPropagation`, seed 002-22): a client
//! sends `x-swimlane` to app `a` in a meshed pod; `a` calls `catalog` forwarding only
//! `x-request-id` (as many apps do); a's sidecar adds the swimlane to that call, so
//! catalog's VirtualService routes it to the gray lane (v2) and v2 sees the header. A call
//! that forwards no trace header cannot be correlated and stays on v1.

mod proxy_support;

use std::net::SocketAddr;

use anyhow::ensure;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proxy_support::*;
use sluice_e2e::{Node, eventually};

/// App `a` on `[::]:8080` of the meshed pod: each request becomes a GET to `next`
/// carrying only the request's `x-request-id` (none for a path under `/no-trace`); the
/// answer is the next hop's `x-app` header.
async fn relay(next: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("::", 8080)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| async move {
                let mut call = Request::get(format!("http://catalog{}", req.uri().path()));
                if !req.uri().path().starts_with("/no-trace")
                    && let Some(id) = req.headers().get("x-request-id")
                {
                    call = call.header("x-request-id", id);
                }
                let call = call.body(Empty::<Bytes>::new())?;
                let io = TokioIo::new(tokio::net::TcpStream::connect(next).await?);
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                let resp = sender.send_request(call).await?;
                let app = resp.headers().get("x-app").cloned();
                resp.into_body().collect().await?;
                let mut answer = Response::new(http_body_util::Full::new(Bytes::new()));
                if let Some(app) = app {
                    answer.headers_mut().insert("x-app", app);
                }
                anyhow::Ok(answer)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[test]
fn a_swimlane_header_reaches_the_third_hop_through_an_app_that_forwards_only_x_request_id()
-> anyhow::Result<()> {
    let node = Node::new("swimlane")?;
    let v1 = http_app(&node, "catalog-v1", "catalog", "v1", 8080)?;
    let v2 = http_app(&node, "catalog-v2", "catalog", "v2", 8080)?;
    let edge = node.pod("edge")?;
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {{name: catalog}}\nspec:\n  hosts: [catalog]\n  http:\n  - match: [{{headers: {{x-swimlane: {{exact: gray}}}}}}]\n    route: [{{destination: {{host: catalog, subset: v2}}}}]\n  - route: [{{destination: {{host: catalog, subset: v1}}}}]\n---\napiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  headerPropagation: {{headers: [x-swimlane, baggage], ttl: 10s}}\n",
        service_entry(
            "catalog",
            CATALOG_VIP,
            "http",
            8080,
            &[(v1.pod.ipv4.into(), "v1"), (v2.pod.ipv4.into(), "v2")]
        ),
        destination_rule("catalog", &[("v1", "v1"), ("v2", "v2")]),
    );
    let mesh = Mesh::start(&node, &yaml, &[])?;
    let _relay = mesh
        .runtime
        .spawn(relay(SocketAddr::from((CATALOG_VIP, 80))));
    let a = format!("http://{}:8080", mesh.client.ipv4);
    let get = |path: &str, headers: &[&str]| -> anyhow::Result<String> {
        let mut args = Vec::new();
        for h in headers {
            args.extend(["-H", *h]);
        }
        let reply = curl(&edge, &format!("{a}{path}"), &args)?;
        ensure!(reply.status == 200, "{reply:?}");
        Ok(reply.app)
    };
    eventually("app a to answer through its sidecar", TIMEOUT, || {
        get("/", &[]).map(|_| ())
    })?;

    assert_eq!(get("/plain", &["x-request-id: r-plain"])?, "catalog-v1");
    let lane = [
        "x-swimlane: gray",
        "baggage: lane=gray",
        "x-request-id: r-gray-1",
    ];
    assert_eq!(
        get("/gray", &lane)?,
        "catalog-v2",
        "the swimlane arrived at hop 3"
    );
    let seen = v2.seen();
    let last = seen.last().expect("v2 saw the request");
    assert_eq!(last.headers["x-swimlane"], "gray");
    assert_eq!(last.headers["baggage"], "lane=gray");
    assert_eq!(last.headers["x-request-id"], "r-gray-1");
    // A W3C trace context correlates too.
    let traced = [
        "x-swimlane: gray",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    assert_eq!(
        get("/no-trace", &traced)?,
        "catalog-v1",
        "an app forwarding no trace header cannot be correlated"
    );
    assert_eq!(
        get("/gray-again", &["x-request-id: r-other"])?,
        "catalog-v1",
        "another request id gets nothing"
    );
    Ok(())
}
