//! gRPC end to end: a tonic client in the meshed pod calls a gRPC app behind
//! a VIP through sluice-proxy; the status, carried in HTTP/2 trailers, and
//! error statuses reach the client unchanged; routing applies per call.

mod proxy_support;

use proxy_support::*;
use sluice_e2e::Node;
use sluice_e2e::apps::{self, AppId, grpc};

#[test]
fn grpc_calls_keep_their_trailers_and_follow_the_routes() -> anyhow::Result<()> {
    let node = Node::new("proxy_grpc")?;
    let mut pods = Vec::new();
    for version in ["v1", "v2"] {
        let pod = node.pod(version)?;
        let rt = pod.runtime()?;
        let server = rt.block_on(rt.spawn(async move {
            apps::serve_grpc(
                tokio::net::TcpListener::bind("0.0.0.0:50051").await?,
                AppId::new("echo", version),
            )
        }))??;
        pods.push((pod, rt, server));
    }
    let (v1, v2) = (pods[0].0.ipv4, pods[1].0.ipv4);
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo}}
spec:
  hosts: [echo]
  addresses: [10.96.0.40]
  ports: [{{number: 50051, name: grpc}}, {{number: 50052, name: undeclared, targetPort: 50051}}]
  resolution: STATIC
  endpoints:
  - {{address: {v1}, labels: {{version: v1}}}}
  - {{address: {v2}, labels: {{version: v2}}}}
---
{}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo}}
spec:
  hosts: [echo]
  http:
  - match: [{{uri: {{prefix: /sluice.e2e.Echo/}}, headers: {{x-canary: {{exact: "yes"}}}}}}]
    route: [{{destination: {{host: echo, subset: v2}}}}]
  - route:
    - {{destination: {{host: echo, subset: v1}}, weight: 50}}
    - {{destination: {{host: echo, subset: v2}}, weight: 50}}
"#,
        destination_rule("echo", &[("v1", "v1"), ("v2", "v2")])
    );
    let mesh = Mesh::start(&node, &yaml, &[])?;
    for url in ["http://10.96.0.40:50051", "http://10.96.0.40:50052"] {
        let answers = mesh.run(async move {
            let mut answers = Vec::new();
            for i in 0..4 {
                let reply = grpc::say(url, format!("hello {i}").as_bytes()).await?;
                answers.push(String::from_utf8(reply)?);
            }
            anyhow::Ok(answers)
        })?;
        let on_v2 = answers
            .iter()
            .filter(|a| a.starts_with("echo-v2: "))
            .count();
        assert_eq!(on_v2, 2, "{url}: 50/50 per call: {answers:?}");
        assert!(
            answers
                .iter()
                .any(|a| a == "echo-v1: hello 0" || a == "echo-v2: hello 0"),
            "{answers:?}"
        );

        let failed = mesh.run(async move { grpc::say(url, b"fail please").await });
        let status = failed.expect_err("the app fails the call");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{url}: {status:?}");
        assert!(
            status.message().contains("asked to fail"),
            "{url}: {status:?}"
        );
    }
    Ok(())
}
