//! Proves the harness itself: pods talk over the bridge, programs run as the right user, the test
//! applications behave, and nodes leave nothing behind.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use sluice_e2e::apps::{self, AppId, Seen, banner};
use sluice_e2e::{Node, Pod, binary, eventually};

const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer as curl got it.
struct Reply {
    status: u16,
    app: String,
    seen: Seen,
}

/// `curl` from inside `pod`.
fn curl(pod: &Pod, url: &str, extra: &[&str]) -> anyhow::Result<Reply> {
    let output = pod
        .command("curl")
        .args(["--silent", "--show-error", "--globoff", "--include"])
        .args(["--max-time", "5"])
        .args(extra)
        .arg(url)
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    ensure!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let status = head.split_whitespace().nth(1).context("no status")?;
    let app = head
        .lines()
        .find_map(|line| line.strip_prefix("x-app: "))
        .context("no x-app header")?;
    Ok(Reply {
        status: status.parse()?,
        app: app.to_owned(),
        seen: serde_json::from_str(body).with_context(|| format!("answer body {body:?}"))?,
    })
}

/// Namespaces and /etc/netns directories of the node named `node` that still exist.
fn remains_of(node: &str) -> Vec<String> {
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let mut names: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    if let Ok(dirs) = std::fs::read_dir("/etc/netns") {
        names.extend(dirs.filter_map(|dir| dir.ok()?.file_name().into_string().ok()));
    }
    names.retain(|name| name == node || name.starts_with(&format!("{node}-")));
    names
}

fn is_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn pods_reach_each_other_over_ipv4_and_ipv6_by_address_and_name() -> anyhow::Result<()> {
    let node = Node::new("pods_reach_each_other")?;
    let server = node.pod("server")?;
    let client = node.pod("client")?;
    client.set_hosts(&[
        (server.ipv4.into(), "alpha"),
        (server.ipv6.into(), "alpha6"),
    ])?;
    let rt = server.runtime()?;
    let app = rt.block_on(rt.spawn(async {
        let listener = tokio::net::TcpListener::bind("[::]:8080").await?;
        apps::serve_http(listener, AppId::new("alpha", "v1"))
    }))??;

    let cases = [
        (format!("http://{}:8080/v4", server.ipv4), "HTTP/1.1"),
        (format!("http://[{}]:8080/v6", server.ipv6), "HTTP/1.1"),
        ("http://alpha:8080/name".to_owned(), "HTTP/1.1"),
        ("http://alpha6:8080/name6".to_owned(), "HTTP/1.1"),
        ("http://alpha:8080/h2c".to_owned(), "HTTP/2.0"),
    ];
    for (url, proto) in &cases {
        let extra: &[&str] = if *proto == "HTTP/2.0" {
            &["--http2-prior-knowledge"]
        } else {
            &[]
        };
        let reply = curl(&client, url, extra)?;
        assert_eq!(reply.status, 200, "{url}");
        assert_eq!(reply.app, "alpha-v1", "{url}");
        assert_eq!(&reply.seen.proto, proto, "{url}");
        assert_eq!(reply.seen.name, "alpha");
        let host = url.split('/').nth(2).unwrap();
        assert_eq!(reply.seen.authority.as_deref(), Some(host), "{url}");
    }
    let failing = curl(&client, "http://alpha:8080/", &["-H", "x-echo-status: 503"])?;
    assert_eq!(failing.status, 503);

    let seen = app.log().seen();
    let uris: Vec<&str> = seen.iter().map(|seen| seen.uri.as_str()).collect();
    assert_eq!(uris, ["/v4", "/v6", "/name", "/name6", "/h2c", "/"]);
    assert_eq!(seen[5].headers["x-echo-status"], "503");
    Ok(())
}

#[test]
fn testapp_binary_answers_http_and_prints_what_it_saw() -> anyhow::Result<()> {
    let node = Node::new("testapp_binary_http")?;
    let server = node.pod("server")?;
    let client = node.pod("client")?;
    let mut cmd = server.command(binary("sluice-testapp"));
    cmd.args([
        "http",
        "--listen",
        "[::]:8080",
        "--name",
        "beta",
        "--version",
        "v2",
    ]);
    let app = server.spawn(cmd)?;

    let url = format!("http://[{}]:8080/from-client", server.ipv6);
    let reply = eventually("sluice-testapp to answer", TIMEOUT, || {
        curl(&client, &url, &["-d", "four"])
    })?;
    assert_eq!(reply.app, "beta-v2");
    assert_eq!(reply.seen.method, "POST");
    assert_eq!(reply.seen.body_len, 4);

    let printed = eventually("sluice-testapp to print the request", TIMEOUT, || {
        let stdout = app.stdout();
        let line = stdout.lines().next().context("nothing printed yet")?;
        Ok(serde_json::from_str::<Seen>(line)?)
    })?;
    assert_eq!(printed, reply.seen);
    Ok(())
}

#[test]
fn command_as_runs_the_program_as_that_user_inside_the_pod() -> anyhow::Result<()> {
    let node = Node::new("command_as")?;
    let pod = node.pod("proxy")?;
    for (flag, expected) in [("-u", "1337"), ("-g", "1337"), ("-G", "1337")] {
        let output = pod.command_as(1337, 1337, "id").arg(flag).output()?;
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8(output.stdout)?.trim(),
            expected,
            "id {flag}"
        );
    }

    let mut cmd = pod.command_as(1337, 1337, "sleep");
    cmd.arg("600");
    let sleeper = pod.spawn(cmd)?;
    let pid = sleeper.pid();
    let status = eventually("the spawned program to exec into sleep", TIMEOUT, || {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))?;
        ensure!(comm.trim() == "sleep", "still {comm:?}");
        Ok(std::fs::read_to_string(format!("/proc/{pid}/status"))?)
    })?;
    let uids = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "1337", "1337", "1337", "1337"]
    );
    let netns = Command::new("ip")
        .args(["netns", "identify", &pid.to_string()])
        .output()?;
    assert_eq!(String::from_utf8(netns.stdout)?.trim(), pod.netns);

    drop(sleeper);
    assert!(!is_running(pid), "the guard kills and reaps its process");
    Ok(())
}

#[test]
fn tcp_echo_finishes_the_echo_after_the_client_half_closes() -> anyhow::Result<()> {
    let node = Node::new("tcp_echo_half_close")?;
    let server = node.pod("server")?;
    let client = node.pod("client")?;
    let rt = server.runtime()?;
    let _echo = rt.block_on(rt.spawn(async {
        apps::serve_tcp_echo(tokio::net::TcpListener::bind("0.0.0.0:9000").await?)
    }))??;

    let target = SocketAddr::new(server.ipv4.into(), 9000);
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let echoed = client.run(move || -> anyhow::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        // Writing from a second thread, so neither side waits on a full buffer of the other.
        let writing = std::thread::spawn(move || -> std::io::Result<()> {
            writer.write_all(&sent)?;
            writer.shutdown(Shutdown::Write)
        });
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed)?;
        writing.join().expect("writer thread")?;
        Ok(echoed)
    })?;
    assert!(
        echoed == payload,
        "echoed {} of {} bytes",
        echoed.len(),
        payload.len()
    );
    Ok(())
}

#[test]
fn banner_arrives_before_the_client_sends_anything() -> anyhow::Result<()> {
    let node = Node::new("banner_server_first")?;
    let server = node.pod("server")?;
    let client = node.pod("client")?;
    let mut cmd = server.command(binary("sluice-testapp"));
    cmd.args(["banner", "--listen", "[::]:2525", "--name", "mx"]);
    let _app = server.spawn(cmd)?;

    let target = SocketAddr::new(server.ipv6.into(), 2525);
    let (greeting, reply) = eventually("the banner of sluice-testapp", TIMEOUT, || {
        client.run(move || -> anyhow::Result<(String, String)> {
            let stream = TcpStream::connect_timeout(&target, TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            let mut lines = BufReader::new(stream.try_clone()?);
            let mut greeting = String::new();
            lines.read_line(&mut greeting)?;
            (&stream).write_all(b"hello\r\n")?;
            let mut reply = String::new();
            lines.read_line(&mut reply)?;
            Ok((greeting, reply))
        })
    })?;
    assert_eq!(greeting, banner::greeting("mx"));
    assert_eq!(reply, "mx: hello\r\n");
    Ok(())
}

#[test]
fn dropping_a_node_removes_everything_it_made() -> anyhow::Result<()> {
    let node = Node::new("drop_cleans_up")?;
    let name = node.netns().to_owned();
    for pod in ["a", "b"] {
        node.pod(pod)?
            .set_hosts(&[(IpAddr::from([10, 44, 0, 9]), "nine")])?;
    }
    assert_eq!(remains_of(&name).len(), 5, "{:?}", remains_of(&name));
    drop(node);
    assert_eq!(remains_of(&name), Vec::<String>::new());
    Ok(())
}

#[test]
fn a_node_is_removed_when_the_test_body_panics() {
    let (made, got) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let node = Node::new("panicking_body").unwrap();
        let pod = node.pod("a").unwrap();
        pod.set_hosts(&[]).unwrap();
        let mut cmd = pod.command("sleep");
        cmd.arg("600");
        let sleeper = pod.spawn(cmd).unwrap();
        made.send((node.netns().to_owned(), sleeper.pid())).unwrap();
        panic!("the test body fails on purpose");
    });
    assert!(body.join().is_err());
    let (name, pid) = got.recv().unwrap();
    assert_eq!(remains_of(&name), Vec::<String>::new());
    assert!(!is_running(pid));
}

#[test]
fn a_new_node_removes_leftovers_of_dead_runs() -> anyhow::Result<()> {
    let mut gone = Command::new("true").spawn()?;
    let dead_pid = gone.id();
    gone.wait()?;
    let leftover = format!("sle2e000-{dead_pid}-0");
    let leftover_pod = format!("{leftover}-pod");
    for netns in [&leftover, &leftover_pod] {
        let status = Command::new("ip").args(["netns", "add", netns]).status()?;
        if !status.success() {
            bail!("ip netns add {netns}: {status}");
        }
    }
    std::fs::create_dir_all(format!("/etc/netns/{leftover_pod}"))?;

    let _node = Node::new("leftovers")?;
    assert_eq!(remains_of(&leftover), Vec::<String>::new());
    Ok(())
}
