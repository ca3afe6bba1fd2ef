//! Which server and VirtualService serve a request at the edge, by Istio's rules: the
//! request's host must be one of a server's `hosts` on the port (for TLS, of the server its
//! SNI chose), and a VirtualService bound to that server's Gateway, from a namespace the
//! server host admits, must claim it. Anything else is a short 404.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use sluice_api::model::Model;
use sluice_api::model::edge::{EdgeServer, Transport};
use sluice_api::model::routes::RequestInfo;

use super::forwarded;
use crate::http::route::{self, Action, Routed};

/// The answer for a host no server or VirtualService serves: it names nothing inside.
pub const NOT_FOUND: &str = "no route for this host\n";

/// The edge side of a client connection: its port, and for TLS the server its SNI chose.
#[derive(Clone, Debug)]
pub struct Edge {
    port: u16,
    /// `(gateway, port name)` of the server chosen at the TLS handshake.
    server: Option<(String, String)>,
    trusted_proxies: u32,
}

impl Edge {
    /// A plain-text connection to `port`.
    pub fn plain(port: u16, trusted_proxies: u32) -> Edge {
        Edge {
            port,
            server: None,
            trusted_proxies,
        }
    }

    /// A TLS connection to `port` terminated for `server`.
    pub fn terminated(port: u16, server: &EdgeServer, trusted_proxies: u32) -> Edge {
        Edge {
            port,
            server: Some((server.gateway.clone(), server.port_name.clone())),
            trusted_proxies,
        }
    }

    /// The port the client connected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https` for terminated TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.server.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Sets the edge headers of a request from `peer`; returns the client's address.
    pub fn prepare(&self, headers: &mut HeaderMap, peer: SocketAddr) -> SocketAddr {
        forwarded::prepare(headers, peer, self.scheme(), self.trusted_proxies)
    }

    /// Routes a request from `client` by the servers of this connection's port.
    pub fn route<'m>(
        &self,
        model: &'m Model,
        req: &RequestInfo<'_>,
        client: Option<IpAddr>,
    ) -> Routed<'m> {
        let Some(port) = model.edge.ports.get(&self.port) else {
            return respond(404, NOT_FOUND);
        };
        let host = route::strip_port(req.authority).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let servers: Vec<_> = port
            .servers_for(host)
            .into_iter()
            .filter(|(s, _)| {
                self.server
                    .as_ref()
                    .is_none_or(|(gw, name)| s.gateway == *gw && s.port_name == *name)
            })
            .collect();
        let Some((first, _)) = servers.first() else {
            tracing::debug!(
                port = self.port,
                host,
                "no server of the port accepts the host"
            );
            return respond(404, NOT_FOUND);
        };
        if port.transport == Transport::Plain && first.https_redirect {
            let path = req.path;
            let location = match req.query {
                "" => format!("https://{host}{path}"),
                q => format!("https://{host}{path}?{q}"),
            };
            return Routed {
                rule: None,
                matched_prefix: None,
                action: Action::Redirect {
                    location,
                    code: 301,
                },
                set_cookie: None,
            };
        }
        for (server, server_host) in servers {
            let Some(vhost) = model
                .edge
                .routes
                .get(&server.gateway)
                .and_then(|t| t.lookup(host))
            else {
                continue;
            };
            let vs_namespace = vhost.name.split_once('/').map_or("", |(ns, _)| ns);
            if server_host.admits_namespace(vs_namespace) {
                return route::by_rules(model, vhost, req, client);
            }
        }
        tracing::debug!(
            port = self.port,
            host,
            "no VirtualService of the servers' Gateways serves the host"
        );
        respond(404, NOT_FOUND)
    }
}

fn respond(status: u16, body: &str) -> Routed<'static> {
    Routed {
        rule: None,
        matched_prefix: None,
        action: Action::Respond {
            status,
            body: body.to_string(),
        },
        set_cookie: None,
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::model::{Role, Workload};

    use super::*;

    const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: prod}
spec:
  hosts: [app.prod.svc.cluster.local]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["prod/shop.example.com", "*/*.wild.test", "./own.example.com"]
  - port: {number: 8080, name: http-redirect, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: prod}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: elsewhere, namespace: prod}
spec:
  selector: {istio: eastwest}
  servers:
  - port: {number: 9000, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: prod}
spec:
  hosts: [shop.example.com, own.example.com, a.wild.test]
  gateways: [istio-system/edge]
  http: [{route: [{destination: {host: app}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: prod}
spec:
  hosts: [both.example.com]
  gateways: [mesh, other]
  http: [{route: [{destination: {host: app}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: meshonly, namespace: prod}
spec:
  hosts: [mesh.example.com]
  http: [{route: [{destination: {host: app}}]}]
"#;

    fn model() -> Model {
        let mut set = sluice_api::load_str("test.yaml", CONFIG);
        sluice_api::validate::validate(&mut set);
        assert!(!set.has_errors(), "{:?}", set.errors().collect::<Vec<_>>());
        let workload = Workload {
            namespace: "istio-system".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
            cluster_domain: Default::default(),
        };
        Model::compile_as(&set.resources, &workload, Role::Gateway)
    }

    fn outcome(model: &Model, port: u16, authority: &str) -> String {
        let headers = HeaderMap::new();
        let req = RequestInfo {
            method: "GET",
            scheme: "http",
            authority,
            path: "/p",
            query: "",
            port,
            headers: &headers,
        };
        match Edge::plain(port, 0).route(model, &req, None).action {
            Action::Forward { target, .. } => format!("-> {}", target.host),
            Action::Respond { status, .. } => status.to_string(),
            Action::Redirect { location, code } => format!("{code} {location}"),
            Action::Fail(e) => format!("fail {e}"),
        }
    }

    #[test]
    fn hosts_gateways_and_namespaces_as_istio() {
        let m = model();
        assert_eq!(
            m.edge.ports.keys().copied().collect::<Vec<_>>(),
            [80, 8080],
            "only Gateways that select the labels"
        );
        let app = "-> app.prod.svc.cluster.local";
        assert_eq!(outcome(&m, 80, "shop.example.com"), app);
        assert_eq!(outcome(&m, 80, "SHOP.example.com:80"), app);
        assert_eq!(outcome(&m, 80, "a.wild.test"), app);
        assert_eq!(
            outcome(&m, 80, "own.example.com"),
            "404",
            "./host admits VirtualServices of the Gateway's namespace only"
        );
        assert_eq!(outcome(&m, 80, "b.wild.test"), "404", "no VirtualService");
        assert_eq!(
            outcome(&m, 80, "both.example.com"),
            app,
            "bound by short name to prod/other, whose * server takes it"
        );
        assert_eq!(outcome(&m, 80, "mesh.example.com"), "404", "mesh only");
        assert_eq!(outcome(&m, 80, "unknown.test"), "404");
        assert_eq!(
            outcome(&m, 8080, "shop.example.com:8080"),
            "301 https://shop.example.com/p"
        );
        assert_eq!(outcome(&m, 9000, "shop.example.com"), "404");
    }
}
