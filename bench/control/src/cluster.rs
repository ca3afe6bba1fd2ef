//! The benchmark's cluster: Services with an EndpointSlice each and a Pod (labelled with
//! its `version`) per endpoint, spread over namespaces, written as YAML files the kube stub
//! loads; and the objects the measured edits change.
//!
//! Namespaces `bench-0` and `bench-1` export their Services everywhere (the default); the
//! others export theirs only to themselves and `bench-0` (`networking.istio.io/exportTo:
//! ".,bench-0"`). So a proxy in `bench-0` sees every Service, one in `bench-1` only the
//! public ones, one in `bench-2` the public ones and its own.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The namespace whose proxies see every Service.
pub const SEES_ALL: &str = "bench-0";
/// A namespace whose proxies see only the public Services.
pub const SEES_PUBLIC: &str = "bench-1";
/// The namespace of the edited VirtualService and Service (public: every proxy sees them).
pub const EDITED_NAMESPACE: &str = "bench-1";

/// The shape of the cluster.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Services in all.
    pub services: usize,
    /// Endpoints (and Pods) per Service.
    pub endpoints_per_service: usize,
    /// Namespaces the Services are spread over (at least 2: `bench-0` and `bench-1` are
    /// public).
    pub namespaces: usize,
}

impl Shape {
    /// The namespace of Service `i`.
    fn namespace_of(&self, i: usize) -> String {
        let per = self.services.div_ceil(self.namespaces);
        format!("bench-{}", i / per)
    }

    /// The Service whose VirtualService is edited and whose slice gains endpoints: the
    /// first of `bench-1`.
    pub fn edited(&self) -> usize {
        self.services.div_ceil(self.namespaces)
    }

    /// The name of the edited Service.
    pub fn edited_service(&self) -> String {
        format!("svc-{}", self.edited())
    }

    /// How many Services a proxy in `namespace` sees.
    pub fn seen_from(&self, namespace: &str) -> usize {
        (0..self.services)
            .filter(|i| {
                let ns = self.namespace_of(*i);
                is_public(&ns) || namespace == SEES_ALL || ns == namespace
            })
            .count()
    }
}

fn is_public(namespace: &str) -> bool {
    namespace == "bench-0" || namespace == "bench-1"
}

/// The address of endpoint `n` of the cluster (10.100.0.0 and up).
fn endpoint_ip(n: usize) -> Ipv4Addr {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 100, 0, 0)) + n)
}

/// The ClusterIP of Service `i` (10.96.0.0 and up).
fn cluster_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i)
}

/// Writes the cluster's objects into `dir`, one file per kind, in the order the stub
/// should load them; returns the files and the number of objects.
pub fn write(shape: &Shape, dir: &Path) -> anyhow::Result<(Vec<PathBuf>, usize)> {
    let mut files = Vec::new();
    let mut count = 0;
    let mut emit = |name: &str, docs: Vec<Value>| -> anyhow::Result<()> {
        let mut text = String::with_capacity(docs.len() * 400);
        for doc in &docs {
            writeln!(text, "---\n{doc}")?;
        }
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        files.push(path);
        count += docs.len();
        Ok(())
    };
    let namespaces = (0..shape.namespaces)
        .map(|n| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": format!("bench-{n}"), "labels": {"sluice.dev/injection": "enabled"}}})
        })
        .collect();
    emit("namespaces.yaml", namespaces)?;
    let mut services = Vec::with_capacity(shape.services);
    let mut slices = Vec::with_capacity(shape.services);
    let mut pods = Vec::with_capacity(shape.services * shape.endpoints_per_service);
    for i in 0..shape.services {
        let ns = shape.namespace_of(i);
        let name = format!("svc-{i}");
        services.push(service(i, &ns, &name));
        let endpoints: Vec<(String, Ipv4Addr)> = (0..shape.endpoints_per_service)
            .map(|j| {
                let n = i * shape.endpoints_per_service + j;
                (format!("{name}-{j}"), endpoint_ip(n))
            })
            .collect();
        for (j, (pod_name, ip)) in endpoints.iter().enumerate() {
            let version = if j % 2 == 0 { "v1" } else { "v2" };
            pods.push(pod(&ns, pod_name, &name, version, *ip));
        }
        slices.push(slice(&ns, &name, &endpoints));
    }
    emit("pods.yaml", pods)?;
    emit("services.yaml", services)?;
    emit("endpointslices.yaml", slices)?;
    let edited = shape.edited_service();
    let rules = vec![
        destination_rule(EDITED_NAMESPACE, &edited),
        virtual_service(EDITED_NAMESPACE, &edited, "/start"),
    ];
    emit("istio.yaml", rules)?;
    Ok((files, count))
}

fn service(i: usize, ns: &str, name: &str) -> Value {
    let mut meta = json!({"name": name, "namespace": ns});
    if !is_public(ns) {
        meta["annotations"] = json!({"networking.istio.io/exportTo": ".,bench-0"});
    }
    let ip = cluster_ip(i).to_string();
    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {
        "clusterIP": ip, "clusterIPs": [ip], "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                  {"name": "grpc", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]}})
}

/// A Pod of `app` at `version`.
pub fn pod(ns: &str, name: &str, app: &str, version: &str, ip: Ipv4Addr) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "version": version}},
        "spec": {"containers": [{"name": "app", "image": format!("{app}:{version}")}]},
        "status": {"phase": "Running", "podIP": ip.to_string()}})
}

/// The EndpointSlice of Service `name` with these (pod, address) endpoints, all ready.
pub fn slice(ns: &str, name: &str, endpoints: &[(String, Ipv4Addr)]) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "grpc", "port": 9090, "protocol": "TCP"}],
        "endpoints": endpoint_list(ns, endpoints)})
}

/// The `endpoints` of a slice.
pub fn endpoint_list(ns: &str, endpoints: &[(String, Ipv4Addr)]) -> Value {
    endpoints
        .iter()
        .map(|(pod, ip)| {
            json!({"addresses": [ip.to_string()], "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": ns},
                "zone": "zone-a"})
        })
        .collect()
}

/// The edited Service's current endpoints: those it was made with.
pub fn edited_endpoints(shape: &Shape) -> Vec<(String, Ipv4Addr)> {
    let i = shape.edited();
    (0..shape.endpoints_per_service)
        .map(|j| {
            let n = i * shape.endpoints_per_service + j;
            (format!("svc-{i}-{j}"), endpoint_ip(n))
        })
        .collect()
}

/// The address of the `round`th endpoint added by the benchmark (10.250.0.0 and up).
pub fn added_ip(round: usize) -> Ipv4Addr {
    let round = u32::try_from(round).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 250, 0, 0)) + round)
}

fn destination_rule(ns: &str, host: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": host, "namespace": ns},
        "spec": {"host": host, "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}}]}})
}

/// The VirtualService of `host`: requests under `prefix` to subset v2, the rest to v1. Each
/// edit changes the prefix, which the clients look for in what they receive.
pub fn virtual_service(ns: &str, host: &str, prefix: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": host, "namespace": ns},
        "spec": {"hosts": [host], "http": [
            {"match": [{"uri": {"prefix": prefix}}],
             "route": [{"destination": {"host": host, "subset": "v2"}}]},
            {"route": [{"destination": {"host": host, "subset": "v1"}}]}]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_see_all_the_public_or_their_own() {
        let shape = Shape {
            services: 100,
            endpoints_per_service: 5,
            namespaces: 10,
        };
        assert_eq!(shape.seen_from(SEES_ALL), 100);
        assert_eq!(shape.seen_from(SEES_PUBLIC), 20);
        assert_eq!(shape.seen_from("bench-2"), 30);
        assert_eq!(shape.namespace_of(10), "bench-1");
        assert_eq!(shape.namespace_of(shape.edited()), EDITED_NAMESPACE);
        assert_eq!(endpoint_ip(256).to_string(), "10.100.1.0");
    }
}
