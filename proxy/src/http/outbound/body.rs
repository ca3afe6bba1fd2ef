//! The body policy of a forwarded request: streamed upstream behind the retry buffer (see
//! [`RequestBody`]), and copied to the rule's mirrors this request is sampled for.

use std::sync::Arc;

use http::request::Parts;
use hyper::Request;
use hyper::body::{Body as _, Incoming};
use sluice_api::model::routes::{HttpRule, Target};

use super::head::Head;
use super::{Outbound, sampled};
use crate::config::Snapshot;
use crate::http::retry::RequestBody;
use crate::http::route::strip_port;
use crate::http::timed::BodyTimeout;
use crate::http::{Body, Version, empty, forward, incoming, mirror};

impl Outbound {
    /// The request body as the tries read it (streamed, behind the retry buffer), copied to
    /// the rule's mirrors that this request is sampled for.
    pub(super) fn body(
        &self,
        snap: &Arc<Snapshot>,
        rule: Option<&HttpRule>,
        parts: &Parts,
        head: &Head,
        body: Incoming,
    ) -> RequestBody {
        let timeout = parts.extensions.get::<BodyTimeout>().copied();
        let mut source = incoming(body, timeout);
        if let Some(rule) = rule {
            source = self.mirror(snap, rule, parts, head, source);
        }
        RequestBody::new(
            source,
            self.sidecar.gates.limits.retry_buffer_bytes,
            self.sidecar.metrics.retry_buffer_overflows.clone(),
        )
    }

    /// Sends copies to the rule's mirrors that this request is sampled for; the body the
    /// request itself reads on.
    fn mirror(
        &self,
        snap: &Arc<Snapshot>,
        rule: &HttpRule,
        parts: &Parts,
        head: &Head,
        body: Body,
    ) -> Body {
        let chosen: Vec<&Target> = rule
            .mirrors
            .iter()
            .filter(|m| sampled(m.percent))
            .map(|m| &m.target)
            .collect();
        if chosen.is_empty() {
            return body;
        }
        let (body, copies) = if body.is_end_stream() {
            (body, chosen.iter().map(|_| empty()).collect())
        } else {
            mirror::tee(body, chosen.len())
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
        body
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
