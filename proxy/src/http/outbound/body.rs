//! The body policy of a forwarded request: read whole when small (so retries can resend it),
//! else streamed, and copied to the rule's mirrors this request is sampled for.

use std::sync::Arc;

use http::request::Parts;
use hyper::body::Incoming;
use hyper::{Request, Response};
use sluice_api::model::routes::{HttpRule, Target};

use super::head::Head;
use super::{Outbound, sampled};
use crate::config::Snapshot;
use crate::http::retry::RequestBody;
use crate::http::route::strip_port;
use crate::http::timed::BodyTimeout;
use crate::http::{Body, Version, forward, full, mirror, respond};

impl Outbound {
    /// The request body as retries and mirrors need it; a body that cannot be read is answered
    /// with 400.
    pub(super) async fn body(
        &self,
        snap: &Arc<Snapshot>,
        rule: Option<&HttpRule>,
        parts: &Parts,
        head: &Head,
        body: Incoming,
    ) -> Result<RequestBody, Response<Body>> {
        let timeout = parts.extensions.get::<BodyTimeout>().copied();
        let mut body = RequestBody::prepare(body, timeout)
            .await
            .map_err(|e| respond::text(400, format!("sluice: reading the request body: {e}\n")))?;
        if let Some(rule) = rule {
            self.mirror(snap, rule, parts, head, &mut body);
        }
        Ok(body)
    }

    /// Sends copies to the rule's mirrors that this request is sampled for.
    fn mirror(
        &self,
        snap: &Arc<Snapshot>,
        rule: &HttpRule,
        parts: &Parts,
        head: &Head,
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
            RequestBody::Replayable(bytes) => chosen.iter().map(|_| full(bytes.clone())).collect(),
            RequestBody::Streaming(_) => {
                let Some(main) = body.take() else { return };
                let (main, copies) = mirror::tee(main, chosen.len());
                *body = RequestBody::Streaming(main);
                copies
            }
            RequestBody::Sent => return,
        };
        let shadow = shadow_authority(&head.authority, &snap.model.mesh.mirror_authority_suffix);
        for (target, copy) in chosen.into_iter().zip(copies) {
            let head = forward::head(
                parts.method.clone(),
                forward::host(&shadow),
                head.path.clone(),
                parts.headers.clone(),
                Version::Http1,
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
}

/// The authority of a mirrored request: the host with the suffix, as Istio
/// does (`catalog:80` becomes `catalog-shadow:80`).
fn shadow_authority(authority: &str, suffix: &str) -> String {
    let host = strip_port(authority);
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
