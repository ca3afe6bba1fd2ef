//! The app's kubelet probes, rewritten by injection to `GET /app-health/CONTAINER/KIND` on the
//! health port: the original check (`SLUICE_APP_PROBES`) run from inside the pod, where the
//! proxy's own connections are not captured.

mod grpc;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

/// Kubelet's default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The probes of the app, by the path the kubelet now asks for.
#[derive(Clone, Debug, Default)]
pub struct AppProbes {
    checks: BTreeMap<String, Check>,
    /// Where the app is reached: the pod IP (as the kubelet would), else loopback.
    target: Option<IpAddr>,
}

/// One original probe action with its timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What to do.
    pub action: Action,
    /// How long it may take.
    pub timeout: Duration,
}

/// A kubelet probe action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `httpGet`: 200–399 passes.
    Http(HttpGet),
    /// `tcpSocket`: a connection passes.
    Tcp {
        /// The app's port.
        port: u16,
    },
    /// `grpc`: `grpc.health.v1.Health/Check` answering `SERVING` passes.
    Grpc {
        /// The app's port.
        port: u16,
        /// The service name asked about (empty: the server as a whole).
        service: String,
    },
}

/// An `httpGet` action, as the pod spec has it (port resolved to a number).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    /// Request path (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// The app's port.
    pub port: u16,
    /// Host to connect to instead of the pod.
    #[serde(default)]
    pub host: Option<String>,
    /// `HTTP` or `HTTPS` (not verified, as the kubelet does).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub http_headers: Vec<Header>,
}

/// A request header of an `httpGet` probe.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// The JSON form of one entry of `SLUICE_APP_PROBES`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCheck {
    http_get: Option<HttpGet>,
    tcp_socket: Option<RawPort>,
    grpc: Option<RawGrpc>,
    timeout_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct RawPort {
    port: u16,
}

#[derive(Deserialize)]
struct RawGrpc {
    port: u16,
    #[serde(default)]
    service: Option<String>,
}

/// `SLUICE_APP_PROBES` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not the JSON injection writes.
    #[error("SLUICE_APP_PROBES is not a JSON object of path → probe action: {0}")]
    Json(#[from] serde_json::Error),
    /// An entry with no action or more than one.
    #[error(
        "SLUICE_APP_PROBES entry {path:?} needs exactly one of httpGet, tcpSocket or grpc (re-inject the pod)"
    )]
    Action {
        /// The entry.
        path: String,
    },
}

impl AppProbes {
    /// Parses `SLUICE_APP_PROBES` (an empty text is no probes); `target` is the pod IP.
    pub fn parse(json: &str, target: Option<IpAddr>) -> Result<AppProbes, ProbeError> {
        if json.trim().is_empty() {
            return Ok(AppProbes {
                checks: BTreeMap::new(),
                target,
            });
        }
        let raw: BTreeMap<String, RawCheck> = serde_json::from_str(json)?;
        let mut checks = BTreeMap::new();
        for (path, raw) in raw {
            let action = match (raw.http_get, raw.tcp_socket, raw.grpc) {
                (Some(get), None, None) => Action::Http(get),
                (None, Some(tcp), None) => Action::Tcp { port: tcp.port },
                (None, None, Some(g)) => Action::Grpc {
                    port: g.port,
                    service: g.service.unwrap_or_default(),
                },
                _ => return Err(ProbeError::Action { path }),
            };
            let timeout = raw
                .timeout_seconds
                .filter(|s| *s > 0)
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
            checks.insert(path, Check { action, timeout });
        }
        Ok(AppProbes { checks, target })
    }

    /// The probe served at `path`.
    pub fn get(&self, path: &str) -> Option<&Check> {
        self.checks.get(path)
    }

    /// How many probes there are.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// True without probes.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Runs the probe at `path`: None when there is none, else Ok or the reason it failed.
    pub async fn run(&self, path: &str) -> Option<Result<(), String>> {
        let check = self.get(path)?;
        let ip = self.target.unwrap_or(Ipv4Addr::LOCALHOST.into());
        Some(check.run(ip).await)
    }
}

impl Check {
    /// Runs the check against the app at `ip`, within its timeout.
    pub async fn run(&self, ip: IpAddr) -> Result<(), String> {
        let work = async {
            match &self.action {
                Action::Http(get) => http_get(get, ip, self.timeout).await,
                Action::Tcp { port } => connect_app(SocketAddr::new(ip, *port), self.timeout)
                    .await
                    .map(drop)
                    .map_err(|e| format!("tcp probe: {e}")),
                Action::Grpc { port, service } => {
                    grpc::check(SocketAddr::new(ip, *port), service, self.timeout).await
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {:?}", self.timeout)))
    }
}

/// Connects to the app as redirect mode's inbound connections do: from 127.0.0.6, which capture passes by
/// (a connection of the proxy's to its own pod IP would otherwise be captured inbound and
/// accepted by the proxy, so a tcpSocket check would always pass). Like the kubelet's own
/// probes, it does not reach an app listening on loopback only.
pub(crate) async fn connect_app(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    crate::tcp::connect_app(addr, None, timeout)
        .await
        .map_err(|e| e.to_string())
}

async fn http_get(get: &HttpGet, ip: IpAddr, timeout: Duration) -> Result<(), String> {
    let https = get
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let addr = match get.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => tokio::net::lookup_host((host, get.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("cannot resolve probe host {host:?}"))?,
        None => SocketAddr::new(ip, get.port),
    };
    let path = get.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
    let mut req = hyper::Request::get(path);
    let has = |name: &str| {
        get.http_headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        req = req.header(hyper::header::HOST, addr.to_string());
    }
    if !has("user-agent") {
        req = req.header(hyper::header::USER_AGENT, "kube-probe/sluice");
    }
    if !has("accept") {
        req = req.header(hyper::header::ACCEPT, "*/*");
    }
    for h in &get.http_headers {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad probe request: {e}"))?;
    let what = format!(
        "GET {}://{addr}{path}",
        if https { "https" } else { "http" }
    );
    let tcp = if get.host.as_deref().is_some_and(|h| !h.is_empty()) {
        TcpStream::connect(addr).await.map_err(|e| e.to_string())
    } else {
        connect_app(addr, timeout).await
    }
    .map_err(|e| format!("{what}: {e}"))?;
    let status = if https {
        let tls = tls_connector()
            .connect(server_name(get.host.as_deref(), addr.ip()), tcp)
            .await
            .map_err(|e| format!("{what}: TLS: {e}"))?;
        send(TokioIo::new(tls), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
    .map_err(|e| format!("{what}: {e}"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{what}: status {status}"))
    }
}

async fn send<I>(io: I, req: hyper::Request<Empty<Bytes>>) -> Result<u16, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    // The kubelet reads (a bounded part of) the body; read it so the app sees a full exchange.
    let _ = resp.into_body().collect().await;
    Ok(status)
}

/// A TLS client that accepts any certificate, as the kubelet's HTTPS probes do.
fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let skip = sluice_api::istio::destination_rule::ClientTlsSettings {
        insecure_skip_verify: Some(true),
        ..Default::default()
    };
    let verifier = crate::tls::verify::server_verifier(&skip, &provider)
        .expect("skipping verification needs no files");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn server_name(host: Option<&str>, ip: IpAddr) -> rustls::pki_types::ServerName<'static> {
    host.and_then(|h| rustls::pki_types::ServerName::try_from(h.to_string()).ok())
        .unwrap_or_else(|| ip.into())
}

#[cfg(test)]
mod tests;
