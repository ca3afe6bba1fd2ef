//! A meshed client pod for the proxy's end-to-end tests: sluice-init's real
//! iptables rules and the real sluice-proxy (as uid 1337) in the client pod,
//! and apps in pods of their own behind VIPs declared by ServiceEntries.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_e2e::apps::{self, AppId, HttpServer, Seen};
use sluice_e2e::{Node, Pod, Process, binary, eventually};
use tokio::runtime::Runtime;

pub const TIMEOUT: Duration = Duration::from_secs(20);
/// The catalog service's VIP.
pub const CATALOG_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// Files under the repository's `examples/seeds`.
pub fn seed(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/seeds")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading seed {}: {e}", path.display()))
}

/// A ServiceEntry for `host` at `vip:80` (HTTP unless `protocol` says otherwise)
/// whose endpoints are pods (address, labels), the app listening on `port`.
pub fn service_entry(
    host: &str,
    vip: Ipv4Addr,
    port_name: &str,
    port: u16,
    endpoints: &[(IpAddr, &str)],
) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(ip, version)| format!("  - {{address: {ip}, ports: {{{port_name}: {port}}}, labels: {{version: {version}}}}}"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  addresses: [{vip}]\n  ports: [{{number: 80, name: {port_name}}}]\n  resolution: STATIC\n  location: MESH_INTERNAL\n  endpoints:\n{}\n---\n",
        eps.join("\n")
    )
}

/// A DestinationRule with one subset per (name, version label).
pub fn destination_rule(host: &str, subsets: &[(&str, &str)]) -> String {
    let subsets: Vec<String> = subsets
        .iter()
        .map(|(n, v)| format!("  - {{name: {n}, labels: {{version: {v}}}}}"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  subsets:\n{}\n---\n",
        subsets.join("\n")
    )
}

/// A config directory, removed on drop.
pub struct ConfigDir(pub PathBuf);

impl ConfigDir {
    fn new(name: &str) -> ConfigDir {
        let dir = std::env::temp_dir().join(format!("sluice-e2e-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ConfigDir(dir)
    }

    /// Replaces the mesh config atomically (write aside, rename), as a
    /// config-map update would.
    pub fn write(&self, yaml: &str) {
        let tmp = self.0.join(".mesh.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.0.join("mesh.yaml")).unwrap();
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An HTTP app in a pod of its own.
pub struct App {
    pub pod: Pod,
    pub server: HttpServer,
    _runtime: Runtime,
}

impl App {
    pub fn seen(&self) -> Vec<Seen> {
        self.server.log().seen()
    }
}

/// Starts the echo app `name-version` on `[::]:port` in a new pod.
pub fn http_app(
    node: &Node,
    pod: &str,
    name: &str,
    version: &str,
    port: u16,
) -> anyhow::Result<App> {
    let pod = node.pod(pod)?;
    let runtime = pod.runtime()?;
    let id = AppId::new(name, version);
    let server = runtime.block_on(runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind(("::", port)).await?;
        apps::serve_http(listener, id)
    }))??;
    Ok(App {
        pod,
        server,
        _runtime: runtime,
    })
}

/// How sluice-init captures the meshed pod's inbound traffic (`--mode` of both binaries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Capture {
    /// NAT REDIRECT; the proxy runs as uid 1337.
    #[default]
    Redirect,
    /// mangle TPROXY; the proxy runs as uid 1337 with CAP_NET_ADMIN (for IP_TRANSPARENT), as
    /// injection sets it up in this mode.
    Tproxy,
}

impl Capture {
    fn mode(self) -> &'static str {
        match self {
            Capture::Redirect => "redirect",
            Capture::Tproxy => "tproxy",
        }
    }
}

/// Where the proxy's config comes from.
enum Source<'a> {
    /// A mesh config file (YAML), watched.
    Files(&'a str),
    /// The control plane's discovery stream at this URL.
    Discovery(&'a str),
}

/// The client pod with sluice-init applied and sluice-proxy running.
pub struct Mesh {
    pub client: Pod,
    pub config: ConfigDir,
    pub proxy: Process,
    pub runtime: Runtime,
}

impl Mesh {
    /// Makes the client pod, captures its traffic, starts the proxy on `yaml`
    /// and waits until it is ready.
    pub fn start(node: &Node, yaml: &str, extra_args: &[&str]) -> anyhow::Result<Mesh> {
        Mesh::start_with_hosts(node, yaml, extra_args, &[])
    }

    /// Like [`Mesh::start`], with these `/etc/hosts` entries in the client pod
    /// (which the proxy's resolver reads at start).
    pub fn start_with_hosts(
        node: &Node,
        yaml: &str,
        extra_args: &[&str],
        hosts: &[(IpAddr, &str)],
    ) -> anyhow::Result<Mesh> {
        Mesh::start_captured(node, yaml, extra_args, hosts, Capture::Redirect)
    }

    /// Like [`Mesh::start_with_hosts`], with inbound traffic captured by `capture`.
    pub fn start_captured(
        node: &Node,
        yaml: &str,
        extra_args: &[&str],
        hosts: &[(IpAddr, &str)],
        capture: Capture,
    ) -> anyhow::Result<Mesh> {
        Mesh::start_from(node, Source::Files(yaml), extra_args, hosts, capture, None)
    }

    /// Like [`Mesh::start`], the proxy allowed at most `nofile` open file descriptors.
    pub fn start_with_fd_limit(node: &Node, yaml: &str, nofile: u32) -> anyhow::Result<Mesh> {
        let capture = Capture::Redirect;
        Mesh::start_from(node, Source::Files(yaml), &[], &[], capture, Some(nofile))
    }

    /// Like [`Mesh::start_with_hosts`], the config streamed from the control plane at
    /// `url`; the proxy says it is pod `client` of namespace `default`.
    pub fn start_discovery(
        node: &Node,
        url: &str,
        hosts: &[(IpAddr, &str)],
    ) -> anyhow::Result<Mesh> {
        Mesh::start_from(
            node,
            Source::Discovery(url),
            &[],
            hosts,
            Capture::Redirect,
            None,
        )
    }

    fn start_from(
        node: &Node,
        source: Source,
        extra_args: &[&str],
        hosts: &[(IpAddr, &str)],
        capture: Capture,
        nofile: Option<u32>,
    ) -> anyhow::Result<Mesh> {
        let client = node.pod("client")?;
        client.set_hosts(hosts)?;
        let config = ConfigDir::new(&client.netns);
        let init = client
            .command(binary("sluice-init"))
            .args(["--mode", capture.mode()])
            .output()?;
        ensure!(
            init.status.success(),
            "sluice-init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let mut cmd = match (capture, nofile) {
            (Capture::Redirect, None) => client.command_as(1337, 1337, binary("sluice-proxy")),
            // prlimit lowers its own limit (no privilege needed), then runs the proxy.
            (Capture::Redirect, Some(nofile)) => {
                let mut cmd = client.command_as(1337, 1337, "prlimit");
                cmd.arg(format!("--nofile={nofile}:{nofile}"))
                    .arg(binary("sluice-proxy"));
                cmd
            }
            (Capture::Tproxy, _) => {
                // Ambient, so the capability survives the change to uid 1337 and the exec.
                let mut cmd = client.command("setpriv");
                cmd.args([
                    "--reuid=1337",
                    "--regid=1337",
                    "--clear-groups",
                    "--inh-caps=+net_admin",
                    "--ambient-caps=+net_admin",
                    "--",
                ])
                .arg(binary("sluice-proxy"));
                cmd
            }
        };
        match source {
            Source::Files(yaml) => {
                config.write(yaml);
                cmd.arg("--config").arg(&config.0);
            }
            Source::Discovery(url) => {
                cmd.args(["--discovery", url, "--namespace", "default", "--pod-name"])
                    .arg(&client.name)
                    .arg("--pod-ip")
                    .arg(client.ipv4.to_string());
            }
        }
        cmd.args([
            "--mode",
            capture.mode(),
            "--labels",
            "app=client,version=v1",
            "--log-level",
            "info,sluice_proxy=debug",
        ]);
        cmd.args(extra_args);
        let proxy = client.spawn(cmd)?;
        let runtime = client.runtime()?;
        let mesh = Mesh {
            client,
            config,
            proxy,
            runtime,
        };
        eventually("the proxy to be ready", TIMEOUT, || {
            let (status, body) = mesh.curl_local(15021, "/healthz/ready")?;
            ensure!(status == 200, "{status} {body}");
            Ok(())
        })
        .with_context(|| format!("proxy log:\n{}", mesh.proxy.stderr()))?;
        Ok(mesh)
    }

    /// GET on one of the proxy's own ports, from inside the pod, with curl.
    pub fn curl_local(&self, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
        self.local("GET", port, path)
    }

    /// `curl -X POST` to a port of the client pod's proxy: (status, body).
    pub fn post_local(&self, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
        self.local("POST", port, path)
    }

    fn local(&self, method: &str, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
        let out = self
            .client
            .command("curl")
            .args(["-s", "--globoff", "--max-time", "5", "-w", "\n%{http_code}"])
            .args(["-X", method])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()?;
        let text = String::from_utf8(out.stdout)?;
        let (body, code) = text.rsplit_once('\n').context("no status")?;
        Ok((code.parse()?, body.to_string()))
    }

    /// The proxy's config dump.
    pub fn config_dump(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.curl_local(15000, "/config_dump")?;
        ensure!(status == 200, "config_dump: {status}");
        Ok(serde_json::from_str(&body)?)
    }

    /// The config version in force.
    pub fn config_version(&self) -> anyhow::Result<u64> {
        self.config_dump()?["status"]["version"]
            .as_u64()
            .context("no version")
    }

    /// Rewrites the config and waits until the proxy has reacted (a new
    /// version, or a reported error).
    pub fn reconfigure(&self, yaml: &str) -> anyhow::Result<()> {
        let before = self.config_dump()?;
        self.config.write(yaml);
        eventually("the proxy to take the new config", TIMEOUT, || {
            let now = self.config_dump()?;
            ensure!(now["status"] != before["status"], "status unchanged");
            Ok(())
        })
    }

    /// curl from the client app (captured), with `extra` flags.
    pub fn curl(&self, url: &str, extra: &[&str]) -> anyhow::Result<CurlReply> {
        curl(&self.client, url, extra)
    }

    /// Runs `f` (an async block making connections) on the client pod's runtime.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        self.runtime
            .block_on(self.runtime.spawn(f))
            .expect("client task")
    }
}

/// curl from `pod`, with `extra` flags.
pub fn curl(pod: &Pod, url: &str, extra: &[&str]) -> anyhow::Result<CurlReply> {
    let out = pod
        .command("curl")
        .args(["--silent", "--show-error", "--include", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()?;
    ensure!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let app = head
        .lines()
        .find_map(|l| l.strip_prefix("x-app: "))
        .unwrap_or("")
        .to_string();
    Ok(CurlReply {
        status,
        app,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// A curl answer.
#[derive(Debug)]
pub struct CurlReply {
    pub status: u16,
    pub app: String,
    pub head: String,
    pub body: String,
}

impl CurlReply {
    pub fn seen(&self) -> Seen {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// An HTTP/2 (prior knowledge) connection from the client pod to `addr`.
pub async fn h2_connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An HTTP/1.1 keep-alive connection from the client pod to `addr`.
pub async fn h1_connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The `x-app` of an answer to GET `uri` (with `host`), and its status.
pub async fn h1_get(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    sender.ready().await?;
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    answer(resp).await
}

/// The `x-app` of an answer to GET `uri` on an HTTP/2 connection, and its status.
pub async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    uri: &str,
) -> anyhow::Result<(u16, String)> {
    let req = hyper::Request::get(uri).body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    answer(resp).await
}

async fn answer(resp: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<(u16, String)> {
    let status = resp.status().as_u16();
    let app = resp
        .headers()
        .get("x-app")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    resp.into_body().collect().await?;
    Ok((status, app))
}
