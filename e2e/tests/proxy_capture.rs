//! Capture end to end: unknown destinations under REGISTRY_ONLY and
//! ALLOW_ANY, opaque TCP with half-close, a server-first protocol on an
//! undeclared port without delay, inbound to apps on loopback and on the pod
//! IP, a DestinationRule's TCP keepalive and idle timeout, and draining on
//! SIGTERM or `POST /quitquitquit`, and running out of file descriptors.

mod proxy_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::ensure;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proxy_support::*;
use sluice_e2e::apps::{self, AppId, banner};
use sluice_e2e::{Node, eventually};

fn mesh_config(mode: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  outboundTrafficPolicy: {{mode: {mode}}}\n  protocolDetectionTimeout: 2s\n---\n"
    )
}

#[test]
fn registry_only_refuses_unknown_destinations_and_allow_any_lets_them_through() -> anyhow::Result<()>
{
    let node = Node::new("proxy_registry_only")?;
    let outside = http_app(&node, "outside", "outside", "v1", 8080)?;
    let echo_rt = outside.pod.runtime()?;
    let _echo = echo_rt.block_on(echo_rt.spawn(async {
        apps::serve_tcp_echo(tokio::net::TcpListener::bind("0.0.0.0:9000").await?)
    }))??;
    let mesh = Mesh::start(&node, &mesh_config("REGISTRY_ONLY"), &[])?;
    let url = format!("http://{}:8080/", outside.pod.ipv4);
    let tcp = SocketAddr::from((outside.pod.ipv4, 9000));

    let refused = mesh.curl(&url, &[])?;
    assert_eq!(refused.status, 502);
    assert!(
        refused.body.contains("REGISTRY_ONLY")
            && refused.body.contains(&outside.pod.ipv4.to_string()),
        "{}",
        refused.body
    );
    let echoed = mesh.client.run(move || echo_once(tcp, b"\x00\x01opaque"));
    assert!(
        echoed.is_err() || echoed.as_ref().is_ok_and(Vec::is_empty),
        "TCP is closed: {echoed:?}"
    );
    assert!(outside.seen().is_empty());
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(
        metrics.contains(r#"sluice_unknown_destination_refused_total{protocol="http"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sluice_unknown_destination_refused_total{protocol="tcp"} 1"#),
        "{metrics}"
    );

    mesh.reconfigure(&mesh_config("ALLOW_ANY"))?;
    let reply = mesh.curl(&url, &[])?;
    assert_eq!((reply.status, reply.app.as_str()), (200, "outside-v1"));
    // Over IPv6 too: the [::] listener and IP6T_SO_ORIGINAL_DST.
    let reply = mesh.curl(&format!("http://[{}]:8080/v6", outside.pod.ipv6), &[])?;
    assert_eq!((reply.status, reply.app.as_str()), (200, "outside-v1"));
    assert_eq!(
        mesh.client.run(move || echo_once(tcp, b"\x00\x01opaque"))?,
        b"\x00\x01opaque"
    );
    Ok(())
}

/// Sends `payload`, half-closes, returns what came back.
fn echo_once(addr: SocketAddr, payload: &'static [u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(payload)?;
    stream.shutdown(Shutdown::Write)?;
    let mut back = Vec::new();
    stream.read_to_end(&mut back)?;
    Ok(back)
}

#[test]
fn opaque_tcp_and_a_server_first_protocol_pass_without_added_delay() -> anyhow::Result<()> {
    let node = Node::new("proxy_tcp")?;
    let server = node.pod("server")?;
    let rt = server.runtime()?;
    let (_echo, _banner) = rt.block_on(rt.spawn(async {
        let echo = apps::serve_tcp_echo(tokio::net::TcpListener::bind("0.0.0.0:9000").await?)?;
        let banner =
            apps::serve_banner(tokio::net::TcpListener::bind("0.0.0.0:2525").await?, "mx")?;
        anyhow::Ok((echo, banner))
    }))??;
    let yaml = format!(
        "{}apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: backend}}\nspec:\n  hosts: [backend]\n  addresses: [10.96.0.20]\n  ports: [{{number: 9000, name: tcp-echo}}, {{number: 25, name: mail}}]\n  resolution: STATIC\n  endpoints: [{{address: {}, ports: {{mail: 2525}}}}]\n",
        mesh_config("REGISTRY_ONLY"),
        server.ipv4
    );
    let mesh = Mesh::start(&node, &yaml, &[])?;

    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let echoed = mesh.client.run(move || -> anyhow::Result<Vec<u8>> {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::from(([10, 96, 0, 20], 9000)), TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let writing = std::thread::spawn(move || -> std::io::Result<()> {
            writer.write_all(&sent)?;
            writer.shutdown(Shutdown::Write)
        });
        let mut back = Vec::new();
        stream.read_to_end(&mut back)?;
        writing.join().expect("writer")?;
        Ok(back)
    })?;
    assert!(
        echoed == payload,
        "echoed {} of {} bytes",
        echoed.len(),
        payload.len()
    );

    // Port 25 is declared as `mail`: no protocol, so detected; the detection
    // timeout is 2s, and the banner must not wait for it.
    let (greeting, waited, reply) =
        mesh.client
            .run(|| -> anyhow::Result<(String, Duration, String)> {
                let started = Instant::now();
                let stream =
                    TcpStream::connect_timeout(&SocketAddr::from(([10, 96, 0, 20], 25)), TIMEOUT)?;
                stream.set_read_timeout(Some(TIMEOUT))?;
                let mut lines = BufReader::new(stream.try_clone()?);
                let mut greeting = String::new();
                lines.read_line(&mut greeting)?;
                let waited = started.elapsed();
                (&stream).write_all(b"EHLO client\r\n")?;
                let mut reply = String::new();
                lines.read_line(&mut reply)?;
                Ok((greeting, waited, reply))
            })?;
    assert_eq!(greeting, banner::greeting("mx"));
    assert_eq!(reply, "mx: EHLO client\r\n");
    assert!(
        waited < Duration::from_millis(300),
        "the banner took {waited:?} (detection timeout 2s)"
    );
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(metrics.contains(r#"sluice_tcp_connections_closed_total{direction="outbound",destination_service="backend.default.svc.cluster.local"} 2"#), "{metrics}");
    Ok(())
}

#[test]
fn a_destination_rules_tcp_keepalive_and_idle_timeout_apply_to_tcp_connections()
-> anyhow::Result<()> {
    let node = Node::new("proxy_keepalive")?;
    let server = node.pod("server")?;
    let rt = server.runtime()?;
    let _echo = rt.block_on(rt.spawn(async {
        apps::serve_tcp_echo(tokio::net::TcpListener::bind("0.0.0.0:9000").await?)
    }))??;
    let yaml = format!(
        "{}apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: backend}}\nspec:\n  hosts: [backend]\n  addresses: [10.96.0.20]\n  ports: [{{number: 9000, name: tcp-echo}}]\n  resolution: STATIC\n  endpoints: [{{address: {}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: backend}}\nspec:\n  host: backend\n  trafficPolicy:\n    connectionPool:\n      tcp:\n        tcpKeepalive: {{time: 7s, interval: 3s, probes: 4}}\n        idleTimeout: 1s\n",
        mesh_config("REGISTRY_ONLY"),
        server.ipv4
    );
    let mesh = Mesh::start(&node, &yaml, &[])?;
    let upstream = format!("{}:9000", server.ipv4);
    // While the client's connection is open, the proxy's own connection to
    // the endpoint (in the client pod) shows its keepalive timer.
    let (sockets, idle) = mesh
        .client
        .run(move || -> anyhow::Result<(String, Duration)> {
            let mut stream =
                TcpStream::connect_timeout(&SocketAddr::from(([10, 96, 0, 20], 9000)), TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.write_all(b"ping")?;
            let mut back = [0; 4];
            stream.read_exact(&mut back)?;
            let ss = std::process::Command::new("ss")
                .args(["-tnoH", "state", "established", "dst", &upstream])
                .output()?;
            // Then nothing moves: the proxy closes the connection after 1 s.
            let quiet = Instant::now();
            let read = stream.read(&mut back)?;
            ensure!(read == 0, "read {read} bytes from an idle connection");
            Ok((
                String::from_utf8_lossy(&ss.stdout).into_owned(),
                quiet.elapsed(),
            ))
        })?;
    ensure!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(5),
        "the idle connection was closed after {idle:?}, not after the rule's 1 s"
    );
    // ss prints the time left as `7sec`, `6.996ms` (6 s 996 ms), `996ms` or
    // `119min`: it must be at most the rule's 7 s, not the kernel's 2 hours.
    let timer = sockets
        .split("timer:(keepalive,")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    let left = match (timer.strip_suffix("sec"), timer.strip_suffix("ms")) {
        (Some(secs), _) => secs.parse::<f64>().ok(),
        (_, Some(ms)) if ms.contains('.') => ms.parse::<f64>().ok(),
        (_, Some(ms)) => ms.parse::<f64>().ok().map(|ms| ms / 1000.0),
        _ => None,
    };
    ensure!(
        matches!(left, Some(s) if s <= 7.0),
        "no 7 s keepalive timer on the upstream connection: {sockets:?}"
    );
    Ok(())
}

#[test]
fn inbound_reaches_the_pod_ip_and_loopback_only_on_the_ports_asked_for() -> anyhow::Result<()> {
    let node = Node::new("proxy_inbound")?;
    let mesh = Mesh::start(
        &node,
        &mesh_config("ALLOW_ANY"),
        &["--app-loopback-ports", "9090"],
    )?;
    let pod_ip = mesh.client.ipv4;
    let _apps = mesh.run(async move {
        let lo = apps::serve_http(
            tokio::net::TcpListener::bind("127.0.0.1:9090").await?,
            AppId::new("local", "lo"),
        )?;
        let pod = apps::serve_http(
            tokio::net::TcpListener::bind((pod_ip, 9091)).await?,
            AppId::new("local", "pod"),
        )?;
        // Bound to loopback only and not named: not reachable from the network.
        let private = apps::serve_http(
            tokio::net::TcpListener::bind("127.0.0.1:9092").await?,
            AppId::new("local", "private"),
        )?;
        anyhow::Ok((lo, pod, private))
    })?;
    let caller = node.pod("caller")?;
    let curl = |port: u16| -> anyhow::Result<String> {
        let out = caller
            .command("curl")
            .args(["-s", "-i", "--max-time", "10"])
            .arg(format!("http://{pod_ip}:{port}/in"))
            .output()?;
        let text = String::from_utf8(out.stdout)?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("x-app: "))
            .unwrap_or("")
            .trim()
            .to_string())
    };
    assert_eq!(curl(9090)?, "local-lo");
    assert_eq!(curl(9091)?, "local-pod");
    assert_eq!(
        curl(9092)?,
        "",
        "an app on loopback only was reached from the network"
    );
    let (_, metrics) = mesh.curl_local(15090, "/metrics")?;
    assert!(metrics.contains(r#"sluice_requests_total{direction="inbound",source_workload="unknown",source_namespace="unknown",destination_service="client:9090""#), "{metrics}");
    Ok(())
}

/// Starts a meshed client with one request in flight to an app that answers after
/// `delay_ms`, stops the proxy with `stop`, and checks that it exits 0 after the request
/// finished with 200. Returns what the proxy logged.
fn stop_with_a_request_in_flight(
    test: &str,
    delay_ms: u32,
    stop: impl FnOnce(&Mesh) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let node = Node::new(test)?;
    let app = http_app(&node, "app", "slow", "v1", 8080)?;
    let yaml = service_entry(
        "slow",
        Ipv4Addr::new(10, 96, 0, 30),
        "http",
        8080,
        &[(app.pod.ipv4.into(), "v1")],
    );
    let mut mesh = Mesh::start(&node, &yaml, &["--drain-timeout", "10s"])?;
    drain_with_a_request_in_flight(&mut mesh, &app, "http://10.96.0.30/slow", delay_ms, stop)
}

/// Sends GET `url` (path `/slow`), which `app` answers after `delay_ms`; once the app has it,
/// stops the proxy with `stop`, and checks that the proxy exits 0 after the request finished
/// with 200. Returns what the proxy logged.
fn drain_with_a_request_in_flight(
    mesh: &mut Mesh,
    app: &App,
    url: &str,
    delay_ms: u32,
    stop: impl FnOnce(&Mesh) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut slow = mesh.client.command("curl");
    slow.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "20",
        "-H",
    ])
    .arg(format!("x-echo-delay-ms: {delay_ms}"))
    .arg(url);
    let slow = mesh.client.spawn(slow)?;
    eventually("the app to get the slow request", TIMEOUT, || {
        ensure!(app.seen().iter().any(|s| s.uri == "/slow"), "not yet");
        Ok(())
    })?;
    stop(mesh)?;
    let status = eventually("the proxy to exit", TIMEOUT, || {
        mesh.proxy
            .try_status()?
            .ok_or_else(|| anyhow::anyhow!("running"))
    })?;
    assert!(
        status.success(),
        "exit status {status}: {}",
        mesh.proxy.stderr()
    );
    let out = slow.kill()?;
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "200",
        "the in-flight request finished"
    );
    Ok(mesh.proxy.stderr())
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() -> anyhow::Result<()> {
    let log = stop_with_a_request_in_flight("proxy_drain", 1500, |mesh| {
        kill(Pid::from_raw(mesh.proxy.pid() as i32), Signal::SIGTERM)?;
        Ok(())
    })?;
    assert!(log.contains("drained"), "{log}");
    Ok(())
}

#[test]
fn quitquitquit_turns_readiness_off_drains_and_exits_0() -> anyhow::Result<()> {
    stop_with_a_request_in_flight("proxy_quit", 2000, |mesh| {
        let quit = mesh
            .client
            .command("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "--max-time",
                "5",
                "-X",
                "POST",
            ])
            .arg("http://127.0.0.1:15000/quitquitquit")
            .output()?;
        let quit = String::from_utf8(quit.stdout)?;
        assert!(quit.ends_with("\n200"), "{quit}");
        // The slow request holds the drain open: readiness says so meanwhile.
        let (status, body) = mesh.curl_local(15021, "/healthz/ready")?;
        assert_eq!((status, body.as_str()), (503, "draining\n"));
        Ok(())
    })?;
    Ok(())
}

#[test]
fn service_entries_resolved_by_dns_and_passed_through_with_none() -> anyhow::Result<()> {
    let node = Node::new("proxy_resolution")?;
    let ext = http_app(&node, "ext", "external", "v1", 8080)?;
    let yaml = format!(
        r#"{}apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api}}
spec:
  hosts: [api.external.test]
  addresses: [10.96.0.50]
  ports: [{{number: 80, name: http}}]
  resolution: DNS
  endpoints: [{{address: backend.external.test, ports: {{http: 8080}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: direct}}
spec:
  hosts: [direct.external.test]
  addresses: [{}]
  ports: [{{number: 8080, name: http}}]
  resolution: NONE
"#,
        mesh_config("REGISTRY_ONLY"),
        ext.pod.ipv4
    );
    let hosts = [
        (ext.pod.ipv4.into(), "backend.external.test"),
        (ext.pod.ipv4.into(), "direct.external.test"),
        (Ipv4Addr::new(10, 96, 0, 50).into(), "api.external.test"),
    ];
    let mesh = Mesh::start_with_hosts(&node, &yaml, &[], &hosts)?;
    let by_dns = mesh
        .curl("http://api.external.test/dns", &[])
        .map_err(|e| anyhow::anyhow!("{e}\n{}", mesh.proxy.stderr()))?;
    assert_eq!(
        (by_dns.status, by_dns.app.as_str()),
        (200, "external-v1"),
        "{}",
        by_dns.body
    );
    let none = mesh.curl("http://direct.external.test:8080/none", &[])?;
    assert_eq!(
        (none.status, none.app.as_str()),
        (200, "external-v1"),
        "{}",
        none.body
    );
    let uris: Vec<String> = ext.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/dns", "/none"]);
    Ok(())
}

/// One keep-alive GET on `stream`: the status code, or an error.
fn keep_alive_get(stream: &mut TcpStream) -> anyhow::Result<u16> {
    stream.write_all(b"GET /fds HTTP/1.1\r\nHost: catalog\r\n\r\n")?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let code = status.split(' ').nth(1).unwrap_or_default();
    Ok(code.parse()?)
}

/// Whether the proxy closed `stream` (end of stream or reset) within `wait`, rather than
/// leaving it open (accepted and waiting for a request, or unanswered in the listen backlog).
fn closed_within(stream: &mut TcpStream, wait: Duration) -> anyhow::Result<bool> {
    stream.set_read_timeout(Some(wait))?;
    match stream.read(&mut [0; 1]) {
        Ok(0) => Ok(true),
        Ok(_) => anyhow::bail!("the proxy said something unasked"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[test]
fn out_of_file_descriptors_established_traffic_flows_and_new_connections_are_closed_at_once()
-> anyhow::Result<()> {
    let node = Node::new("proxy_fds")?;
    let app = http_app(&node, "app", "catalog", "v1", 8080)?;
    let yaml = service_entry(
        "catalog",
        CATALOG_VIP,
        "http",
        8080,
        &[(app.pod.ipv4.into(), "v1")],
    );
    // Enough for the proxy's own descriptors (~30) and a few connections.
    let mesh = Mesh::start_with_fd_limit(&node, &yaml, 48)?;
    let vip = SocketAddr::from((CATALOG_VIP, 80));
    mesh.client.run(move || -> anyhow::Result<()> {
        let mut established = TcpStream::connect_timeout(&vip, TIMEOUT)?;
        established.set_read_timeout(Some(TIMEOUT))?;
        assert_eq!(keep_alive_get(&mut established)?, 200);
        // New connections, held open, until the proxy runs out and closes one at once.
        let mut pile = Vec::new();
        let closed = loop {
            ensure!(pile.len() < 48, "48 connections held open, none closed");
            let mut stream = TcpStream::connect_timeout(&vip, TIMEOUT)?;
            if closed_within(&mut stream, Duration::from_millis(200))? {
                break pile.len();
            }
            pile.push(stream);
        };
        assert!(closed >= 2, "closed at once after {closed} held");
        // The next one is closed too, while the established connection is served.
        let mut next = TcpStream::connect_timeout(&vip, TIMEOUT)?;
        assert!(closed_within(&mut next, TIMEOUT)?, "closed at once");
        assert_eq!(
            keep_alive_get(&mut established)?,
            200,
            "established traffic flows"
        );
        // Descriptors free again: service resumes by itself.
        drop(pile);
        eventually("a new connection to be served", TIMEOUT, || {
            let mut fresh = TcpStream::connect_timeout(&vip, TIMEOUT)?;
            fresh.set_read_timeout(Some(TIMEOUT))?;
            ensure!(keep_alive_get(&mut fresh)? == 200, "not 200");
            Ok(())
        })?;
        Ok(())
    })?;
    let metrics = mesh.curl_local(15090, "/metrics")?.1;
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_client_connections_refused_total "))
        .unwrap_or("0");
    assert!(refused.parse::<f64>()? >= 2.0, "{refused}");
    Ok(())
}

/// `--concurrency 2`: two worker threads accept on the same listeners, each with its own
/// upstream pools. Many keep-alive connections at once are all served, a config change
/// reaches the connections of both workers, and SIGTERM drains a request in flight.
#[test]
fn two_workers_serve_follow_a_config_change_and_drain() -> anyhow::Result<()> {
    let node = Node::new("proxy_workers")?;
    let v1 = http_app(&node, "v1", "catalog", "v1", 8080)?;
    let v2 = http_app(&node, "v2", "catalog", "v2", 8080)?;
    let base = service_entry(
        "catalog",
        CATALOG_VIP,
        "http",
        8080,
        &[(v1.pod.ipv4.into(), "v1"), (v2.pod.ipv4.into(), "v2")],
    ) + &destination_rule("catalog", &[("one", "v1"), ("two", "v2")]);
    let to = |subset: &str| {
        format!(
            "{base}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: catalog}}\nspec:\n  hosts: [catalog]\n  http:\n  - route: [{{destination: {{host: catalog, subset: {subset}}}}}]\n"
        )
    };
    let mut mesh = Mesh::start(
        &node,
        &to("one"),
        &["--concurrency", "2", "--drain-timeout", "10s"],
    )?;
    mesh.client.set_hosts(&[(CATALOG_VIP.into(), "catalog")])?;
    assert!(
        mesh.proxy.stderr().contains("serving on worker threads"),
        "{}",
        mesh.proxy.stderr()
    );
    let vip = SocketAddr::from((CATALOG_VIP, 80));
    // 32 connections opened at once, kept open across the change: each sees v1, then v2.
    let (ask, mut answers) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (next, _) = tokio::sync::broadcast::channel::<()>(1);
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let (ask, mut go) = (ask.clone(), next.subscribe());
            mesh.runtime.spawn(async move {
                let mut h1 = h1_connect(vip).await?;
                loop {
                    let (status, app) = h1_get(&mut h1, "catalog", "/").await?;
                    ensure!(status == 200, "status {status}");
                    let _ = ask.send(app);
                    if go.recv().await.is_err() {
                        return anyhow::Ok(());
                    }
                }
            })
        })
        .collect();
    drop(ask);
    let mut round = |mesh: &Mesh| -> Vec<String> {
        (0..32)
            .map(|_| mesh.runtime.block_on(answers.recv()).unwrap_or_default())
            .collect()
    };
    let first = round(&mesh);
    assert!(first.iter().all(|a| a == "catalog-v1"), "{first:?}");
    mesh.reconfigure(&to("two"))?;
    next.send(()).ok();
    let second = round(&mesh);
    assert!(second.iter().all(|a| a == "catalog-v2"), "{second:?}");
    drop(next);
    for client in clients {
        mesh.runtime.block_on(client)??;
    }

    // A slow request in flight holds the drain open until it is answered.
    let log =
        drain_with_a_request_in_flight(&mut mesh, &v2, "http://catalog/slow", 1500, |mesh| {
            kill(Pid::from_raw(mesh.proxy.pid() as i32), Signal::SIGTERM)?;
            Ok(())
        })?;
    assert!(log.contains("drained"), "{log}");
    Ok(())
}
