//! Inbound capture in tproxy mode end to end: sluice-init `--mode tproxy` (mangle TPROXY and
//! its policy route) in the meshed pod, sluice-proxy `--mode tproxy` as uid 1337 with
//! CAP_NET_ADMIN, and real clients in another pod. HTTP reaches apps on the pod IP, on
//! loopback and on IPv6; opaque TCP is spliced; both are counted as inbound; the pod calling
//! itself through a service still works. The apps here answer with the address they see the
//! connection come from: the caller's own, except for an app on loopback only, and never
//! another caller's (the proxy pools its connections to the app per client).

mod proxy_support;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use proxy_support::*;
use sluice_e2e::Node;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const MESH: &str = "apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: ALLOW_ANY}\n---\n";

/// An HTTP/1.1 and HTTP/2 (prior knowledge) app answering every request with `x-app: NAME`
/// and, as the body, the address the connection came from.
fn serve_peer_http(listener: TcpListener, name: &'static str) {
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let answer = service_fn(move |_| async move {
                let body = Full::new(Bytes::from(peer.to_string()));
                hyper::Response::builder().header("x-app", name).body(body)
            });
            tokio::spawn(async move {
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), answer)
                    .await
            });
        }
    });
}

/// A TCP app that reads until the client half-closes, then answers with the address the
/// connection came from, a newline, and what it read.
fn serve_peer_echo(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let mut read = Vec::new();
                stream.read_to_end(&mut read).await?;
                stream.write_all(format!("{peer}\n").as_bytes()).await?;
                stream.write_all(&read).await?;
                stream.shutdown().await
            });
        }
    });
}

/// The client address an app reported: the body of [`serve_peer_http`]'s answer.
fn peer_ip(reply: &CurlReply) -> anyhow::Result<IpAddr> {
    let peer: SocketAddr = reply
        .body
        .parse()
        .with_context(|| format!("no peer address in {reply:?}"))?;
    Ok(peer.ip())
}

/// The sum of the samples of `name` whose labels include all of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.rsplit_once("} "))
        .filter(|(set, _)| {
            labels
                .iter()
                .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

#[test]
fn tproxy_inbound_http_reaches_apps_on_the_pod_ip_loopback_and_ipv6_and_is_counted()
-> anyhow::Result<()> {
    let node = Node::new("proxy_tproxy_http")?;
    let loopback_ports = ["--app-loopback-ports", "9090"];
    let mesh = Mesh::start_captured(&node, MESH, &loopback_ports, &[], Capture::Tproxy)?;
    let (pod_v4, pod_v6) = (mesh.client.ipv4, mesh.client.ipv6);
    mesh.run(async move {
        serve_peer_http(TcpListener::bind((pod_v4, 9091)).await?, "on-pod-ip");
        serve_peer_http(TcpListener::bind("127.0.0.1:9090").await?, "on-loopback");
        serve_peer_http(TcpListener::bind("127.0.0.1:9093").await?, "private");
        serve_peer_http(TcpListener::bind("[::]:9092").await?, "on-ipv6");
        anyhow::Ok(())
    })?;
    let caller = node.pod("caller")?;

    let pod_ip = curl(&caller, &format!("http://{pod_v4}:9091/in"), &[])?;
    assert_eq!((pod_ip.status, pod_ip.app.as_str()), (200, "on-pod-ip"));
    let loopback = curl(&caller, &format!("http://{pod_v4}:9090/in"), &[])?;
    assert_eq!(
        (loopback.status, loopback.app.as_str()),
        (200, "on-loopback")
    );
    let ipv6 = curl(&caller, &format!("http://[{pod_v6}]:9092/in"), &[])?;
    assert_eq!((ipv6.status, ipv6.app.as_str()), (200, "on-ipv6"));
    // Loopback only and not named in --app-loopback-ports: not reachable from the network.
    let private = curl(&caller, &format!("http://{pod_v4}:9093/in"), &[])?;
    assert_eq!((private.status, private.app.as_str()), (503, ""));

    // The proxy connects to the app from the caller's address, over IPv4 and IPv6; an app on
    // loopback only cannot be reached from it and sees 127.0.0.1.
    assert_eq!(peer_ip(&pod_ip)?, IpAddr::from(caller.ipv4));
    assert_eq!(peer_ip(&loopback)?, IpAddr::from(Ipv4Addr::LOCALHOST));
    assert_eq!(peer_ip(&ipv6)?, IpAddr::from(caller.ipv6));

    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    for port in [9090, 9091, 9092] {
        let service = format!("client:{port}");
        let labels = [
            ("direction", "inbound"),
            ("destination_service", service.as_str()),
            ("response_code", "200"),
        ];
        assert_eq!(
            metric(&metrics, "sluice_requests_total", &labels),
            1.0,
            "{service}: {metrics}"
        );
    }
    Ok(())
}

#[test]
fn tproxy_inbound_opaque_tcp_is_spliced_with_half_close_and_counted() -> anyhow::Result<()> {
    let node = Node::new("proxy_tproxy_tcp")?;
    let mesh = Mesh::start_captured(&node, MESH, &[], &[], Capture::Tproxy)?;
    let pod_v4 = mesh.client.ipv4;
    mesh.run(async move {
        serve_peer_echo(TcpListener::bind((pod_v4, 9000)).await?);
        anyhow::Ok(())
    })?;
    let caller = node.pod("caller")?;
    // Not HTTP nor TLS: opaque once the client half-closes.
    let payload = b"\x00\x01opaque bytes\xff".to_vec();
    let sent = payload.clone();
    let answer = caller.run(move || -> anyhow::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&SocketAddr::from((pod_v4, 9000)), TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.write_all(&sent)?;
        stream.shutdown(Shutdown::Write)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    })?;
    let newline = answer
        .iter()
        .position(|&b| b == b'\n')
        .with_context(|| format!("no peer line in {answer:?}"))?;
    let peer: SocketAddr = std::str::from_utf8(&answer[..newline])?.parse()?;
    assert_eq!(&answer[newline + 1..], &payload[..], "the bytes came back");
    // As for HTTP: the app sees the caller's address.
    assert_eq!(peer.ip(), IpAddr::from(caller.ipv4));

    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    let labels = [
        ("direction", "inbound"),
        ("destination_service", "client:9000"),
    ];
    assert_eq!(
        metric(&metrics, "sluice_tcp_connections_closed_total", &labels),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "sluice_tcp_sent_bytes_total", &labels),
        payload.len() as f64,
        "{metrics}"
    );
    Ok(())
}

#[test]
fn tproxy_inbound_http_connections_to_the_app_serve_one_client_each() -> anyhow::Result<()> {
    let node = Node::new("proxy_tproxy_clients")?;
    let mesh = Mesh::start_captured(&node, MESH, &[], &[], Capture::Tproxy)?;
    let pod_v4 = mesh.client.ipv4;
    mesh.run(async move {
        serve_peer_http(TcpListener::bind((pod_v4, 9094)).await?, "shared");
        anyhow::Ok(())
    })?;
    let (first, second) = (node.pod("first")?, node.pod("second")?);
    let url = format!("http://{pod_v4}:9094/who");
    // The proxy keeps its connections to the app for the next requests. Over HTTP/2 one
    // connection carries all the requests to an app: were the pool shared between clients,
    // the second caller's request would ride the first caller's connection. (Over HTTP/1.1 a
    // request mostly rides the connection made while detecting its protocol, so it shows less.)
    let h2: &[&str] = &["--http2-prior-knowledge"];
    let calls = [
        (&first, &[][..]),
        (&second, &[][..]),
        (&first, h2),
        (&second, h2),
        (&first, h2),
    ];
    for (caller, extra) in calls {
        let reply = curl(caller, &url, extra)?;
        assert_eq!((reply.status, reply.app.as_str()), (200, "shared"));
        assert_eq!(
            peer_ip(&reply)?,
            IpAddr::from(caller.ipv4),
            "{} was seen as another caller ({extra:?}); proxy log:\n{}",
            caller.name,
            mesh.proxy.stderr()
        );
    }
    Ok(())
}

#[test]
fn tproxy_pod_calling_its_own_service_reaches_its_app() -> anyhow::Result<()> {
    let node = Node::new("proxy_tproxy_self")?;
    let mesh = Mesh::start_captured(&node, MESH, &[], &[], Capture::Tproxy)?;
    let pod_v4 = mesh.client.ipv4;
    mesh.run(async move {
        serve_peer_http(TcpListener::bind((pod_v4, 9093)).await?, "itself");
        anyhow::Ok(())
    })?;
    // The proxy's outbound leg to its own pod IP is NAT-redirected to its inbound port (not
    // TPROXYed), so the inbound side must find that connection's destination too.
    let vip = Ipv4Addr::new(10, 96, 0, 40);
    let own = service_entry("own", vip, "http", 9093, &[(pod_v4.into(), "v1")]);
    mesh.reconfigure(&format!("{MESH}{own}"))?;
    let reply = mesh.curl(&format!("http://{vip}/self"), &[])?;
    assert_eq!(
        (reply.status, reply.app.as_str()),
        (200, "itself"),
        "{reply:?}\n{}",
        mesh.proxy.stderr()
    );
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    for direction in ["outbound", "inbound"] {
        let labels = [("direction", direction), ("response_code", "200")];
        assert_eq!(
            metric(&metrics, "sluice_requests_total", &labels),
            1.0,
            "{direction}: {metrics}"
        );
    }
    Ok(())
}
