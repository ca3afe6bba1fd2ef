//! Kubernetes objects for the discovery tests, written as `kubectl get -o yaml` shows
//! them (server-set fields included), and a parser for them.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;

/// Parses every document of a YAML stream as a `T`.
pub fn parse_all<T: DeserializeOwned>(text: &str) -> Vec<T> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("test fixture parses"))
        .collect()
}

/// Parses a single-document YAML text as a `T`.
pub fn parse<T: DeserializeOwned>(text: &str) -> T {
    serde_norway::from_str(text).expect("test fixture parses")
}

/// The Services, EndpointSlices and Pods of the shop namespace, all together.
pub fn shop() -> (Vec<Service>, Vec<EndpointSlice>, Vec<Pod>) {
    let services = [REVIEWS, RATINGS, PAYMENTS, LEGACY_DB]
        .iter()
        .map(|s| parse(s))
        .collect();
    let slices = [REVIEWS_SLICES, RATINGS_SLICE, LEGACY_DB_SLICE]
        .iter()
        .flat_map(|s| parse_all(s))
        .collect();
    (services, slices, parse_all(PODS))
}

/// A dual-stack ClusterIP Service: `http` targets the named container port `web`
/// (8080 in v1 Pods, 8081 in v2), `api` declares h2c, `stats` is UDP.
pub const REVIEWS: &str = r#"
apiVersion: v1
kind: Service
metadata:
  annotations:
    networking.istio.io/exportTo: "shop, istio-system"
  creationTimestamp: "2026-11-30T10:00:00Z"
  labels:
    app: reviews
  name: reviews
  namespace: shop
  resourceVersion: "4711"
  uid: 6f1c2f0e-3b1d-4c55-9a5e-0d1e2f3a4b5c
spec:
  clusterIP: 10.96.12.34
  clusterIPs:
  - 10.96.12.34
  - fd00:10:96::1234
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  - IPv6
  ipFamilyPolicy: PreferDualStack
  ports:
  - name: http
    port: 9080
    protocol: TCP
    targetPort: web
  - appProtocol: kubernetes.io/h2c
    name: api
    port: 9090
    protocol: TCP
    targetPort: 19090
  - name: stats
    port: 8125
    protocol: UDP
    targetPort: 8125
  selector:
    app: reviews
  sessionAffinity: None
  type: ClusterIP
status:
  loadBalancer: {}
"#;

/// The slices of `reviews`: one per port mapping, as the EndpointSlice controller
/// groups them. 10.244.1.5 moves between slices and is in both.
pub const REVIEWS_SLICES: &str = r#"
addressType: IPv4
apiVersion: discovery.k8s.io/v1
endpoints:
- addresses:
  - 10.244.1.5
  conditions:
    ready: true
    serving: true
    terminating: false
  nodeName: node-a
  targetRef:
    kind: Pod
    name: reviews-v1-7d9f8c-x2k4p
    namespace: shop
    uid: 0a1b2c3d-0000-4000-8000-000000000001
  zone: eu-west-1a
- addresses:
  - 10.244.3.9
  conditions:
    ready: false
    serving: false
    terminating: false
  nodeName: node-c
  targetRef:
    kind: Pod
    name: reviews-v1-7d9f8c-starting
    namespace: shop
  zone: eu-west-1c
- addresses:
  - 10.244.3.10
  conditions:
    ready: false
    serving: true
    terminating: true
  nodeName: node-c
  targetRef:
    kind: Pod
    name: reviews-v1-7d9f8c-leaving
    namespace: shop
  zone: eu-west-1c
kind: EndpointSlice
metadata:
  creationTimestamp: "2026-11-30T10:00:01Z"
  generateName: reviews-
  generation: 7
  labels:
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
    kubernetes.io/service-name: reviews
  name: reviews-abcde
  namespace: shop
  ownerReferences:
  - apiVersion: v1
    blockOwnerDeletion: true
    controller: true
    kind: Service
    name: reviews
    uid: 6f1c2f0e-3b1d-4c55-9a5e-0d1e2f3a4b5c
  resourceVersion: "4800"
  uid: 7a7a7a7a-0000-4000-8000-000000000001
ports:
- name: http
  port: 8080
  protocol: TCP
- name: api
  port: 19090
  protocol: TCP
- name: stats
  port: 8125
  protocol: UDP
---
addressType: IPv4
apiVersion: discovery.k8s.io/v1
endpoints:
- addresses:
  - 10.244.2.7
  conditions: {}
  nodeName: node-b
  targetRef:
    kind: Pod
    name: reviews-v2-5c6b7a-q9w8e
    namespace: shop
  zone: eu-west-1b
- addresses:
  - 10.244.1.5
  conditions:
    ready: true
  targetRef:
    kind: Pod
    name: reviews-v1-7d9f8c-x2k4p
    namespace: shop
kind: EndpointSlice
metadata:
  generateName: reviews-
  labels:
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
    kubernetes.io/service-name: reviews
  name: reviews-fghij
  namespace: shop
ports:
- name: http
  port: 8081
  protocol: TCP
- name: api
  port: 19090
  protocol: TCP
"#;

/// A headless Service in front of a StatefulSet.
pub const RATINGS: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: shop
spec:
  clusterIP: None
  clusterIPs:
  - None
  ports:
  - name: tcp-db
    port: 5000
    protocol: TCP
    targetPort: 5000
  selector:
    app: ratings
  type: ClusterIP
"#;

/// The slice of `ratings`.
pub const RATINGS_SLICE: &str = r#"
addressType: IPv4
apiVersion: discovery.k8s.io/v1
endpoints:
- addresses:
  - 10.244.4.20
  conditions:
    ready: true
  hostname: ratings-0
  targetRef:
    kind: Pod
    name: ratings-0
    namespace: shop
- addresses:
  - 10.244.4.21
  conditions:
    ready: true
  hostname: ratings-1
  targetRef:
    kind: Pod
    name: ratings-1
    namespace: shop
kind: EndpointSlice
metadata:
  labels:
    kubernetes.io/service-name: ratings
    service.kubernetes.io/headless: ""
  name: ratings-k2j3h
  namespace: shop
ports:
- name: tcp-db
  port: 5000
  protocol: TCP
"#;

/// An ExternalName Service: an alias of a name outside the cluster.
pub const PAYMENTS: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: payments
  namespace: shop
spec:
  externalName: api.payments.example.com
  ports:
  - name: https
    port: 443
    protocol: TCP
  sessionAffinity: None
  type: ExternalName
"#;

/// A Service without a selector, with a single unnamed port.
pub const LEGACY_DB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: legacy-db
  namespace: shop
spec:
  clusterIP: 10.96.40.1
  clusterIPs:
  - 10.96.40.1
  ports:
  - port: 5432
    protocol: TCP
    targetPort: 15432
  type: ClusterIP
"#;

/// The EndpointSlice written by hand for `legacy-db`: no targetRef, no port name.
pub const LEGACY_DB_SLICE: &str = r#"
addressType: IPv4
apiVersion: discovery.k8s.io/v1
endpoints:
- addresses:
  - 192.168.50.10
- addresses:
  - 192.168.50.11
kind: EndpointSlice
metadata:
  labels:
    endpointslice.kubernetes.io/managed-by: staff
    kubernetes.io/service-name: legacy-db
  name: legacy-db-1
  namespace: shop
ports:
- port: 15432
"#;

/// The Pods the slices name.
pub const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  labels:
    app: reviews
    pod-template-hash: 7d9f8c
    topology.kubernetes.io/region: eu-west-1
    version: v1
  name: reviews-v1-7d9f8c-x2k4p
  namespace: shop
spec:
  containers:
  - image: example/reviews:1
    name: reviews
    ports:
    - containerPort: 8080
      name: web
      protocol: TCP
status:
  phase: Running
  podIP: 10.244.1.5
---
apiVersion: v1
kind: Pod
metadata:
  labels:
    app: reviews
    pod-template-hash: 5c6b7a
    version: v2
  name: reviews-v2-5c6b7a-q9w8e
  namespace: shop
spec:
  containers:
  - image: example/reviews:2
    name: reviews
    ports:
    - containerPort: 8081
      name: web
      protocol: TCP
status:
  phase: Running
  podIP: 10.244.2.7
---
apiVersion: v1
kind: Pod
metadata:
  labels:
    app: ratings
    statefulset.kubernetes.io/pod-name: ratings-0
  name: ratings-0
  namespace: shop
spec:
  containers:
  - image: example/ratings:1
    name: ratings
---
apiVersion: v1
kind: Pod
metadata:
  labels:
    app: ratings
    statefulset.kubernetes.io/pod-name: ratings-1
  name: ratings-1
  namespace: shop
spec:
  containers:
  - image: example/ratings:1
    name: ratings
"#;
