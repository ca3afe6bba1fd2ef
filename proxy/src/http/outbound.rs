//! Outbound requests: route by the VirtualService, then forward to an
//! endpoint of the chosen destination, with faults, mirrors, retries and the
//! route's timeout; every request is recorded once.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use http::header::{HOST, SET_COOKIE};
use http::request::Parts;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response};
use sluice_api::mesh_config::OutboundMode;
use sluice_api::model::routes::{HeaderOps, HttpRule, RequestInfo, RetryPolicy, Target};

use super::record::{Recorded, Recorder};
use super::retry::{self, RequestBody};
use super::route::{self, Action};
use super::{Body, Upstream, cors, forward, headers, mirror, respond};
use crate::Sidecar;
use crate::balance::{HashInput, SessionCookie};
use crate::cluster::{Limit, Permit};
use crate::config::Snapshot;
use crate::destination::{self, Destination, Endpoint};
use crate::error::ProxyError;
use crate::metrics::{AccessDetails, Direction, RequestLabels, RequestRecord};

/// The outbound side of one client connection: where it was going.
#[derive(Clone, Debug)]
pub struct Outbound {
    sidecar: Arc<Sidecar>,
    dst: SocketAddr,
    peer: SocketAddr,
}

/// What a forwarded request needs besides the request itself.
struct Route<'s> {
    rule: Option<&'s HttpRule>,
    matched_prefix: Option<&'s str>,
    target: &'s Target,
    target_headers: Option<&'s HeaderOps>,
}

impl Outbound {
    /// The handler for requests of a connection from `peer` to `dst`.
    pub fn new(sidecar: Arc<Sidecar>, dst: SocketAddr, peer: SocketAddr) -> Outbound {
        Outbound { sidecar, dst, peer }
    }

    /// Answers one request.
    pub async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let authority = forward::authority(req.uri(), req.headers())
            .map_or_else(|| self.dst.to_string(), str::to_string);
        let mut record = self.record(&req);
        let grpc = respond::is_grpc(req.headers());
        let resp = match self.sidecar.store.current() {
            Some(snap) => self.route(&snap, req, authority, &mut record, grpc).await,
            None => respond::error(&ProxyError::NotReady, grpc),
        };
        record.labels.response_code = resp.status().as_u16();
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
            scheme: "http",
            authority: &authority,
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            port: self.dst.port(),
            headers: &parts.headers,
        };
        let routed = route::route(&snap.model, &info, self.dst);
        record.set_route(routed.rule.and_then(|r| r.name.as_deref()));
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
                self.forward(snap, route, authority, parts, body, record, grpc)
                    .await
            }
        };
        if let Some(rule) = routed.rule {
            headers::apply(&rule.response_headers, resp.headers_mut());
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
        respond::error(&err, grpc)
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        snap: &Arc<Snapshot>,
        route: Route<'_>,
        authority: String,
        mut parts: Parts,
        body: Incoming,
        record: &mut RequestRecord,
        grpc: bool,
    ) -> Response<Body> {
        record.labels.destination_service = route.target.host.clone();
        record.labels.destination_subset = route.target.subset_name.clone().unwrap_or_default();
        let dest = match destination::resolve(snap, route.target, self.dst) {
            Ok(d) => d,
            Err(e) => return self.fail(snap, e, record, grpc),
        };
        if let Some(resp) = fault(route.rule).await {
            return resp;
        }
        let client_upgrade = parts.extensions.remove::<OnUpgrade>();
        let upgrade = headers::is_upgrade(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Some(rule) = route.rule {
            headers::apply(&rule.request_headers, &mut parts.headers);
        }
        if let Some(ops) = route.target_headers {
            headers::apply(ops, &mut parts.headers);
        }
        let rewrite = route.rule.and_then(|r| r.rewrite.as_ref());
        let authority = rewrite
            .and_then(route::rewrite_authority)
            .map_or(authority, str::to_string);
        // The client's own Host header serves as it is when the authority stays.
        let host = match parts.headers.get(HOST) {
            Some(h) if h.as_bytes() == authority.as_bytes() => Some(h.clone()),
            _ => forward::host(&authority),
        };
        let path = match rewrite {
            Some(rw) => PathAndQuery::try_from(route::rewrite_path(
                rw,
                route.matched_prefix,
                parts.uri.path(),
                parts.uri.query(),
            ))
            .unwrap_or_else(|_| PathAndQuery::from_static("/")),
            None => forward::path(&parts.uri),
        };
        let mut body = match RequestBody::prepare(body).await {
            Ok(b) => b,
            Err(e) => {
                return respond::text(400, format!("sluice: reading the request body: {e}\n"));
            }
        };
        if let Some(rule) = route.rule {
            self.mirror(snap, rule, &parts, &authority, &path, &mut body);
        }
        let version = forward::version(dest.protocol, parts.version, upgrade, dest.settings);
        let request = Outgoing {
            head: forward::head(
                parts.method.clone(),
                host,
                path,
                parts.headers.clone(),
                version,
            ),
            version,
        };
        let retries = route.rule.map_or(&*MESH_DEFAULT_RETRIES, |r| &r.retries);
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
        let attempts = self.attempts(snap, &dest, &request, &hash, body, retries);
        let outcome = match route.rule.and_then(|r| r.timeout) {
            Some(t) => tokio::time::timeout(t, attempts)
                .await
                .unwrap_or(Err(ProxyError::Timeout(t))),
            None => attempts.await,
        };
        match outcome {
            Ok((resp, endpoint)) => {
                record.set_upstream(endpoint.addr);
                record.labels.destination_version = endpoint.version.unwrap_or_default();
                let mut resp = forward::response(resp, parts.version, client_upgrade);
                if let Some(cookie) = session {
                    resp.headers_mut().append(SET_COOKIE, cookie.set_cookie);
                }
                resp
            }
            Err(e) => self.fail(snap, e, record, grpc),
        }
    }

    /// Tries, and retries as the policy and the destination's retry budget
    /// (`maxRetries`) allow, on freshly chosen endpoints.
    async fn attempts(
        &self,
        snap: &Snapshot,
        dest: &Destination<'_>,
        request: &Outgoing,
        hash: &HashInput<'_>,
        mut body: RequestBody,
        retries: &RetryPolicy,
    ) -> Result<(Response<Body>, Endpoint), ProxyError> {
        let connect_timeout = dest.connect_timeout(snap);
        let mut unsent = body.take();
        let mut n = 1;
        let mut retrying: Option<Permit> = None;
        loop {
            let endpoint = dest.pick(&self.sidecar, self.dst, hash).await?;
            let try_body = unsent
                .take()
                .or_else(|| body.take())
                .unwrap_or_else(super::empty);
            let to = Upstream {
                addr: endpoint.addr,
                version: request.version,
                connect_timeout,
                cluster: dest.cluster,
            };
            let sent = self
                .sidecar
                .outbound_pool
                .send(&to, request.build(try_body));
            let result = match retries.per_try_timeout {
                Some(t) => tokio::time::timeout(t, sent).await.unwrap_or_else(|_| {
                    Err(Box::new(super::pool::Failed {
                        error: ProxyError::Timeout(t),
                        request: None,
                    }))
                }),
                None => sent.await,
            };
            // A retry counts against the budget until its answer is in.
            drop(retrying.take());
            let more = n <= retries.attempts;
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            if status.is_some() || matches!(&result, Err(f) if retry::is_endpoint_failure(&f.error))
            {
                dest.record(&self.sidecar, endpoint.addr, status);
            }
            match result {
                Ok(resp)
                    if more && body.replayable() && retry::retry_response(&retries.on, &resp) =>
                {
                    retrying = Some(match self.retry_budget(dest) {
                        Some(p) => p,
                        None => return Ok((resp, endpoint)),
                    });
                    tracing::debug!(upstream = %endpoint.addr, status = %resp.status(), "retrying");
                }
                Ok(resp) => return Ok((resp, endpoint)),
                Err(failed) => {
                    let again = failed.request.map(|r| r.into_body());
                    let can_resend = body.replayable() || again.is_some();
                    if !(more && can_resend && retry::retry_error(&retries.on, &failed.error)) {
                        return Err(failed.error);
                    }
                    retrying = Some(match self.retry_budget(dest) {
                        Some(p) => p,
                        None => return Err(failed.error),
                    });
                    tracing::debug!("retrying after: {}", failed.error);
                    unsent = again.filter(|_| !body.replayable());
                }
            }
            n += 1;
            tokio::time::sleep(retry::backoff(retries.backoff, n)).await;
        }
    }

    /// A place among the destination's retries in flight; `None` (counted)
    /// when `maxRetries` are in flight: then the last answer stands, as in Envoy.
    fn retry_budget(&self, dest: &Destination<'_>) -> Option<Permit> {
        dest.cluster
            .admit(Limit::Retries)
            .inspect_err(|o| {
                tracing::debug!("not retried: {o}");
                self.sidecar.metrics.overflow(&o.cluster, o.limit);
            })
            .ok()
    }

    /// Sends copies to the rule's mirrors that this request is sampled for.
    fn mirror(
        &self,
        snap: &Arc<Snapshot>,
        rule: &HttpRule,
        parts: &Parts,
        authority: &str,
        path: &PathAndQuery,
        body: &mut RequestBody,
    ) {
        let chosen: Vec<&Target> = rule
            .mirrors
            .iter()
            .filter(|m| sampled(m.percent))
            .map(|m| &m.target)
            .collect();
        if chosen.is_empty() {
            return;
        }
        let copies: Vec<Body> = match body {
            RequestBody::Replayable(bytes) => {
                chosen.iter().map(|_| super::full(bytes.clone())).collect()
            }
            RequestBody::Streaming(_) => {
                let Some(main) = body.take() else { return };
                let (main, copies) = mirror::tee(main, chosen.len());
                *body = RequestBody::Streaming(main);
                copies
            }
            RequestBody::Sent => return,
        };
        let shadow = shadow_authority(authority, &snap.model.mesh.mirror_authority_suffix);
        for (target, copy) in chosen.into_iter().zip(copies) {
            let head = forward::head(
                parts.method.clone(),
                forward::host(&shadow),
                path.clone(),
                parts.headers.clone(),
                super::Version::Http1,
            );
            let req = Request::from_parts(head, copy);
            self.sidecar.mirrors.dispatch(
                &self.sidecar,
                snap.clone(),
                target.clone(),
                self.dst,
                parts.version,
                req,
            );
        }
    }

    fn record(&self, req: &Request<Incoming>) -> RequestRecord {
        let id = &self.sidecar.identity;
        RequestRecord {
            labels: RequestLabels {
                direction: Direction::Outbound,
                source_workload: id.workload.clone(),
                source_namespace: id.namespace.clone(),
                destination_service: self.dst.to_string(),
                destination_subset: String::new(),
                destination_version: String::new(),
                response_code: 0,
            },
            access: self.sidecar.metrics.access_log().then(|| {
                let authority = forward::authority(req.uri(), req.headers());
                AccessDetails::of(req, authority.unwrap_or_default())
            }),
        }
    }
}

/// Istio's retry policy, for requests no route with a policy of its own matched.
static MESH_DEFAULT_RETRIES: LazyLock<RetryPolicy> = LazyLock::new(RetryPolicy::mesh_default);

/// The upstream request's head, cloned for each try.
struct Outgoing {
    head: Parts,
    version: super::Version,
}

impl Outgoing {
    fn build(&self, body: Body) -> Request<Body> {
        Request::from_parts(self.head.clone(), body)
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

/// True for `percent` of calls.
fn sampled(percent: f64) -> bool {
    percent >= 100.0 || fastrand::f64() * 100.0 < percent
}

/// The authority of a mirrored request: the host with the suffix, as Istio
/// does (`catalog:80` becomes `catalog-shadow:80`).
pub fn shadow_authority(authority: &str, suffix: &str) -> String {
    let host = route::strip_port(authority);
    format!("{host}{suffix}{}", &authority[host.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_authorities() {
        let cases = [
            ("catalog", "catalog-shadow"),
            ("catalog:80", "catalog-shadow:80"),
            (
                "catalog.shop.svc.cluster.local:8080",
                "catalog.shop.svc.cluster.local-shadow:8080",
            ),
        ];
        for (authority, expected) in cases {
            assert_eq!(shadow_authority(authority, "-shadow"), expected);
        }
    }
}
