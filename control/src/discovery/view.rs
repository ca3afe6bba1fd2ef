//! The part of the mesh config one proxy needs: what its namespace may see, the
//! delegates of the VirtualServices it sees, and the one MeshConfig in force for it.
//!
//! A MeshConfig in the mesh root namespace `sluice-system` applies mesh-wide; one in
//! another namespace applies to that namespace's proxies only, in place of the root one
//! (as a namespace's Sidecar takes the place of the root namespace's in Istio). Within
//! one namespace the first by name applies and [`mesh_config_conflicts`] reports the
//! others. A view so holds at most one MeshConfig, as local mode, where `validate`
//! rejects a second, and `Model::compile`, which takes the first, expect.
//!
//! Where Istio breaks ties by creation time (the first DestinationRule for a host, the
//! first VirtualService...), the order of `resources` decides, and the view keeps it.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use sluice_api::diagnostic::{Diagnostic, Severity};
use sluice_api::istio::virtual_service::Delegate;
use sluice_api::model::Workload;
use sluice_api::{Resource, Spec};

#[cfg(test)]
mod tests;

/// The mesh root namespace: a MeshConfig there applies to every namespace without its own.
pub const ROOT_NAMESPACE: &str = "sluice-system";

/// The resources a proxy running as `workload` compiles, by their positions in
/// `resources`, in order: those its namespace sees ([`Workload::sees`]: `exportTo`, a
/// DestinationRule's `workloadSelector`), the delegate VirtualServices its VirtualServices
/// delegate to (visible from the delegating namespace), and the MeshConfig in force for
/// its namespace.
pub fn view<R: Borrow<Resource>>(resources: &[R], workload: &Workload) -> Vec<usize> {
    let mesh = mesh_config(resources, &workload.namespace);
    let delegations: Vec<(&str, &Delegate)> = resources
        .iter()
        .map(Borrow::borrow)
        .filter(|r| workload.sees(r))
        .filter_map(|r| match &r.spec {
            Spec::VirtualService(vs) if !vs.hosts.is_empty() => Some((r.meta.namespace(), vs)),
            _ => None,
        })
        .flat_map(|(ns, vs)| {
            vs.http
                .iter()
                .filter_map(move |rule| Some((ns, rule.delegate.as_ref()?)))
        })
        .collect();
    let picked = |(at, r): &(usize, &Resource)| match &r.spec {
        Spec::MeshConfig(_) => mesh == Some(*at),
        Spec::VirtualService(vs) if vs.hosts.is_empty() => {
            delegations.iter().any(|(ns, d)| is_delegate(r, ns, d))
        }
        _ => workload.sees(r),
    };
    resources
        .iter()
        .map(Borrow::borrow)
        .enumerate()
        .filter(picked)
        .map(|(at, _)| at)
        .collect()
}

/// True when `d`, in a VirtualService of namespace `ns`, names `r` and `r` is visible there.
fn is_delegate(r: &Resource, ns: &str, d: &Delegate) -> bool {
    d.name == r.meta.name
        && d.namespace.as_deref().unwrap_or(ns) == r.meta.namespace()
        && r.visible_from(ns)
}

/// The position of the MeshConfig in force in `namespace`: its own, else the root
/// namespace's.
fn mesh_config<R: Borrow<Resource>>(resources: &[R], namespace: &str) -> Option<usize> {
    let first_in = |ns: &str| {
        resources
            .iter()
            .map(Borrow::borrow)
            .enumerate()
            .filter(|(_, r)| matches!(r.spec, Spec::MeshConfig(_)) && r.meta.namespace() == ns)
            .min_by(|(_, a), (_, b)| by_name(a, b))
            .map(|(at, _)| at)
    };
    first_in(namespace).or_else(|| first_in(ROOT_NAMESPACE))
}

fn by_name(a: &Resource, b: &Resource) -> Ordering {
    a.meta.name.cmp(&b.meta.name)
}

/// An error for each MeshConfig that never applies: all but the first by name in its
/// namespace.
pub fn mesh_config_conflicts(resources: &[Resource]) -> Vec<Diagnostic> {
    let mut by_namespace: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for r in resources {
        if matches!(r.spec, Spec::MeshConfig(_)) {
            by_namespace.entry(r.meta.namespace()).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for (namespace, mut configs) in by_namespace {
        configs.sort_by(|a, b| by_name(a, b));
        let Some((first, rest)) = configs.split_first() else {
            continue;
        };
        for r in rest {
            out.push(
                Diagnostic::new(
                    Severity::Error,
                    &r.origin,
                    format!(
                        "only one MeshConfig applies in namespace {namespace}: {} does (the first by name), so this one is left out; merge them",
                        first.title()
                    ),
                )
                .subject(r.title()),
            );
        }
    }
    out
}
