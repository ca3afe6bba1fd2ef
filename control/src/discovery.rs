//! Discovery: the Kubernetes objects the control plane watches, turned into the mesh
//! config a proxy compiles, with Istio's semantics.
//!
//! The core is pure: the [`watch`]ers hand it objects, it returns
//! [`Resource`](sluice_api::Resource)s and diagnostics, published as versions through
//! [`state`], and [`view::view`] picks the part one proxy needs, which the proxy
//! compiles with `Model::compile` as in local mode. One bad object is reported and left
//! out; it never blocks the rest.

#[cfg(test)]
mod fixtures;
pub mod istio_objects;
pub mod state;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod translate;
pub mod view;
pub mod watch;

use std::sync::Arc;

use sluice_api::Origin;

/// The origin of a resource made from the Kubernetes object `kind namespace/name`: its
/// "file" names the object, so diagnostics point at it and no two objects share an origin.
pub fn origin(kind: &str, namespace: &str, name: &str) -> Origin {
    Origin {
        file: Arc::from(format!("kubernetes {kind} {namespace}/{name}")),
        doc: 1,
        item: None,
    }
}
