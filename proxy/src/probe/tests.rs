use std::convert::Infallible;

use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::TcpListener;

use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn probes(value: serde_json::Value) -> AppProbes {
    AppProbes::parse(&value.to_string(), None).unwrap()
}

#[test]
fn parses_the_injected_format() {
    let all = probes(json!({
        "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTPS",
            "httpHeaders": [{"name": "X", "value": "1"}]}, "timeoutSeconds": 3},
        "/app-health/web/livez": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 1},
        "/app-health/web/startupz": {"grpc": {"port": 9000, "service": "health"}}
    }));
    assert_eq!(all.len(), 3);
    let ready = all.get("/app-health/web/readyz").unwrap();
    assert_eq!(ready.timeout, Duration::from_secs(3));
    let Action::Http(get) = &ready.action else {
        panic!("{ready:?}")
    };
    assert_eq!((get.path.as_deref(), get.port), (Some("/ready"), 8080));
    assert_eq!(get.http_headers[0].name, "X");
    assert_eq!(
        all.get("/app-health/web/livez").unwrap().action,
        Action::Tcp { port: 8080 }
    );
    let startup = all.get("/app-health/web/startupz").unwrap();
    assert_eq!(startup.timeout, DEFAULT_TIMEOUT, "kubelet's default");
    assert_eq!(
        startup.action,
        Action::Grpc {
            port: 9000,
            service: "health".into()
        }
    );
    assert!(AppProbes::parse("", None).unwrap().is_empty());
}

#[test]
fn bad_entries_are_errors() {
    let cases = [
        ("[]", "JSON object"),
        (r#"{"/a": {"timeoutSeconds": 1}}"#, "exactly one"),
        (
            r#"{"/a": {"tcpSocket": {"port": 1}, "grpc": {"port": 1}}}"#,
            "exactly one",
        ),
        (r#"{"/a": {"exec": {"command": ["x"]}}}"#, "JSON object"),
    ];
    for (text, want) in cases {
        let err = AppProbes::parse(text, None).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn grpc_messages() {
    assert_eq!(grpc::request(""), vec![0, 0, 0, 0, 0]);
    assert_eq!(
        grpc::request("ab"),
        vec![0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
    );
    let cases: [(&[u8], Option<u64>); 6] = [
        (&[0, 0, 0, 0, 2, 0x08, 1], Some(1)),
        (&[0, 0, 0, 0, 2, 0x08, 2], Some(2)),
        (&[0, 0, 0, 0, 0], Some(0)),
        (&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1], Some(1)),
        (&[1, 0, 0, 0, 2, 0x08, 1], None),
        (&[0, 0, 0, 0, 9, 0x08, 1], None),
    ];
    for (bytes, want) in cases {
        assert_eq!(grpc::serving_status(bytes), want, "{bytes:?}");
    }
}

/// An HTTP/1.1 app: `/ok` 200, `/redirect` 302, `/slow` after 5 s, anything else 500; echoes
/// the `x-probe` header's presence as the status 204.
async fn http_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let status = match req.uri().path() {
                        "/ok" if req.headers().contains_key("x-probe") => 204,
                        "/ok" => 200,
                        "/redirect" => 302,
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            200
                        }
                        _ => 500,
                    };
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"hi")));
                    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(resp)
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// A gRPC health server over h2c answering `status` for every service, or `grpc-status 5`
/// (NOT_FOUND) for the service `missing`.
async fn grpc_health(status: u8) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service =
                hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let missing = body.ends_with(b"missing");
                    let mut trailers = http::HeaderMap::new();
                    let code = if missing { "5" } else { "0" };
                    trailers.insert("grpc-status", code.parse().unwrap());
                    let message = if missing {
                        Bytes::new()
                    } else {
                        Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status])
                    };
                    let body = http_body_util::StreamBody::new(futures_util::stream::iter([
                        Ok::<_, Infallible>(hyper::body::Frame::data(message)),
                        Ok(hyper::body::Frame::trailers(trailers)),
                    ]));
                    let resp = Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn check(action: Action) -> Check {
    Check {
        action,
        timeout: Duration::from_millis(500),
    }
}

fn get(path: &str, port: u16, headers: &[(&str, &str)]) -> Action {
    Action::Http(HttpGet {
        path: Some(path.into()),
        port,
        http_headers: headers
            .iter()
            .map(|(n, v)| Header {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    })
}

async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn checks_through_real_sockets() {
    let http = http_app().await.port();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let serving = grpc_health(1).await.port();
    let not_serving = grpc_health(2).await.port();
    let closed = closed_port().await;
    let grpc = |port: u16, service: &str| Action::Grpc {
        port,
        service: service.into(),
    };
    let cases = [
        (get("/ok", http, &[]), Ok(())),
        (get("/redirect", http, &[]), Ok(())),
        (get("/ok", http, &[("X-Probe", "1")]), Ok(())),
        (get("/fail", http, &[]), Err("status 500")),
        (get("/slow", http, &[]), Err("timed out")),
        (get("/ok", closed, &[]), Err("refused")),
        (Action::Tcp { port: tcp_port }, Ok(())),
        (Action::Tcp { port: closed }, Err("refused")),
        (grpc(serving, ""), Ok(())),
        (grpc(serving, "health"), Ok(())),
        (grpc(not_serving, "health"), Err("NOT_SERVING")),
        (grpc(serving, "missing"), Err("grpc-status 5")),
        (grpc(closed, ""), Err("refused")),
    ];
    for (action, want) in cases {
        let what = format!("{action:?}");
        let got = check(action).run(LOOPBACK).await;
        match (want, got) {
            (Ok(()), Ok(())) => {}
            (Err(want), Err(got)) => assert!(got.contains(want), "{what}: {got}"),
            (want, got) => panic!("{what}: want {want:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn app_probes_run_by_path() {
    let http = http_app().await.port();
    let all = AppProbes::parse(
        &json!({
            "/app-health/web/readyz": {"httpGet": {"path": "/ok", "port": http}},
            "/app-health/web/livez": {"httpGet": {"path": "/fail", "port": http}},
        })
        .to_string(),
        Some(LOOPBACK),
    )
    .unwrap();
    assert_eq!(all.run("/app-health/web/readyz").await, Some(Ok(())));
    assert!(matches!(
        all.run("/app-health/web/livez").await,
        Some(Err(_))
    ));
    assert_eq!(all.run("/app-health/web/startupz").await, None);
}
