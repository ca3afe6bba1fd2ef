//! The edge: the Gateway servers a gateway proxy serves (those whose selector matches its
//! labels), grouped by port, and per Gateway the VirtualServices bound to it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Workload;
use super::registry::Registry;
use super::routes::{Binding, Delegates, RouteTables};
use crate::istio::gateway::{Server, ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::resource::{Resource, Spec};

/// What a gateway proxy serves: listeners by port and routes by Gateway.
#[derive(Debug, Default, Serialize)]
pub struct Edge {
    /// Ports to listen on, each with its servers.
    pub ports: BTreeMap<u16, EdgePort>,
    /// Route tables by Gateway (`namespace/name`).
    pub routes: BTreeMap<String, RouteTables>,
    /// Servers left out (a port's servers must all be plain text or all TLS).
    pub warnings: Vec<String>,
}

/// One listening port.
#[derive(Debug, Serialize)]
pub struct EdgePort {
    /// Plain text (HTTP) or TLS (terminated or passed through).
    pub transport: Transport,
    /// The servers on the port, in the order their Gateways were given.
    pub servers: Vec<EdgeServer>,
}

/// What arrives on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Transport {
    /// HTTP/1.1 or HTTP/2 (prior knowledge) in plain text.
    Plain,
    /// TLS: each connection's server is chosen by SNI.
    Tls,
}

/// One server of a Gateway.
#[derive(Debug, Serialize)]
pub struct EdgeServer {
    /// The Gateway, `namespace/name`.
    pub gateway: String,
    /// The port's name.
    pub port_name: String,
    /// The hosts it accepts.
    pub hosts: Vec<ServerHost>,
    /// Plain-text requests are redirected to `https`.
    pub https_redirect: bool,
    /// TLS settings (TLS ports only).
    pub tls: Option<ServerTls>,
}

/// A server host: which VirtualServices may serve it, and the host pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerHost {
    /// Namespace the VirtualService must be in; `None`: any.
    pub namespace: Option<String>,
    /// `*`, `*.suffix` or an exact name, lower case.
    pub host: String,
}

impl ServerHost {
    /// Parses `ns/host`, `./host` (the Gateway's namespace), `*/host` or `host`.
    pub fn parse(text: &str, gateway_namespace: &str) -> ServerHost {
        let (namespace, host) = match text.split_once('/') {
            Some(("*", host)) => (None, host),
            Some((".", host)) => (Some(gateway_namespace.to_string()), host),
            Some((ns, host)) => (Some(ns.to_string()), host),
            None => (None, text),
        };
        ServerHost {
            namespace,
            host: host.to_ascii_lowercase(),
        }
    }

    /// True when requests for `host` are accepted.
    pub fn accepts(&self, host: &str) -> bool {
        crate::host::matches(&self.host, host)
    }

    /// True when a VirtualService of `namespace` may serve this host.
    pub fn admits_namespace(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}

/// TLS of a server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerTls {
    /// PASSTHROUGH, SIMPLE, MUTUAL...
    pub mode: ServerTlsMode,
    /// Certificate chain file (PEM).
    pub server_certificate: Option<String>,
    /// Private key file (PEM).
    pub private_key: Option<String>,
    /// Client CA certificates file (PEM), for MUTUAL.
    pub ca_certificates: Option<String>,
    /// The Secret with the certificate, in the Gateway's namespace.
    pub credential_name: Option<String>,
    /// Lowest TLS version.
    pub min_version: Option<TlsProtocol>,
    /// Highest TLS version.
    pub max_version: Option<TlsProtocol>,
    /// Allowed cipher suites (empty: the defaults).
    pub cipher_suites: Vec<String>,
}

impl ServerTls {
    fn compile(t: &ServerTlsSettings) -> ServerTls {
        ServerTls {
            mode: t.mode.unwrap_or(ServerTlsMode::Passthrough),
            server_certificate: t.server_certificate.clone(),
            private_key: t.private_key.clone(),
            ca_certificates: t.ca_certificates.clone(),
            credential_name: t.credential_name.clone().filter(|c| !c.is_empty()),
            min_version: t.min_protocol_version,
            max_version: t.max_protocol_version,
            cipher_suites: t.cipher_suites.clone(),
        }
    }

    /// True when TLS is forwarded as it is, by SNI.
    pub fn passes_through(&self) -> bool {
        matches!(
            self.mode,
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        )
    }
}

impl EdgePort {
    /// The servers accepting `host` (the Host header or SNI, without port, lower case), the
    /// most specific host first: exact names before wildcards.
    pub fn servers_for<'p>(&'p self, host: &str) -> Vec<(&'p EdgeServer, &'p ServerHost)> {
        let mut found: Vec<_> = self
            .servers
            .iter()
            .flat_map(|s| s.hosts.iter().map(move |h| (s, h)))
            .filter(|(_, h)| h.accepts(host))
            .collect();
        found.sort_by_key(|(_, h)| std::cmp::Reverse(specificity(&h.host)));
        found
    }
}

/// Exact names first, then longer wildcards.
fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

impl Edge {
    /// True when the Gateway's `selector` selects the workload (an empty selector selects
    /// every gateway, as in Istio).
    pub fn selects(selector: &BTreeMap<String, String>, workload: &Workload) -> bool {
        selector
            .iter()
            .all(|(k, v)| workload.labels.get(k) == Some(v))
    }

    /// Compiles the Gateways that select `workload`, in any namespace (Istio's default,
    /// `PILOT_SCOPE_GATEWAY_TO_NAMESPACE=false`), and the VirtualServices bound to each.
    pub fn build<'a>(
        resources: &'a [Resource],
        delegates: &Delegates<'a>,
        registry: &Registry,
        workload: &Workload,
    ) -> Edge {
        let mut edge = Edge::default();
        for r in resources {
            let Spec::Gateway(gw) = &r.spec else {
                continue;
            };
            if !Edge::selects(&gw.selector, workload) {
                continue;
            }
            let (ns, name) = (r.meta.namespace(), r.meta.name.as_str());
            let key = format!("{ns}/{name}");
            for (i, server) in gw.servers.iter().enumerate() {
                edge.add(&key, ns, server, i);
            }
            let binding = Binding::Gateway {
                namespace: ns,
                name,
            };
            let tables =
                RouteTables::build_bound(resources, delegates, registry, workload, binding);
            edge.routes.insert(key, tables);
        }
        edge
    }

    fn add(&mut self, gateway: &str, ns: &str, server: &Server, index: usize) {
        let Ok(number) = u16::try_from(server.port.number) else {
            return;
        };
        if number == 0 {
            return;
        }
        let protocol = server.port.protocol.to_ascii_uppercase();
        let transport = match protocol.as_str() {
            "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => Transport::Plain,
            "HTTPS" | "TLS" => Transport::Tls,
            _ => {
                self.warnings.push(format!(
                    "Gateway {gateway} spec.servers[{index}]: protocol {} is not served by sluice's gateway; the server is left out",
                    server.port.protocol
                ));
                return;
            }
        };
        let compiled = EdgeServer {
            gateway: gateway.to_string(),
            port_name: server.port.name.clone(),
            hosts: server
                .hosts
                .iter()
                .map(|h| ServerHost::parse(h, ns))
                .collect(),
            https_redirect: server
                .tls
                .as_ref()
                .is_some_and(|t| t.https_redirect == Some(true))
                && transport == Transport::Plain,
            tls: server
                .tls
                .as_ref()
                .filter(|_| transport == Transport::Tls)
                .map(ServerTls::compile),
        };
        let port = self.ports.entry(number).or_insert_with(|| EdgePort {
            transport,
            servers: Vec::new(),
        });
        if port.transport != transport {
            self.warnings.push(format!(
                "Gateway {gateway} spec.servers[{index}]: port {number} is already {} by another server; this {} server is left out",
                if port.transport == Transport::Tls { "TLS" } else { "plain text" },
                server.port.protocol
            ));
            return;
        }
        port.servers.push(compiled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hosts_in_istio_forms() {
        let h = ServerHost::parse("./API.example.com", "edge");
        assert_eq!(h.namespace.as_deref(), Some("edge"));
        assert!(h.accepts("api.example.com"));
        assert!(h.admits_namespace("edge") && !h.admits_namespace("prod"));
        let any = ServerHost::parse("*/*.example.com", "edge");
        assert!(any.accepts("a.example.com") && !any.accepts("example.com"));
        assert!(any.admits_namespace("prod"));
        assert!(ServerHost::parse("*", "edge").accepts("anything.test"));
        let ns = ServerHost::parse("prod/shop.example.com", "edge");
        assert!(ns.admits_namespace("prod") && !ns.admits_namespace("edge"));
    }
}
