//! The attempts of a forwarded request: endpoints picked one after another, retried as the
//! route's policy and the destination's retry budget allow, all within the route's timeout.

use std::sync::LazyLock;

use hyper::Response;
use sluice_api::model::routes::{HttpRule, RetryPolicy};

use super::Outbound;
use super::head::Outgoing;
use crate::balance::HashInput;
use crate::cluster::{Limit, Permit};
use crate::config::Snapshot;
use crate::destination::{Destination, Endpoint};
use crate::error::ProxyError;
use crate::http::pool::Failed;
use crate::http::retry::{self, RequestBody};
use crate::http::{Body, Upstream};

/// Istio's retry policy, for requests no route with a policy of its own matched.
static MESH_DEFAULT_RETRIES: LazyLock<RetryPolicy> = LazyLock::new(RetryPolicy::mesh_default);

impl Outbound {
    /// Sends `request` to endpoints of `dest` as `rule` asks (its retries, else the mesh's, and
    /// its timeout); the answer and the endpoint that gave it.
    pub(super) async fn send(
        &self,
        snap: &Snapshot,
        dest: &Destination<'_>,
        rule: Option<&HttpRule>,
        request: &Outgoing,
        hash: &HashInput<'_>,
        body: RequestBody,
    ) -> Result<(Response<Body>, Endpoint), ProxyError> {
        let retries = rule.map_or(&*MESH_DEFAULT_RETRIES, |r| &r.retries);
        let attempts = self.attempts(snap, dest, request, hash, body, retries);
        match rule.and_then(|r| r.timeout) {
            Some(t) => tokio::time::timeout(t, attempts)
                .await
                .unwrap_or(Err(ProxyError::Timeout(t))),
            None => attempts.await,
        }
    }

    /// Tries, and retries as the policy and the destination's retry budget
    /// (`maxRetries`) allow, on freshly chosen endpoints. A retry sends the body again from
    /// its retry buffer; a body that outgrew it is not retried once it was sent.
    async fn attempts(
        &self,
        snap: &Snapshot,
        dest: &Destination<'_>,
        request: &Outgoing,
        hash: &HashInput<'_>,
        body: RequestBody,
        retries: &RetryPolicy,
    ) -> Result<(Response<Body>, Endpoint), ProxyError> {
        let connect_timeout = dest.connect_timeout(snap);
        let mut try_body = body.first();
        let mut n = 1;
        let mut retrying: Option<Permit> = None;
        // A request the upstream may have acted on is sent again only when it is idempotent.
        let resendable = request.idempotent();
        loop {
            let endpoint = dest.pick(&self.sidecar, self.dst, hash).await?;
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
                    Err(Box::new(Failed {
                        error: ProxyError::Timeout(t),
                        request: None,
                    }))
                }),
                None => sent.await,
            };
            // A retry counts against the budget until its answer is in.
            drop(retrying.take());
            // The client's body failed, not the upstream: no retry, and no mark on the endpoint.
            if let (Err(_), Some(reason)) = (&result, body.failed()) {
                return Err(ProxyError::ClientBody(reason));
            }
            let more = n <= retries.attempts;
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            if status.is_some() || matches!(&result, Err(f) if retry::is_endpoint_failure(&f.error))
            {
                dest.record(&self.sidecar, endpoint.addr, status);
            }
            match result {
                Ok(resp) if more && resendable && retry::retry_response(&retries.on, &resp) => {
                    let Some(permit) = self.retry_budget(dest) else {
                        return Ok((resp, endpoint));
                    };
                    let Some(again) = body.again() else {
                        return Ok((resp, endpoint));
                    };
                    retrying = Some(permit);
                    try_body = again;
                    tracing::debug!(upstream = %endpoint.addr, status = %resp.status(), "retrying");
                }
                Ok(resp) => return Ok((resp, endpoint)),
                Err(failed) => {
                    if !(more && retry::retry_error(&retries.on, &failed.error)) {
                        return Err(failed.error);
                    }
                    // A request that never left goes as it is; one the upstream may have
                    // received, only when idempotent and its body is still kept.
                    let again = match failed.request {
                        Some(unsent) => Some(unsent.into_body()),
                        None if resendable => body.again(),
                        None => None,
                    };
                    let Some(again) = again else {
                        return Err(failed.error);
                    };
                    retrying = Some(match self.retry_budget(dest) {
                        Some(p) => p,
                        None => return Err(failed.error),
                    });
                    try_body = again;
                    tracing::debug!("retrying after: {}", failed.error);
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
}
