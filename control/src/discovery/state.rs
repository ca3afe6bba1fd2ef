//! The mesh config compiled from the cluster, one immutable version at a time: what the
//! watchers publish and the discovery stream serves to the proxies.

use std::sync::Arc;

use sluice_api::Resource;
use tokio::sync::watch;

/// One version of the cluster's mesh config.
#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// Counts published versions from 1; 0 until the watchers' first full sync.
    pub version: u64,
    /// Every kept resource (translated Services and the Istio objects), oldest first: where
    /// two resources conflict, Istio keeps the older one. Shared: a resource that did not
    /// change from one version to the next is the same `Arc` in both.
    pub resources: Vec<Arc<Resource>>,
    /// The objects left out, each with why.
    pub rejected: Vec<Rejection>,
}

impl ClusterConfig {
    /// True once the watchers have listed everything once.
    pub fn synced(&self) -> bool {
        self.version > 0
    }
}

/// A Kubernetes object left out of the mesh config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// `Kind namespace/name`.
    pub object: String,
    /// Each error, naming the field.
    pub errors: Vec<String>,
}

/// Where the watchers publish each version; the stream and readiness read it.
pub type Publisher = watch::Sender<Arc<ClusterConfig>>;

/// A reader of the versions published.
pub type Subscriber = watch::Receiver<Arc<ClusterConfig>>;

/// A channel holding the empty, unsynced version 0.
pub fn channel() -> (Publisher, Subscriber) {
    watch::channel(Arc::new(ClusterConfig::default()))
}
