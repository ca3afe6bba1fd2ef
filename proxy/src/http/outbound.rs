//! Outbound requests: route by the VirtualService, then forward to an endpoint of the chosen
//! destination, with faults, mirrors, retries and the route's timeout; every request is recorded
//! once. Forwarding's steps have modules of their own: [`head`] shaping, the [`body`] policy
//! (replay, mirrors) and the [`attempts`] on endpoints.

mod attempts;
mod body;
mod fallback;
mod head;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::SET_COOKIE;
use http::request::Parts;
use hyper::body::Incoming;
use hyper::{Request, Response};
use sluice_api::mesh_config::OutboundMode;
use sluice_api::model::routes::{HeaderOps, HttpRule, RequestInfo, SubsetRef, Target};

use super::record::{Recorded, Recorder};
use super::route::{self, Action};
use super::{Body, cors, forward, headers, respond};
use crate::Sidecar;
use crate::balance::{HashInput, SessionCookie};
use crate::config::Snapshot;
use crate::destination;
use crate::error::ProxyError;
use crate::gateway::Edge;
use crate::metrics::{self, AccessDetails, Direction, RequestRecord};
use head::{Head, Outgoing};

/// The outbound side of one client connection: where it was going.
#[derive(Clone, Debug)]
pub struct Outbound {
    sidecar: Arc<Sidecar>,
    dst: SocketAddr,
    peer: SocketAddr,
    router: Router,
}

/// How the requests of a connection find their route.
#[derive(Clone, Debug)]
enum Router {
    /// A sidecar's: by the authority and the original destination.
    Sidecar,
    /// An edge gateway's: by the Gateway servers of the port the client connected to.
    Edge(Arc<Edge>),
}

/// What a forwarded request needs besides the request itself.
struct Route<'s> {
    rule: Option<&'s HttpRule>,
    matched_prefix: Option<&'s str>,
    target: &'s Target,
    target_headers: Option<&'s HeaderOps>,
}

/// A client's request on its way upstream: its head, its body, and the authority it was
/// routed by.
struct ClientRequest {
    parts: Parts,
    body: Incoming,
    authority: String,
}

impl Outbound {
    /// The handler for requests of a connection from `peer` to `dst`.
    pub fn new(sidecar: Arc<Sidecar>, dst: SocketAddr, peer: SocketAddr) -> Outbound {
        Outbound {
            sidecar,
            dst,
            peer,
            router: Router::Sidecar,
        }
    }

    /// The handler for requests of a gateway's client connection from `peer` to its port at
    /// `local`.
    pub fn edge(
        sidecar: Arc<Sidecar>,
        local: SocketAddr,
        peer: SocketAddr,
        edge: Arc<Edge>,
    ) -> Outbound {
        Outbound {
            sidecar,
            dst: local,
            peer,
            router: Router::Edge(edge),
        }
    }

    /// Answers one request.
    pub async fn handle(mut self, mut req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let current = self.sidecar.store.current();
        // The one place an edge request is prepared before routing (forwarding headers,
        // request id, protected gray headers); the client address it returns stands in for
        // the peer from here on.
        match (&self.router, &current) {
            (Router::Edge(edge), _) => {
                self.peer = edge.prepare(req.headers_mut(), self.peer);
                if let Some(snap) = &current {
                    snap.guards
                        .apply(&snap.model, edge.port(), req.headers_mut(), self.peer.ip());
                }
            }
            // A request the app sends while serving one that entered the pod carries that
            // request's propagated headers (correlated by trace context), before routing.
            (Router::Sidecar, Some(snap)) => {
                if let Some(propagation) = &snap.model.mesh.propagation {
                    self.sidecar
                        .propagation
                        .apply(propagation, req.headers_mut());
                }
            }
            (Router::Sidecar, None) => {}
        }
        let authority = forward::authority(req.uri(), req.headers())
            .map_or_else(|| self.dst.to_string(), str::to_string);
        let mut record = self.record(&req, current.as_deref());
        let grpc = respond::is_grpc(req.headers());
        let resp = match current {
            Some(snap) => self.route(&snap, req, authority, &mut record, grpc).await,
            None => respond::error(&ProxyError::NotReady, grpc),
        };
        record.response_code = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = Recorded::new(
            body,
            Recorder::new(self.sidecar.metrics.clone(), record, started),
        );
        Response::from_parts(parts, Body::new(body))
    }

    async fn route(
        &self,
        snap: &Arc<Snapshot>,
        req: Request<Incoming>,
        authority: String,
        record: &mut RequestRecord,
        grpc: bool,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let info = RequestInfo {
            method: parts.method.as_str(),
            scheme: match &self.router {
                Router::Sidecar => "http",
                Router::Edge(edge) => edge.scheme(),
            },
            authority: &authority,
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            port: self.dst.port(),
            headers: &parts.headers,
        };
        let client = Some(self.peer.ip());
        let routed = match &self.router {
            Router::Sidecar => route::route_from(&snap.model, &info, self.dst, client),
            Router::Edge(edge) => edge.route(&snap.model, &info, client),
        };
        record.set_route(routed.rule.and_then(|r| r.name.as_deref()));
        if let Action::Forward { target, .. } = &routed.action
            && let Some(release) = snap.model.releases.get(&target.host)
        {
            record.set_release_headers(&release.access_log_headers, &parts.headers);
        }
        let cors_policy = routed.rule.and_then(|r| r.cors.as_ref());
        let cors_origin = match cors_policy.map(|c| cors::decide(c, &parts.method, &parts.headers))
        {
            Some(cors::Decision::Answer(preflight)) => return preflight,
            Some(cors::Decision::Allow(origin)) => Some(origin),
            Some(cors::Decision::Pass) | None => None,
        };
        let mut resp = match routed.action {
            Action::Respond { status, body } => respond::text(status, body),
            Action::Redirect { location, code } => respond::redirect(&location, code),
            Action::Fail(err) => self.fail(snap, err, record, grpc),
            Action::Forward { target, headers } => {
                let route = Route {
                    rule: routed.rule,
                    matched_prefix: routed.matched_prefix,
                    target: &target,
                    target_headers: headers,
                };
                let req = ClientRequest {
                    parts,
                    body,
                    authority,
                };
                self.forward(snap, route, req, record, grpc).await
            }
        };
        if let Some(rule) = routed.rule {
            headers::apply(&rule.response_headers, resp.headers_mut());
        }
        if let Some(cookie) = routed.set_cookie {
            resp.headers_mut().append(SET_COOKIE, cookie);
        }
        if let (Some(policy), Some(origin)) = (cors_policy, cors_origin) {
            cors::allow(policy, origin, resp.headers_mut());
        }
        resp
    }

    fn fail(
        &self,
        snap: &Snapshot,
        err: ProxyError,
        record: &mut RequestRecord,
        grpc: bool,
    ) -> Response<Body> {
        if matches!(err, ProxyError::UnknownDestination(_))
            && snap.model.mesh.outbound == OutboundMode::RegistryOnly
        {
            self.sidecar.metrics.refused("http");
        }
        tracing::debug!(dst = %self.dst, "{err}");
        record.set_error(&err);
        match self.router {
            // The edge's callers are outside the mesh: no internal names in the answer.
            Router::Edge(_) => respond::remote_error(&err, grpc),
            Router::Sidecar => respond::error(&err, grpc),
        }
    }

    /// Forwards a request along its route: resolve the destination, apply the rule's fault,
    /// shape the head, settle the body, try endpoints, answer. Each step may answer instead.
    async fn forward(
        &self,
        snap: &Arc<Snapshot>,
        route: Route<'_>,
        req: ClientRequest,
        record: &mut RequestRecord,
        grpc: bool,
    ) -> Response<Body> {
        let ClientRequest {
            mut parts,
            body,
            authority,
        } = req;
        let fell_back = fallback::choose(&self.sidecar, snap, route.target, self.dst);
        let target = fell_back.as_ref().map_or(route.target, |f| &*f.target);
        let id = &self.sidecar.identity;
        let dest = match destination::resolve(snap, target, self.dst) {
            Ok(d) => d,
            Err(e) => {
                record.series = self.sidecar.metrics.series(
                    Direction::Outbound,
                    (&id.workload, &id.namespace),
                    &target.host,
                    target.subset_name.as_deref().unwrap_or_default(),
                    "",
                );
                return self.fail(snap, e, record, grpc);
            }
        };
        record.series = self.sidecar.metrics.outbound(dest.cluster, id);
        if let Some(resp) = fault(route.rule).await {
            return resp;
        }
        let head = Head::shape(&route, authority, &mut parts);
        let body = self.body(snap, route.rule, &parts, &head, body);
        let version = forward::version(dest.protocol, parts.version, head.upgrade, dest.settings);
        let request = Outgoing::new(&parts, head.host, head.path, version);
        let session = SessionCookie::generate(
            &dest.settings.load_balancer,
            &parts.headers,
            self.peer,
            self.dst,
        );
        let hash = HashInput {
            headers: Some(&parts.headers),
            query: parts.uri.query().unwrap_or(""),
            source: Some(self.peer.ip()),
            generated_cookie: session.as_ref().map(|s| s.value.as_str()),
        };
        match self
            .send(snap, &dest, route.rule, &request, &hash, body)
            .await
        {
            Ok((resp, endpoint)) => {
                record.set_upstream(endpoint.addr);
                record.endpoint_labels = endpoint.labels;
                let mut resp = forward::response(resp, parts.version, head.client_upgrade);
                if let Some(cookie) = session {
                    resp.headers_mut().append(SET_COOKIE, cookie.set_cookie);
                }
                if let Some(f) = fell_back {
                    resp.headers_mut().insert(f.header, f.value);
                }
                resp
            }
            Err(e) => self.fail(snap, e, record, grpc),
        }
    }

    /// The request's record, labelled before routing with the service the original
    /// destination belongs to, or the fixed label of an unknown destination (never the
    /// address: labels come from the config, not from traffic), so a request that fails
    /// before it is routed keeps bounded labels.
    fn record(&self, req: &Request<Incoming>, snap: Option<&Snapshot>) -> RequestRecord {
        let id = &self.sidecar.identity;
        let metrics = &self.sidecar.metrics;
        let source = (id.workload.as_str(), id.namespace.as_str());
        let unknown = |label| metrics.cached(Direction::Outbound, source, label, "");
        let series = match snap {
            Some(snap) => match snap.model.registry.by_destination(self.dst) {
                Some(svc) => match snap.clusters.get(svc, SubsetRef::All, self.dst.port()) {
                    Some(cluster) => metrics.outbound(cluster, id),
                    None => unknown(&snap.model.registry.get(svc).host),
                },
                None => unknown(metrics::unknown_destination(snap.model.mesh.outbound)),
            },
            None => unknown(metrics::BLACK_HOLE),
        };
        let access = metrics.access_log().then(|| {
            let authority = forward::authority(req.uri(), req.headers());
            AccessDetails::of(req, authority.unwrap_or_default())
        });
        RequestRecord::new(series, access)
    }
}

/// Applies the rule's fault: a delay, then possibly an abort.
async fn fault(rule: Option<&HttpRule>) -> Option<Response<Body>> {
    let fault = rule?.fault.as_ref()?;
    if let Some((delay, percent)) = fault.delay
        && sampled(percent)
    {
        tokio::time::sleep(delay).await;
    }
    let (status, percent) = fault.abort?;
    sampled(percent).then(|| respond::text(status, "fault filter abort\n"))
}

/// True for `percent` of calls (faults, mirrors).
fn sampled(percent: f64) -> bool {
    percent >= 100.0 || fastrand::f64() * 100.0 < percent
}
