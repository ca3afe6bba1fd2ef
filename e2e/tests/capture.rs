//! sluice-init on real iptables in network namespaces (issue 3): the capture matrix for both
//! backends, both modes and both address families, and the promises around it: idempotence,
//! exact cleanup, a dry run that changes nothing, clear failures for bad input, backend
//! detection, the environment form of the flags, and --validate.
//!
//! In the matrix, the pod under test ("app") gets sluice-init, then listeners that stand in for
//! the proxy (outbound and inbound ports) and real servers on the original destinations, in it
//! and in two other pods ("peer", and "excluded" whose address is an excluded CIDR). Each
//! connection sends a token; where the token arrives, and with which SO_ORIGINAL_DST, tells
//! whether it was captured.

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use nix::sys::socket::{Backlog, SockaddrStorage, bind, listen, setsockopt, sockopt};
use sluice_e2e::apps::token_client::{TokenClient, tcp_socket};
use sluice_e2e::{Node, Pod, binary, eventually};
use tokio::io::AsyncBufReadExt as _;

const TIMEOUT: Duration = Duration::from_secs(10);
const PROXY_UID: u32 = 1337;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn ip(self, pod: &Pod) -> IpAddr {
        match self {
            Family::V4 => pod.ipv4.into(),
            Family::V6 => pod.ipv6.into(),
        }
    }

    fn any(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Family::V6 => Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    fn loopback(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::LOCALHOST.into(),
            Family::V6 => Ipv6Addr::LOCALHOST.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Redirect,
    Tproxy,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Redirect => "redirect",
            Mode::Tproxy => "tproxy",
        })
    }
}

const BACKENDS: [&str; 2] = ["legacy", "nft"];
const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

// ---------------------------------------------------------------------------------------------
// Running sluice-init and reading the rules.

fn sluice_init(pod: &Pod, args: &[&str]) -> anyhow::Result<Output> {
    pod.command(binary("sluice-init"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running sluice-init")
}

/// Runs sluice-init, which must succeed; returns its stdout and stderr.
fn init_ok(pod: &Pod, args: &[&str]) -> anyhow::Result<(String, String)> {
    let output = sluice_init(pod, args)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(
        output.status.success(),
        "sluice-init {args:?} failed ({}): {stderr}",
        output.status
    );
    Ok((stdout, stderr))
}

/// Runs a program in the pod, which must succeed; returns its stdout.
fn run(pod: &Pod, program: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut command = pod.command(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("running {program}"))?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "{program} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs an iptables program in the pod with these words (waiting for the xtables lock, which
/// legacy shares across namespaces).
fn iptables(pod: &Pod, program: &str, rule: &str) -> anyhow::Result<String> {
    let args: Vec<&str> = std::iter::once("-w")
        .chain(rule.split_whitespace())
        .collect();
    run(pod, program, &args, None)
}

/// `*-save` of a backend and family, without what changes by itself: comments (with their
/// timestamps) and packet counters.
fn save(pod: &Pod, backend: &str, family: Family) -> anyhow::Result<String> {
    let program = format!("{}-{backend}-save", family.iptables());
    let text = run(pod, &program, &[], None)?;
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| match (line.starts_with(':'), line.rfind(" [")) {
            (true, Some(at)) => format!("{} [0:0]", &line[..at]),
            _ => line.to_owned(),
        })
        .collect();
    Ok(lines.join("\n"))
}

/// Both families' saves of a backend.
fn saves(pod: &Pod, backend: &str) -> anyhow::Result<Vec<String>> {
    FAMILIES.iter().map(|&f| save(pod, backend, f)).collect()
}

/// The policy routing of the pod (rules and every table's routes), both families.
fn routing(pod: &Pod) -> anyhow::Result<String> {
    let mut all = String::new();
    for fam in ["-4", "-6"] {
        all += &run(pod, "ip", &[fam, "rule", "show"], None)?;
        all += &run(pod, "ip", &[fam, "route", "show", "table", "all"], None)?;
    }
    Ok(all)
}

/// Rules owned by someone else, in every table sluice-init may touch, as restore input.
const FOREIGN_RULES: &str = "\
*filter
:FOREIGN - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FOREIGN -j RETURN
COMMIT
*nat
:FOREIGN_NAT - [0:0]
-A PREROUTING -p tcp -m tcp --dport 9998 -j FOREIGN_NAT
-A OUTPUT -p tcp -m tcp --dport 9999 -j FOREIGN_NAT
COMMIT
*mangle
-A PREROUTING -p udp -j MARK --set-xmark 0x1/0xffffffff
COMMIT
";

fn add_foreign_rules(pod: &Pod, backend: &str) -> anyhow::Result<()> {
    for family in FAMILIES {
        let program = format!("{}-{backend}-restore", family.iptables());
        run(pod, &program, &["--noflush", "--wait"], Some(FOREIGN_RULES))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sockets: listeners that record what arrives, and clients that send a token.

/// A connection that arrived at one of the test's listeners.
#[derive(Clone, Debug)]
struct Arrival {
    token: String,
    /// The listener's name.
    at: &'static str,
    local: SocketAddr,
    peer: SocketAddr,
    orig_dst: Option<SocketAddr>,
}

/// Everything that arrived anywhere in a test.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Arrival>>>);

impl Arrivals {
    fn push(&self, arrival: Arrival) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(arrival);
    }

    fn find(&self, token: &str) -> Option<Arrival> {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter().find(|a| a.token == token).cloned()
    }
}

/// A listener created inside `pod` (a socket stays in the namespace it was made in), with
/// IP_TRANSPARENT if asked: what the proxy does in tproxy mode.
fn listener(
    pod: &Pod,
    addr: SocketAddr,
    transparent: bool,
) -> anyhow::Result<std::net::TcpListener> {
    pod.run(move || {
        let fd = tcp_socket(addr)?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        if addr.is_ipv6() {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
        }
        if transparent {
            setsockopt(&fd, sockopt::IpTransparent, &true)?;
        }
        bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
            .with_context(|| format!("bind {addr}"))?;
        listen(&fd, Backlog::new(64)?)?;
        let listener = std::net::TcpListener::from(fd);
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
}

/// Listens on `addr` in `pod` and records every connection's first line in `arrivals`.
fn serve(
    rt: &tokio::runtime::Runtime,
    arrivals: &Arrivals,
    pod: &Pod,
    at: &'static str,
    addr: SocketAddr,
    transparent: bool,
) -> anyhow::Result<()> {
    let listener = listener(pod, addr, transparent)?;
    let _guard = rt.enter();
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let arrivals = arrivals.clone();
    rt.spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let local = stream.local_addr().expect("local address");
                let orig_dst = sluice_init::orig_dst(&stream).ok();
                let mut token = String::new();
                let mut reader = tokio::io::BufReader::new(stream);
                let read = tokio::time::timeout(TIMEOUT, reader.read_line(&mut token)).await;
                if matches!(read, Ok(Ok(_))) {
                    arrivals.push(Arrival {
                        token: token.trim().to_owned(),
                        at,
                        local,
                        peer,
                        orig_dst,
                    });
                }
            });
        }
    });
    Ok(())
}

/// How a test connection is made.
#[derive(Clone, Copy, Debug, Default)]
struct Client {
    /// Run as this uid and gid (in a child process); `None`: root, in-process.
    uid: Option<u32>,
    /// Bind to this source address first.
    bind: Option<SocketAddr>,
    /// Set SO_MARK and IP_TRANSPARENT: the proxy's transparent connection in tproxy mode.
    mark: Option<u32>,
}

const AS_PROXY: Client = Client {
    uid: Some(PROXY_UID),
    bind: None,
    mark: None,
};

/// Connects from `pod` to `target` and sends `token`.
fn connect_from(pod: &Pod, client: Client, target: SocketAddr, token: &str) -> anyhow::Result<()> {
    let token = token.to_owned();
    let sender = TokenClient {
        bind: client.bind,
        mark: client.mark,
    };
    let Some(uid) = client.uid else {
        return pod.run(move || sender.send(target, &token));
    };
    // Another uid needs another process.
    let mut command = pod.command_as(uid, uid, binary("sluice-testapp"));
    command.args([
        "connect",
        "--target",
        &target.to_string(),
        "--token",
        &token,
    ]);
    if let Some(bind) = client.bind {
        command.args(["--bind", &bind.to_string()]);
    }
    let output = command.stdin(Stdio::null()).output()?;
    ensure!(
        output.status.success(),
        "client as uid {uid} to {target} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The capture matrix.

/// One connection and where it must arrive.
struct Case<'a> {
    what: &'static str,
    from: &'a Pod,
    client: Client,
    target: SocketAddr,
    /// The listener it must arrive at, and its SO_ORIGINAL_DST there.
    at: &'static str,
    orig_dst: SocketAddr,
    /// The client address the listener must see, if it matters.
    peer: Option<IpAddr>,
    /// The local address of the accepted socket, if it matters.
    local: Option<SocketAddr>,
}

impl Case<'_> {
    /// Makes the connection and returns what is wrong about where it arrived, if anything.
    fn check(&self, arrivals: &Arrivals, token: &str) -> Option<String> {
        let arrived = connect_from(self.from, self.client, self.target, token).and_then(|()| {
            eventually(&format!("{token} to arrive"), TIMEOUT, || {
                arrivals.find(token).context("not yet")
            })
        });
        let arrival = match arrived {
            Ok(arrival) => arrival,
            Err(err) => return Some(format!("{}: {err:#}", self.what)),
        };
        let mut wrong = vec![];
        if arrival.at != self.at {
            wrong.push(format!("arrived at {} instead of {}", arrival.at, self.at));
        }
        // Where no rules made conntrack track the connection (the other pods), nothing can have
        // rewritten it: its original destination is where it arrived.
        let orig_dst = arrival.orig_dst.unwrap_or(arrival.local);
        if orig_dst != self.orig_dst {
            wrong.push(format!(
                "original destination {orig_dst} instead of {}",
                self.orig_dst
            ));
        }
        if let Some(peer) = self.peer.filter(|peer| *peer != arrival.peer.ip()) {
            wrong.push(format!("from {} instead of {peer}", arrival.peer));
        }
        if let Some(local) = self.local.filter(|local| *local != arrival.local) {
            wrong.push(format!(
                "local address {} instead of {local}",
                arrival.local
            ));
        }
        (!wrong.is_empty()).then(|| format!("{}: {}", self.what, wrong.join(", ")))
    }
}

fn matrix(backend: &str, mode: Mode, family: Family) -> anyhow::Result<()> {
    let node = Node::new(&format!("capture-{backend}-{mode}-{family:?}"))?;
    let app = node.pod("app")?;
    let peer = node.pod("peer")?;
    let excluded = node.pod("excluded")?;
    let (a, p, x) = (family.ip(&app), family.ip(&peer), family.ip(&excluded));
    let excluded_cidrs = format!("{},{}", excluded.ipv4, excluded.ipv6);
    let mode_name = mode.to_string();
    init_ok(
        &app,
        &[
            "--backend",
            backend,
            "--mode",
            &mode_name,
            "--ipv6",
            "on",
            "--exclude-outbound-cidrs",
            &excluded_cidrs,
            "--exclude-outbound-ports",
            "5432",
            "--exclude-inbound-ports",
            "9090",
        ],
    )?;

    let rt = app.runtime()?;
    let arrivals = Arrivals::default();
    let at = |ip: IpAddr, port: u16| SocketAddr::new(ip, port);
    let any = family.any();
    let lo = family.loopback();
    let tproxy = mode == Mode::Tproxy;
    for (pod, name, addr, transparent) in [
        (&app, "outbound listener", at(any, 15001), false),
        (&app, "inbound listener", at(any, 15006), tproxy),
        (&app, "app", at(any, 8080), false),
        (&app, "app (excluded port)", at(any, 9090), false),
        (&app, "proxy health port", at(any, 15021), false),
        (&app, "app on loopback", at(lo, 7070), false),
        (&peer, "peer", at(any, 80), false),
        (&peer, "peer (excluded port)", at(any, 5432), false),
        (&excluded, "excluded pod", at(any, 80), false),
    ] {
        serve(&rt, &arrivals, pod, name, addr, transparent)?;
    }

    let root = Client::default();
    let case = |what, from, client, target: SocketAddr, at_listener, orig_dst| Case {
        what,
        from,
        client,
        target,
        at: at_listener,
        orig_dst,
        peer: None,
        local: None,
    };
    let mut cases = vec![
        case(
            "outbound to another pod is captured",
            &app,
            root,
            at(p, 80),
            "outbound listener",
            at(p, 80),
        ),
        case(
            "outbound to an excluded CIDR",
            &app,
            root,
            at(x, 80),
            "excluded pod",
            at(x, 80),
        ),
        case(
            "outbound to an excluded port",
            &app,
            root,
            at(p, 5432),
            "peer (excluded port)",
            at(p, 5432),
        ),
        case(
            "outbound from the proxy's uid",
            &app,
            AS_PROXY,
            at(p, 80),
            "peer",
            at(p, 80),
        ),
        case(
            "outbound to loopback",
            &app,
            root,
            at(lo, 7070),
            "app on loopback",
            at(lo, 7070),
        ),
        case(
            "the app calling its own pod IP reaches itself",
            &app,
            root,
            at(a, 8080),
            "app",
            at(a, 8080),
        ),
        Case {
            peer: Some(p),
            local: tproxy.then_some(at(a, 8080)),
            ..case(
                "inbound on a captured port is captured",
                &peer,
                root,
                at(a, 8080),
                "inbound listener",
                at(a, 8080),
            )
        },
        case(
            "inbound on an excluded port",
            &peer,
            root,
            at(a, 9090),
            "app (excluded port)",
            at(a, 9090),
        ),
        case(
            "inbound on a proxy port",
            &peer,
            root,
            at(a, 15021),
            "proxy health port",
            at(a, 15021),
        ),
        case(
            "the proxy calling its own pod IP goes inbound",
            &app,
            AS_PROXY,
            at(a, 8080),
            "inbound listener",
            at(a, 8080),
        ),
        case(
            "the proxy calling its own pod IP on an excluded port",
            &app,
            AS_PROXY,
            at(a, 9090),
            "app (excluded port)",
            at(a, 9090),
        ),
        case(
            "the proxy reaching the app over loopback",
            &app,
            AS_PROXY,
            at(lo, 7070),
            "app on loopback",
            at(lo, 7070),
        ),
    ];
    if family == Family::V4 {
        let passthrough = Client {
            bind: Some(at(Ipv4Addr::new(127, 0, 0, 6).into(), 0)),
            ..AS_PROXY
        };
        cases.push(case(
            "the proxy forwarding to the pod IP from 127.0.0.6 reaches the app",
            &app,
            passthrough,
            at(a, 8080),
            "app",
            at(a, 8080),
        ));
    }
    if tproxy {
        // The proxy's leg to the app with the client's address: the app sees the client.
        let transparent = Client {
            uid: None,
            bind: Some(at(p, 0)),
            mark: Some(1337),
        };
        cases.push(Case {
            peer: Some(p),
            ..case(
                "the proxy's transparent connection keeps the client's address",
                &app,
                transparent,
                at(a, 8080),
                "app",
                at(a, 8080),
            )
        });
    }
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(n, case)| case.check(&arrivals, &format!("case-{n}")))
        .collect();
    if !failures.is_empty() {
        let rules = run(
            &app,
            &format!("{}-{backend}-save", family.iptables()),
            &["-c"],
            None,
        )?;
        bail!(
            "{backend} {mode} {family:?}:\n  {}\nrules:\n{rules}",
            failures.join("\n  ")
        );
    }
    Ok(())
}

#[test]
fn capture_legacy_redirect_ipv4() -> anyhow::Result<()> {
    matrix("legacy", Mode::Redirect, Family::V4)
}

#[test]
fn capture_legacy_redirect_ipv6() -> anyhow::Result<()> {
    matrix("legacy", Mode::Redirect, Family::V6)
}

#[test]
fn capture_nft_redirect_ipv4() -> anyhow::Result<()> {
    matrix("nft", Mode::Redirect, Family::V4)
}

#[test]
fn capture_nft_redirect_ipv6() -> anyhow::Result<()> {
    matrix("nft", Mode::Redirect, Family::V6)
}

#[test]
fn capture_legacy_tproxy_ipv4() -> anyhow::Result<()> {
    matrix("legacy", Mode::Tproxy, Family::V4)
}

#[test]
fn capture_legacy_tproxy_ipv6() -> anyhow::Result<()> {
    matrix("legacy", Mode::Tproxy, Family::V6)
}

#[test]
fn capture_nft_tproxy_ipv4() -> anyhow::Result<()> {
    matrix("nft", Mode::Tproxy, Family::V4)
}

#[test]
fn capture_nft_tproxy_ipv6() -> anyhow::Result<()> {
    matrix("nft", Mode::Tproxy, Family::V6)
}

/// `--exclude-interfaces`: nothing through that interface is captured, in or out; loopback
/// rules stay as they are.
fn excluded_interface(backend: &str) -> anyhow::Result<()> {
    let node = Node::new(&format!("exclude-iface-{backend}"))?;
    let app = node.pod("app")?;
    let peer = node.pod("peer")?;
    init_ok(
        &app,
        &["--backend", backend, "--exclude-interfaces", "eth0"],
    )?;
    let rt = app.runtime()?;
    let arrivals = Arrivals::default();
    let (a, p): (IpAddr, IpAddr) = (app.ipv4.into(), peer.ipv4.into());
    let at = |ip: IpAddr, port: u16| SocketAddr::new(ip, port);
    let any = Family::V4.any();
    for (pod, name, addr) in [
        (&app, "outbound listener", at(any, 15001)),
        (&app, "inbound listener", at(any, 15006)),
        (&app, "app", at(any, 8080)),
        (&peer, "peer", at(any, 80)),
    ] {
        serve(&rt, &arrivals, pod, name, addr, false)?;
    }
    let case = |what, from, client, target: SocketAddr, at_listener| Case {
        what,
        from,
        client,
        target,
        at: at_listener,
        orig_dst: target,
        peer: None,
        local: None,
    };
    let cases = [
        case(
            "outbound via the excluded interface",
            &app,
            Client::default(),
            at(p, 80),
            "peer",
        ),
        case(
            "inbound via the excluded interface",
            &peer,
            Client::default(),
            at(a, 8080),
            "app",
        ),
        case(
            "the proxy calling its own pod IP still goes inbound",
            &app,
            AS_PROXY,
            at(a, 8080),
            "inbound listener",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(n, case)| case.check(&arrivals, &format!("iface-{n}")))
        .collect();
    ensure!(failures.is_empty(), "{backend}: {}", failures.join("\n"));
    Ok(())
}

#[test]
fn excluded_interface_is_not_captured_legacy() -> anyhow::Result<()> {
    excluded_interface("legacy")
}

#[test]
fn excluded_interface_is_not_captured_nft() -> anyhow::Result<()> {
    excluded_interface("nft")
}

// ---------------------------------------------------------------------------------------------
// Idempotence, cleanup, dry run.

/// Applying twice leaves identical rules; --cleanup gives back the original rules and routing
/// exactly, with someone else's rules in every table sluice-init touches.
fn twice_then_cleanup(backend: &str) -> anyhow::Result<()> {
    let node = Node::new(&format!("idempotent-{backend}"))?;
    let pod = node.pod("app")?;
    add_foreign_rules(&pod, backend)?;
    let original = (saves(&pod, backend)?, routing(&pod)?);
    for mode in ["redirect", "tproxy"] {
        let args = ["--backend", backend, "--ipv6", "on", "--mode", mode];
        init_ok(&pod, &args)?;
        let first = (saves(&pod, backend)?, routing(&pod)?);
        ensure!(first != original, "{mode}: nothing was applied");
        init_ok(&pod, &args)?;
        let second = (saves(&pod, backend)?, routing(&pod)?);
        ensure!(
            first == second,
            "{mode}: the second run changed the rules:\n{first:#?}\n---\n{second:#?}"
        );
        init_ok(&pod, &["--backend", backend, "--ipv6", "on", "--cleanup"])?;
        let cleaned = (saves(&pod, backend)?, routing(&pod)?);
        ensure!(
            cleaned == original,
            "{mode}: --cleanup left:\n{cleaned:#?}\ninstead of:\n{original:#?}"
        );
    }
    // Cleaning up a clean namespace is fine and changes nothing.
    init_ok(&pod, &["--backend", backend, "--cleanup"])?;
    ensure!((saves(&pod, backend)?, routing(&pod)?) == original);
    Ok(())
}

#[test]
fn twice_is_once_and_cleanup_restores_exactly_legacy() -> anyhow::Result<()> {
    twice_then_cleanup("legacy")
}

#[test]
fn twice_is_once_and_cleanup_restores_exactly_nft() -> anyhow::Result<()> {
    twice_then_cleanup("nft")
}

/// In a namespace without any rules, --cleanup leaves no rule and no chain (the tables the apply
/// needed stay, empty: they cannot be unloaded).
#[test]
fn cleanup_of_a_pristine_namespace_leaves_no_rules() -> anyhow::Result<()> {
    let node = Node::new("cleanup-pristine")?;
    for backend in BACKENDS {
        let pod = node.pod(backend)?;
        let before = routing(&pod)?;
        init_ok(
            &pod,
            &["--backend", backend, "--ipv6", "on", "--mode", "tproxy"],
        )?;
        init_ok(&pod, &["--backend", backend, "--ipv6", "on", "--cleanup"])?;
        for save in saves(&pod, backend)? {
            let leftovers: Vec<&str> = save
                .lines()
                .filter(|l| l.starts_with("-A") || l.contains(" - [0:0]"))
                .collect();
            ensure!(leftovers.is_empty(), "{backend}: left {leftovers:?}");
        }
        ensure!(routing(&pod)? == before, "{backend}: routing changed");
    }
    Ok(())
}

/// The restore inputs in --dry-run output, per program (`# IPv4: PROGRAM --noflush` headers).
fn restore_sections(dry_run: &str) -> Vec<(String, String)> {
    let mut sections: Vec<(String, String)> = vec![];
    for line in dry_run.lines() {
        if let Some(program) = line
            .strip_prefix("# IPv4: ")
            .or_else(|| line.strip_prefix("# IPv6: "))
            .and_then(|rest| rest.strip_suffix(" --noflush"))
        {
            sections.push((program.to_owned(), String::new()));
        } else if !line.starts_with('#') {
            let (_, input) = sections.last_mut().expect("a header first");
            input.push_str(line);
            input.push('\n');
        }
    }
    sections
}

/// --dry-run changes nothing, and what it prints is exactly what a real run applies: fed to
/// iptables-restore by hand it gives the same rules as sluice-init itself.
fn dry_run(backend: &str) -> anyhow::Result<()> {
    let node = Node::new(&format!("dry-run-{backend}"))?;
    let by_hand = node.pod("by-hand")?;
    let real = node.pod("real")?;
    add_foreign_rules(&by_hand, backend)?;
    add_foreign_rules(&real, backend)?;
    for mode in ["redirect", "tproxy"] {
        let args = ["--backend", backend, "--ipv6", "on", "--mode", mode];
        let before = (saves(&by_hand, backend)?, routing(&by_hand)?);
        let dry = [&args[..], &["--dry-run"]].concat();
        let (printed, _) = init_ok(&by_hand, &dry)?;
        ensure!(
            (saves(&by_hand, backend)?, routing(&by_hand)?) == before,
            "{mode}: --dry-run changed something"
        );
        let sections = restore_sections(&printed);
        ensure!(
            sections.len() == 2,
            "{mode}: expected two families in:\n{printed}"
        );
        for (program, input) in &sections {
            ensure!(program.contains(backend), "{program} is not of {backend}");
            run(&by_hand, program, &["--noflush", "--wait"], Some(input))?;
        }
        init_ok(&real, &args)?;
        ensure!(
            saves(&by_hand, backend)? == saves(&real, backend)?,
            "{mode}: the dry-run output applied by hand differs from a real run:\n{printed}"
        );
        // A dry run where the rules are there shows the refresh: no jumps added again.
        let (again, _) = init_ok(&real, &dry)?;
        ensure!(
            !again.contains("-A PREROUTING") && !again.contains("-A OUTPUT"),
            "{again}"
        );
    }
    Ok(())
}

#[test]
fn dry_run_prints_the_exact_input_and_changes_nothing_legacy() -> anyhow::Result<()> {
    dry_run("legacy")
}

#[test]
fn dry_run_prints_the_exact_input_and_changes_nothing_nft() -> anyhow::Result<()> {
    dry_run("nft")
}

// ---------------------------------------------------------------------------------------------
// Bad input, backend detection, environment, --validate, --help.

#[test]
fn bad_input_exits_non_zero_naming_the_flag_and_value() -> anyhow::Result<()> {
    let node = Node::new("bad-input")?;
    let pod = node.pod("app")?;
    let init = binary("sluice-init");
    let init = init.to_str().context("path")?;
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "port out of range",
            &[init, "--outbound-port", "70000"],
            &["--outbound-port \"70000\"", "1-65535"],
        ),
        (
            "port list item",
            &[init, "--inbound-ports", "80,99999"],
            &["--inbound-ports \"80,99999\"", "\"99999\" is not a port"],
        ),
        (
            "bad CIDR",
            &[init, "--exclude-outbound-cidrs", "10.0.0.0/33"],
            &["--exclude-outbound-cidrs \"10.0.0.0/33\"", "is not a CIDR"],
        ),
        (
            "unknown interface",
            &[init, "--exclude-interfaces", "eth7"],
            &["--exclude-interfaces \"eth7\"", "no interface \"eth7\""],
        ),
        (
            "bad mode",
            &[init, "--mode", "nat"],
            &["--mode \"nat\"", "redirect, tproxy"],
        ),
        (
            "several at once",
            &[
                init,
                "--outbound-port",
                "0",
                "--backend",
                "ipfw",
                "--exclude-interfaces",
                "eth7",
            ],
            &[
                "--outbound-port \"0\"",
                "--backend \"ipfw\"",
                "--exclude-interfaces \"eth7\"",
            ],
        ),
        (
            "missing iptables",
            &["env", "PATH=/nonexistent", init, "--backend", "nft"],
            &[
                "iptables-nft-save not found in PATH (/nonexistent)",
                "install iptables",
            ],
        ),
        (
            "missing iptables, auto",
            &["env", "PATH=/nonexistent", init],
            &[
                "no usable iptables backend",
                "iptables-legacy-save not found",
            ],
        ),
    ];
    let mut failures = vec![];
    for (what, command, needles) in cases {
        let output = pod.command(command[0]).args(&command[1..]).output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(1) {
            failures.push(format!("{what}: exit {}: {stderr}", output.status));
        }
        for needle in *needles {
            if !stderr.contains(needle) {
                failures.push(format!("{what}: no {needle:?} in: {stderr}"));
            }
        }
    }
    // Without privileges (the kernel refuses), for each backend.
    for backend in ["auto", "legacy", "nft"] {
        let output = pod
            .command_as(65534, 65534, binary("sluice-init"))
            .args(["--backend", backend])
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(1)
            || !stderr.contains("permission denied")
            || !stderr.contains("NET_ADMIN")
        {
            failures.push(format!(
                "no permission, --backend {backend}: {}: {stderr}",
                output.status
            ));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    for backend in BACKENDS {
        for save in saves(&pod, backend)? {
            ensure!(!save.contains("SLUICE_"), "a failed run left rules: {save}");
        }
    }
    Ok(())
}

/// The backend that `--backend auto` picks in `pod`, from its log line; the rules must be there.
fn detected(pod: &Pod, extra_env: Option<(&str, &str)>) -> anyhow::Result<(String, String)> {
    let mut command = pod.command(binary("sluice-init"));
    command.args(["--ipv6", "off"]);
    if let Some((key, value)) = extra_env {
        command.env(key, value);
    }
    let output = command.output()?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(output.status.success(), "sluice-init failed: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("backend "))
        .with_context(|| format!("no backend line in: {stderr}"))?;
    let backend = line["backend ".len()..]
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        save(pod, &backend, Family::V4)?.contains("SLUICE_OUTPUT"),
        "rules not in {backend}"
    );
    let other = if backend == "nft" { "legacy" } else { "nft" };
    ensure!(
        !save(pod, other, Family::V4)?.contains("SLUICE_"),
        "rules split into {other} too"
    );
    Ok((backend, line.to_owned()))
}

#[test]
fn backend_auto_detection_takes_each_branch() -> anyhow::Result<()> {
    let node = Node::new("detection")?;
    let legacy_tables = |pod: &Pod| run(pod, "cat", &["/proc/net/ip_tables_names"], None);

    // Someone's rules in legacy: legacy, and a second run finds sluice's chains there.
    let pod = node.pod("legacy-rules")?;
    iptables(
        &pod,
        "iptables-legacy",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
    )?;
    let (backend, line) = detected(&pod, None)?;
    ensure!(
        backend == "legacy" && line.contains("the namespace's rules are there"),
        "{line}"
    );
    let (backend, line) = detected(&pod, None)?;
    ensure!(
        backend == "legacy" && line.contains("sluice's chains are already there"),
        "{line}"
    );

    // Someone's rules in nft: nft, and legacy was not even looked at through a table.
    let pod = node.pod("nft-rules")?;
    iptables(&pod, "iptables-nft", "-A INPUT -p tcp --dport 22 -j ACCEPT")?;
    let (backend, line) = detected(&pod, None)?;
    ensure!(
        backend == "nft" && line.contains("the namespace's rules are there"),
        "{line}"
    );
    ensure!(
        legacy_tables(&pod)?.trim().is_empty(),
        "detection created legacy tables"
    );

    // An empty legacy table (someone probed with `iptables-legacy -L`) is not a reason.
    let pod = node.pod("probed")?;
    iptables(&pod, "iptables-legacy", "-t nat -L -n")?;
    let image = run(&pod, "iptables", &["--version"], None)?;
    let (backend, line) = detected(&pod, None)?;
    let expected = if image.contains("nf_tables") {
        "nft"
    } else {
        "legacy"
    };
    ensure!(
        backend == expected && line.contains("no rules in either backend"),
        "{line}"
    );
    ensure!(line.contains(image.trim()), "{line} does not quote {image}");

    // Nothing anywhere: the image's default, and nothing primed in the other backend.
    let pod = node.pod("nothing")?;
    let (backend, line) = detected(&pod, None)?;
    ensure!(
        backend == expected && line.contains("the image's default"),
        "{line}"
    );
    if backend == "nft" {
        ensure!(
            legacy_tables(&pod)?.trim().is_empty(),
            "detection primed legacy tables"
        );
    }

    // Nothing anywhere, with an image whose `iptables` is the legacy one.
    let dir = std::env::temp_dir().join(format!("sluice-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let link = dir.join("iptables");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/usr/sbin/iptables-legacy", &link)?;
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.display());
    let pod = node.pod("legacy-image")?;
    let result = detected(&pod, Some(("PATH", &path)));
    std::fs::remove_dir_all(&dir)?;
    let (backend, line) = result?;
    ensure!(backend == "legacy" && line.contains("(legacy)"), "{line}");

    // Rules in both: the one with more wins (and says so).
    let pod = node.pod("both")?;
    iptables(&pod, "iptables-legacy", "-A INPUT -j ACCEPT")?;
    for port in ["1", "2", "3"] {
        iptables(
            &pod,
            "iptables-nft",
            &format!("-A INPUT -p tcp --dport {port} -j ACCEPT"),
        )?;
    }
    let (backend, line) = detected(&pod, None)?;
    ensure!(
        backend == "nft" && line.contains("1 legacy and 3 nft rules"),
        "{line}"
    );
    Ok(())
}

#[test]
fn every_flag_has_an_environment_variable() -> anyhow::Result<()> {
    let node = Node::new("environment")?;
    let pod = node.pod("app")?;
    let output = pod
        .command(binary("sluice-init"))
        .env("SLUICE_DRY_RUN", "true")
        .env("SLUICE_IPV6", "off")
        .env("SLUICE_OUTBOUND_PORT", "16001")
        .env("SLUICE_PROXY_UID", "2000")
        .env("SLUICE_INBOUND_PORTS", "")
        .env("SLUICE_EXCLUDE_OUTBOUND_CIDRS", "10.9.0.0/16")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "--to-ports 16001",
        "--uid-owner 2000",
        "-d 10.9.0.0/16 -j RETURN",
    ] {
        ensure!(stdout.contains(needle), "no {needle} in:\n{stdout}");
    }
    // SLUICE_INBOUND_PORTS="" means no inbound capture; the dry run changed nothing.
    ensure!(
        !stdout.contains("SLUICE_INBOUND") && !stdout.contains("IPv6"),
        "{stdout}"
    );
    ensure!(!save(&pod, "nft", Family::V4)?.contains("SLUICE_"));
    // A bad value from the environment is reported like a flag's.
    let output = pod
        .command(binary("sluice-init"))
        .env("SLUICE_EXCLUDE_OUTBOUND_PORTS", "http")
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("--exclude-outbound-ports \"http\""),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn validate_proves_capture_or_says_why_not() -> anyhow::Result<()> {
    let node = Node::new("validate")?;
    for backend in BACKENDS {
        let pod = node.pod(&format!("good-{backend}"))?;
        let (_, stderr) = init_ok(&pod, &["--backend", backend, "--ipv6", "on", "--validate"])?;
        for destination in ["192.0.2.1:80", "[2001:db8::1]:80"] {
            ensure!(
                stderr.contains(&format!(
                    "validated: a connection to {destination} was captured"
                )),
                "{stderr}"
            );
        }
    }
    // A family the pod has no route for sends nothing, so there is nothing to check there.
    let pod = node.pod("no-ipv6-route")?;
    run(&pod, "ip", &["-6", "route", "del", "default"], None)?;
    let (_, stderr) = init_ok(&pod, &["--ipv6", "on", "--validate"])?;
    ensure!(
        stderr.contains("validated: a connection to 192.0.2.1:80")
            && stderr.contains("IPv6 not validated: no route to [2001:db8::1]:80"),
        "{stderr}"
    );
    // Someone's rule lets the test address through before sluice's jump, and a reject shows
    // that it really went out uncaptured.
    let pod = node.pod("bypassed")?;
    iptables(
        &pod,
        "iptables-nft",
        "-t nat -A OUTPUT -d 192.0.2.0/24 -j ACCEPT",
    )?;
    iptables(
        &pod,
        "iptables-nft",
        "-A OUTPUT -d 192.0.2.0/24 -p tcp -j REJECT --reject-with tcp-reset",
    )?;
    let output = sluice_init(&pod, &["--backend", "nft", "--ipv6", "off", "--validate"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.code() == Some(1), "{stderr}");
    ensure!(
        stderr.contains("--validate: a connection to 192.0.2.1:80 was not captured to port 15001")
            && stderr.contains("refused"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn help_documents_every_flag_and_the_backend_choice() -> anyhow::Result<()> {
    let output = std::process::Command::new(binary("sluice-init"))
        .arg("--help")
        .output()?;
    // Words, whatever the wrapping.
    let help = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    ensure!(output.status.success());
    for flag in [
        "--proxy-uid",
        "--proxy-gid",
        "--outbound-port",
        "--inbound-port",
        "--admin-port",
        "--health-port",
        "--metrics-port",
        "--inbound-ports",
        "--exclude-inbound-ports",
        "--outbound-cidrs",
        "--exclude-outbound-cidrs",
        "--exclude-outbound-ports",
        "--include-outbound-ports",
        "--exclude-interfaces",
        "--mode",
        "--ipv6",
        "--backend",
        "--tproxy-mark",
        "--tproxy-table",
        "--dry-run",
        "--cleanup",
        "--validate",
    ] {
        let env = format!("SLUICE_{}", flag[2..].to_uppercase().replace('-', "_"));
        ensure!(
            help.contains(flag) && help.contains(&env),
            "--help lacks {flag} or {env}"
        );
    }
    for needle in [
        "/proc/net/ip_tables_names",
        "iptables --version",
        "iptables-nft-save",
    ] {
        ensure!(help.contains(needle), "--help does not explain {needle}");
    }
    Ok(())
}
