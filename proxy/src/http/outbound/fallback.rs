//! Fallback of an empty subset: a request routed to a subset with no healthy endpoint (none
//! exist, or outlier detection ejected them all) goes to the fallback subset its host's
//! ReleasePolicy names, marked by a response header and counted. Opt-in per subset; a
//! weight-0 destination is still never picked.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{HeaderName, HeaderValue};
use sluice_api::model::routes::Target;

use crate::Sidecar;
use crate::config::Snapshot;
use crate::destination;
use crate::error::ProxyError;
use crate::metrics::FallbackLabels;

/// A fallback taken: where the request goes instead, and how the answer is marked.
pub(super) struct FellBack<'s> {
    /// The fallback target (the route's port kept).
    pub target: Cow<'s, Target>,
    /// The marking response header.
    pub header: HeaderName,
    /// Its value, `FROM->TO`.
    pub value: HeaderValue,
}

/// The fallback of `target` for a request sent to `dst`, when its host's ReleasePolicy
/// names one for its subset and that subset has no healthy endpoint; counted.
pub(super) fn choose<'s>(
    sidecar: &Sidecar,
    snap: &'s Snapshot,
    target: &Target,
    dst: SocketAddr,
) -> Option<FellBack<'s>> {
    let from = target.subset_name.as_deref()?;
    let plan = snap.model.releases.get(&target.host)?.fallback.as_ref()?;
    let to = plan.of(from)?;
    if !empty(sidecar, snap, target, dst) {
        return None;
    }
    let to_name = to.subset_name.clone().unwrap_or_default();
    sidecar.metrics.fallback(FallbackLabels {
        destination_service: target.host.clone(),
        from_subset: from.to_string(),
        to_subset: to_name.clone(),
    });
    tracing::debug!(host = %target.host, from, to = %to_name, "subset without healthy endpoints: falling back");
    let target = if to.port == target.port {
        Cow::Borrowed(to)
    } else {
        Cow::Owned(Target {
            port: target.port,
            ..to.clone()
        })
    };
    Some(FellBack {
        target,
        header: HeaderName::from_bytes(plan.header.as_bytes()).ok()?,
        value: HeaderValue::from_str(&format!("{from}->{to_name}")).ok()?,
    })
}

/// True when `target` has no endpoint, or outlier detection ejected them all.
fn empty(sidecar: &Sidecar, snap: &Snapshot, target: &Target, dst: SocketAddr) -> bool {
    match destination::resolve(snap, target, dst) {
        Ok(dest) => !dest.has_healthy(sidecar),
        Err(e) => matches!(e, ProxyError::NoEndpoints(_)),
    }
}
