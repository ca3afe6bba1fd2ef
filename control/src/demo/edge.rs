//! `sluice demo --edge`: seed 002's gray release at the ingress gateway. A gateway pod runs
//! sluice-proxy `--mode gateway` (uid 1337 on port 80), myapp v1 and v2 run in pods of their
//! own, and a client pod sends requests to `myapp.example.com` through the gateway; each step
//! applies one stage of `examples/gateway` live and checks its traffic.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use hyper::body::Bytes;
use serde_json::Value;
use sluice_netns::{Node, Pod, Process};
use tokio::runtime::Runtime;

use super::app::App;
use super::live::{self, WAIT};
use super::mesh::Tally;
use super::report;
use super::request;
use super::steps::{Dest, Expect, Step, Traffic};

const HOST: &str = "myapp.example.com";

const GATEWAY: &str = include_str!("../../../examples/gateway/gateway.yaml");
const DESTINATION_RULE: &str = include_str!("../../../examples/gateway/destination-rule.yaml");

const INTERNAL: &[(&str, &str)] = &[
    ("x-gray-tag", "internal-test"),
    ("x-gray-token", "secret-token-12345"),
];

const fn to(
    label: &'static str,
    requests: u32,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Traffic {
    Traffic {
        label,
        requests,
        dest: Dest::Gateway,
        headers,
        expect,
    }
}

/// The five stages of seed 002, as `examples/gateway` holds them.
pub const STAGES: [Step; 5] = [
    Step {
        name: "internal-gray",
        title: "internal gray: testers with two headers reach v2",
        about: "examples/gateway/stage-1-internal-gray.yaml (seed 002-03)",
        yaml: include_str!("../../../examples/gateway/stage-1-internal-gray.yaml"),
        traffic: &[
            to(
                "testers (x-gray-tag + x-gray-token)",
                10,
                INTERNAL,
                Expect::Versions(&[("v2", 10)], 0),
            ),
            to(
                "x-gray-tag alone",
                10,
                &[("x-gray-tag", "internal-test")],
                Expect::Versions(&[("v1", 10)], 0),
            ),
            to("everyone else", 20, &[], Expect::Versions(&[("v1", 20)], 0)),
        ],
        mirrored: None,
    },
    Step {
        name: "external-gray",
        title: "external gray: chosen users, a region and iOS 3.x reach v2",
        about: "examples/gateway/stage-2-external-gray.yaml (seed 002-04)",
        yaml: include_str!("../../../examples/gateway/stage-2-external-gray.yaml"),
        traffic: &[
            to(
                "x-user-id: 1230 (ends in 0)",
                10,
                &[("x-user-id", "1230")],
                Expect::Versions(&[("v2", 10)], 0),
            ),
            to(
                "x-user-id: 1231",
                10,
                &[("x-user-id", "1231")],
                Expect::Versions(&[("v1", 10)], 0),
            ),
            to(
                "x-user-region: beijing",
                10,
                &[("x-user-region", "beijing")],
                Expect::Versions(&[("v2", 10)], 0),
            ),
            to(
                "iOS 3.2",
                10,
                &[("x-app-platform", "ios"), ("x-app-version", "3.2")],
                Expect::Versions(&[("v2", 10)], 0),
            ),
            to("everyone else", 20, &[], Expect::Versions(&[("v1", 20)], 0)),
        ],
        mirrored: None,
    },
    Step {
        name: "weighted-90-10",
        title: "90/10: the rest split by weight, testers still on v2",
        about: "examples/gateway/stage-3-weighted-90-10.yaml (seed 002-05)",
        yaml: include_str!("../../../examples/gateway/stage-3-weighted-90-10.yaml"),
        traffic: &[
            to(
                "everyone",
                100,
                &[],
                Expect::Versions(&[("v1", 90), ("v2", 10)], 5),
            ),
            to("testers", 10, INTERNAL, Expect::Versions(&[("v2", 10)], 0)),
        ],
        mirrored: None,
    },
    Step {
        name: "full-release",
        title: "full release: all to v2, an ops-only way back to v1",
        about: "examples/gateway/stage-4-full-release.yaml (seed 002-06)",
        yaml: include_str!("../../../examples/gateway/stage-4-full-release.yaml"),
        traffic: &[
            to("everyone", 20, &[], Expect::Versions(&[("v2", 20)], 0)),
            to(
                "ops (x-rollback + x-ops-token)",
                10,
                &[("x-rollback", "v1"), ("x-ops-token", "ops-secret-token")],
                Expect::Versions(&[("v1", 10)], 0),
            ),
        ],
        mirrored: None,
    },
    Step {
        name: "emergency-rollback",
        title: "emergency rollback: 100% back to v1",
        about: "examples/gateway/stage-5-emergency-rollback.yaml (seed 002-07)",
        yaml: include_str!("../../../examples/gateway/stage-5-emergency-rollback.yaml"),
        traffic: &[
            to("everyone", 20, &[], Expect::Versions(&[("v1", 20)], 0)),
            to("testers", 10, INTERNAL, Expect::Versions(&[("v1", 10)], 0)),
        ],
        mirrored: None,
    },
];

/// The running edge demo; dropping it stops every process and removes every namespace.
pub struct Edge {
    gateway: Pod,
    gateway_rt: Runtime,
    client: Pod,
    client_rt: Runtime,
    config_dir: PathBuf,
    _apps: Vec<(App, Pod, Runtime)>,
    _proxy: Process,
    // Last: the node goes after everything that lives in it.
    _node: Node,
}

impl Edge {
    /// Creates the pods, starts myapp v1 and v2 and the gateway, and waits until it is ready.
    pub fn start(bin_dir: &Path) -> anyhow::Result<Edge> {
        let node = Node::new("sluice-demo-edge").context("creating the demo's network")?;
        let gateway = node.pod("gateway")?;
        let client = node.pod("client")?;
        let mut apps = Vec::new();
        for version in ["v1", "v2"] {
            let pod = node.pod(&format!("myapp-{version}"))?;
            let rt = pod.runtime()?;
            let app = rt
                .block_on(rt.spawn(async move {
                    let listener = tokio::net::TcpListener::bind(("0.0.0.0", 80)).await?;
                    anyhow::Ok(App::serve(listener, "myapp", version))
                }))?
                .with_context(|| format!("starting myapp {version}"))?;
            apps.push((app, pod, rt));
        }
        println!("pods (network namespaces on one bridge):");
        println!(
            "  gateway     {:<12} sluice-proxy --mode gateway (uid 1337, port 80)",
            gateway.ipv4
        );
        println!(
            "  client      {:<12} sends requests for {HOST} to the gateway",
            client.ipv4
        );
        for (_, pod, _) in &apps {
            println!("  {:<11} {:<12} myapp", pod.name, pod.ipv4);
        }
        println!();
        let config_dir = std::env::temp_dir().join(format!("{}-config", gateway.netns));
        std::fs::create_dir_all(&config_dir)?;
        let entry = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: myapp, namespace: production}}\nspec:\n  hosts: [myapp.production.svc.cluster.local]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n  - {{address: {}, labels: {{version: v1}}}}\n  - {{address: {}, labels: {{version: v2}}}}\n",
            apps[0].1.ipv4, apps[1].1.ipv4
        );
        std::fs::write(
            config_dir.join("base.yaml"),
            [GATEWAY, DESTINATION_RULE, &entry].join("\n---\n"),
        )?;
        let sysctl = gateway
            .command("sysctl")
            .args(["-qw", "net.ipv4.ip_unprivileged_port_start=0"])
            .status()?;
        ensure!(
            sysctl.success(),
            "sysctl net.ipv4.ip_unprivileged_port_start=0 failed"
        );
        let mut cmd = gateway.command_as(1337, 1337, bin_dir.join("sluice-proxy"));
        cmd.args([
            "--mode",
            "gateway",
            "--namespace",
            "istio-system",
            "--labels",
            "istio=ingressgateway",
            "--config",
        ])
        .arg(&config_dir);
        let proxy = gateway.spawn(cmd)?;
        let edge = Edge {
            gateway_rt: gateway.runtime()?,
            gateway,
            client_rt: client.runtime()?,
            client,
            config_dir,
            _apps: apps,
            _proxy: proxy,
            _node: node,
        };
        let deadline = Instant::now() + WAIT;
        while !matches!(edge.admin("/healthz/ready", 15021), Ok((200, _))) {
            ensure!(
                Instant::now() < deadline,
                "the gateway did not become ready within {WAIT:?}"
            );
            ensure!(!super::stopping(), "stopped");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(edge)
    }

    /// Applies a stage live, sends its traffic through the gateway and reports.
    pub fn run_step(&self, step: &Step) -> anyhow::Result<bool> {
        report::about(step);
        self.apply(step.yaml)?;
        let mut ok = true;
        for traffic in step.traffic {
            let tally = self.send(traffic)?;
            ok &= report::tally(traffic, &tally);
        }
        Ok(ok)
    }

    fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        live::apply(&self.config_dir, "vs.yaml", yaml, "the gateway", || {
            self.status()
        })
    }

    fn status(&self) -> anyhow::Result<Value> {
        let (code, body) = self.admin("/config_dump", 15000)?;
        ensure!(code == 200, "admin /config_dump answered {code}");
        Ok(serde_json::from_slice::<Value>(&body)?["status"].clone())
    }

    fn admin(&self, path: &str, port: u16) -> anyhow::Result<(u16, Bytes)> {
        request::get(
            &self.gateway_rt,
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            "localhost",
            path,
            &[],
        )
    }

    fn send(&self, traffic: &Traffic) -> anyhow::Result<Tally> {
        let at = SocketAddr::from((self.gateway.ipv4, 80));
        let mut tally = Tally::default();
        for _ in 0..traffic.requests {
            ensure!(!super::stopping(), "stopped");
            let (status, body) = request::get(&self.client_rt, at, HOST, "/", traffic.headers)?;
            tally.record(status, &body);
        }
        Ok(tally)
    }

    /// The client pod (for `--keep` instructions).
    pub fn client(&self) -> &Pod {
        &self.client
    }

    /// The gateway's address.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        self.gateway.ipv4
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config_dir);
    }
}
