//! Where a TCP or TLS connection goes: the first tcp (or tls, by SNI) rule of
//! the VirtualService that matches, else all endpoints of the service.

use std::borrow::Cow;
use std::net::SocketAddr;

use sluice_api::model::ServiceId;
use sluice_api::model::routes::{L4Rule, Target};

use crate::config::Snapshot;
use crate::route::{candidates, default_target};

/// Routes a connection to `dst` of service `service`, with the SNI for TLS.
pub fn route<'s>(
    snap: &'s Snapshot,
    service: ServiceId,
    dst: SocketAddr,
    sni: Option<&str>,
) -> Cow<'s, Target> {
    let model = &snap.model;
    let svc = model.registry.get(service);
    let by_sni = sni.and_then(|name| {
        candidates(
            name,
            &model.workload.namespace,
            &model.workload.cluster_domain,
        )
        .iter()
        .find_map(|c| model.routes.lookup(c))
    });
    let vhost = by_sni.or_else(|| model.routes.lookup(&svc.host));
    let rules: &[L4Rule] = match (vhost, sni) {
        (Some(v), Some(_)) => &v.tls,
        (Some(v), None) => &v.tcp,
        (None, _) => &[],
    };
    let picked = rules
        .iter()
        .find(|r| r.matches(dst.ip(), dst.port(), sni))
        .and_then(|r| r.route.pick())
        .map(|(t, _, _)| Cow::Borrowed(t));
    picked.unwrap_or_else(|| Cow::Owned(default_target(model, service)))
}
