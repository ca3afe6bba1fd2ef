//! Discovery against the Kubernetes API stand-in over HTTPS: the first version after the
//! initial lists, live changes as new versions, relists after `410 Expired`, bad objects
//! left out and back when fixed, the Istio kinds at the version the cluster serves, and an
//! unreachable API server that delays nothing but discovery.
//!
//! Each test runs on one thread: stand-in and watchers interleave only where the test
//! awaits, so "a change made while the watches are down" is exactly that.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::istio::service_entry::ServiceEntry;
use sluice_api::{Resource, Spec};
use sluice_control::discovery::state::{self, ClusterConfig, Subscriber};
use sluice_control::discovery::watch::{Discovery, Settings, client_config};
use sluice_kube_stub::{Catalog, IstioVersion, Options, ResourceType, StubServer};

/// How long any awaited condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

const NAMESPACES: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: sluice-system}
";

const REVIEWS: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop, labels: {app: reviews}}
spec:
  clusterIP: 10.96.12.34
  clusterIPs: [10.96.12.34]
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 8080, protocol: TCP}]
";

const REVIEWS_SLICE: &str = "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abcde
  namespace: shop
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.1.5]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: reviews-v1, namespace: shop}
- addresses: [10.244.2.7]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: reviews-v2, namespace: shop}
";

const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec: {containers: [{name: app, image: reviews:1}]}
status: {podIP: 10.244.1.5, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: shop, labels: {app: reviews, version: v2}}
spec: {containers: [{name: app, image: reviews:2}]}
status: {podIP: 10.244.2.7, phase: Running}
";

const VIRTUAL_SERVICE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
";

const DESTINATION_RULE: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

const MESH_CONFIG: &str = "
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: sluice-system}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
";

/// The shop: namespaces, the reviews Service with its slice and Pods, a VirtualService
/// and a DestinationRule.
fn shop() -> String {
    [
        NAMESPACES,
        REVIEWS,
        REVIEWS_SLICE,
        PODS,
        VIRTUAL_SERVICE,
        DESTINATION_RULE,
    ]
    .join("---")
}

/// Bookmarks far apart, so a watcher's resourceVersion moves only with its events.
fn quiet(catalog: Catalog) -> Options {
    Options {
        catalog,
        bookmark_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

async fn start_stub(options: Options, yaml: &str) -> StubServer {
    let server = StubServer::start(options)
        .await
        .expect("start the stand-in");
    server.apply_yaml(yaml).expect("apply the test objects");
    server
}

/// Quick settings for tests: short debounce and retries.
fn settings() -> Settings {
    Settings {
        debounce: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        retry: Duration::from_millis(50),
        ..Settings::default()
    }
}

/// Starts discovery as `sluice-control --kubeconfig FILE` does, with `kubeconfig` written
/// to a file named after the test.
async fn start_discovery(test: &str, kubeconfig: &str) -> (Discovery, Subscriber) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("sluice_control=debug")
        .try_init();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}.kubeconfig"));
    std::fs::write(&path, kubeconfig).unwrap();
    let config = client_config(Some(&path)).await.expect("kubeconfig");
    let (publisher, subscriber) = state::channel();
    let discovery = Discovery::start(config, settings(), publisher).expect("client");
    (discovery, subscriber)
}

/// The first version published after `after` that satisfies `check`.
async fn until(
    subscriber: &mut Subscriber,
    what: &str,
    mut check: impl FnMut(&ClusterConfig) -> bool,
) -> Arc<ClusterConfig> {
    let waited = tokio::time::timeout(WAIT, subscriber.wait_for(|c| check(c)))
        .await
        .map(|found| found.map(|c| c.clone()));
    match waited {
        Ok(found) => found.expect("discovery stopped publishing"),
        Err(_) => panic!(
            "not within {WAIT:?}: {what}; last version: {:#?}",
            subscriber.borrow()
        ),
    }
}

/// The next version after `last`.
async fn next(subscriber: &mut Subscriber, last: &ClusterConfig) -> Arc<ClusterConfig> {
    let version = last.version;
    until(subscriber, &format!("a version after {version}"), |c| {
        c.version > version
    })
    .await
}

/// Waits until `check` holds, polling (for state outside the published versions).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {WAIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn titles(config: &ClusterConfig) -> Vec<String> {
    config.resources.iter().map(|r| r.title()).collect()
}

fn by_title(config: &ClusterConfig) -> BTreeMap<String, &Resource> {
    config.resources.iter().map(|r| (r.title(), &**r)).collect()
}

/// The titles of the resources added, removed or changed from `before` to `after`.
fn changes(before: &ClusterConfig, after: &ClusterConfig) -> Vec<String> {
    let (before, after) = (by_title(before), by_title(after));
    let mut titles: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    titles.sort();
    titles.dedup();
    titles.retain(|t| before.get(t) != after.get(t));
    titles
}

fn service_entry<'c>(config: &'c ClusterConfig, title: &str) -> &'c ServiceEntry {
    let found = config.resources.iter().find(|r| r.title() == title);
    match found.map(|r| &r.spec) {
        Some(Spec::ServiceEntry(entry)) => entry,
        _ => panic!("no {title} in {:?}", titles(config)),
    }
}

/// Each endpoint's address with its `version` label.
fn endpoints(entry: &ServiceEntry) -> Vec<(String, Option<String>)> {
    let mut out: Vec<_> = entry
        .endpoints
        .iter()
        .map(|e| (e.address.clone(), e.labels.get("version").cloned()))
        .collect();
    out.sort();
    out
}

fn endpoint(address: &str, version: &str) -> (String, Option<String>) {
    (address.to_string(), Some(version.to_string()))
}

fn subset(config: &ClusterConfig) -> Option<String> {
    let found = config
        .resources
        .iter()
        .find(|r| r.title() == "VirtualService shop/reviews");
    match found.map(|r| &r.spec) {
        Some(Spec::VirtualService(vs)) => vs.http[0].route[0].destination.subset.clone(),
        _ => None,
    }
}

/// The value of the sample `name{labels}` in discovery's metrics.
fn metric(discovery: &Discovery, sample: &str) -> Option<f64> {
    let text = discovery.metrics().encode();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn lists(server: &StubServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.is_list_of(path))
        .count()
}

#[tokio::test]
async fn version_1_is_the_first_full_sync() {
    let server = start_stub(quiet(Catalog::default()), &shop()).await;
    let (discovery, mut versions) = start_discovery("initial", &server.kubeconfig()).await;
    let first = until(&mut versions, "the first sync", ClusterConfig::synced).await;

    assert_eq!(first.version, 1);
    assert!(first.rejected.is_empty(), "{:?}", first.rejected);
    let mut found = titles(&first);
    found.sort();
    assert_eq!(
        found,
        [
            "DestinationRule shop/reviews",
            "ServiceEntry shop/reviews",
            "VirtualService shop/reviews"
        ]
    );
    let entry = service_entry(&first, "ServiceEntry shop/reviews");
    assert_eq!(entry.hosts, ["reviews.shop.svc.cluster.local"]);
    assert_eq!(entry.addresses, ["10.96.12.34"]);
    assert_eq!(entry.ports[0].number, 9080);
    assert_eq!(
        endpoints(entry),
        [endpoint("10.244.1.5", "v1"), endpoint("10.244.2.7", "v2")]
    );
    assert!(entry.endpoints.iter().all(|e| e.ports["http"] == 8080));
    assert_eq!(subset(&first).as_deref(), Some("v1"));
    assert_eq!(
        metric(&discovery, "sluice_control_config_version"),
        Some(1.0)
    );
}

#[tokio::test]
async fn each_live_change_is_a_new_version_with_exactly_that_change() {
    let server = start_stub(quiet(Catalog::default()), &shop()).await;
    let (_discovery, mut versions) = start_discovery("live", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;

    server
        .apply_yaml(&VIRTUAL_SERVICE.replace("subset: v1", "subset: v2"))
        .unwrap();
    let v2 = next(&mut versions, &v1).await;
    assert_eq!(changes(&v1, &v2), ["VirtualService shop/reviews"]);
    assert_eq!(subset(&v2).as_deref(), Some("v2"));

    // The slice is replaced: 10.244.2.7 goes, 10.244.3.3 (a Pod not known yet) comes.
    let slice = REVIEWS_SLICE
        .replace("10.244.2.7", "10.244.3.3")
        .replace("reviews-v2", "reviews-v3");
    server.apply_yaml(&slice).unwrap();
    let v3 = next(&mut versions, &v2).await;
    assert_eq!(changes(&v2, &v3), ["ServiceEntry shop/reviews"]);
    let entry = service_entry(&v3, "ServiceEntry shop/reviews");
    assert_eq!(
        endpoints(entry),
        [endpoint("10.244.1.5", "v1"), ("10.244.3.3".into(), None)]
    );

    // Its Pod appears: the Service is translated again, with the Pod's labels.
    let pod = PODS
        .split("---")
        .nth(1)
        .unwrap()
        .replace("reviews-v2", "reviews-v3")
        .replace("version: v2", "version: v3");
    server.apply_yaml(&pod).unwrap();
    let v4 = next(&mut versions, &v3).await;
    assert_eq!(changes(&v3, &v4), ["ServiceEntry shop/reviews"]);
    let entry = service_entry(&v4, "ServiceEntry shop/reviews");
    assert_eq!(
        endpoints(entry),
        [endpoint("10.244.1.5", "v1"), endpoint("10.244.3.3", "v3")]
    );

    let ratings = REVIEWS
        .replace("reviews", "ratings")
        .replace("10.96.12.34", "10.96.12.35");
    server.apply_yaml(&ratings).unwrap();
    let v5 = next(&mut versions, &v4).await;
    assert_eq!(changes(&v4, &v5), ["ServiceEntry shop/ratings"]);
    assert_eq!(
        service_entry(&v5, "ServiceEntry shop/ratings").addresses,
        ["10.96.12.35"]
    );

    // A Pod's labels change: the endpoints of the Services whose slices name it follow.
    let relabelled = PODS
        .split("---")
        .next()
        .unwrap()
        .replace("version: v1", "version: v1-canary");
    server.apply_yaml(&relabelled).unwrap();
    let v6 = next(&mut versions, &v5).await;
    assert_eq!(changes(&v5, &v6), ["ServiceEntry shop/reviews"]);
    let entry = service_entry(&v6, "ServiceEntry shop/reviews");
    assert_eq!(
        endpoints(entry),
        [
            endpoint("10.244.1.5", "v1-canary"),
            endpoint("10.244.3.3", "v3")
        ]
    );

    server.delete("v1", "Service", "shop", "ratings").unwrap();
    let v7 = next(&mut versions, &v6).await;
    assert_eq!(changes(&v6, &v7), ["ServiceEntry shop/ratings"]);
    assert_eq!(v7.version, 7, "one version per change");
}

#[tokio::test]
async fn a_change_missed_while_history_was_compacted_arrives_by_relisting() {
    let server = start_stub(quiet(Catalog::default()), &shop()).await;
    let (_discovery, mut versions) = start_discovery("relist", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;
    let path = "/apis/networking.istio.io/v1/virtualservices";
    let lists_before = lists(&server, path);

    // No await between these: the open watches have not seen the change when the history
    // behind it is compacted and the streams end; re-watching gets 410 Expired.
    server
        .apply_yaml(&VIRTUAL_SERVICE.replace("subset: v1", "subset: v2"))
        .unwrap();
    server.compact();
    server.end_watches();

    let v2 = next(&mut versions, &v1).await;
    assert_eq!(changes(&v1, &v2), ["VirtualService shop/reviews"]);
    assert_eq!(subset(&v2).as_deref(), Some("v2"));
    assert!(
        lists(&server, path) > lists_before,
        "the VirtualServices were listed again"
    );

    // The relists of the other kinds changed nothing, so made no version; the watchers
    // follow changes again.
    server.apply_yaml(VIRTUAL_SERVICE).unwrap();
    let v3 = next(&mut versions, &v2).await;
    assert_eq!(v3.version, 3);
    assert_eq!(subset(&v3).as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_bad_object_is_left_out_and_reported_until_it_is_fixed() {
    let bad = VIRTUAL_SERVICE.replace(
        "http: [{route:",
        "http: [{match: [{uri: {regex: \"(unclosed\"}}], route:",
    );
    let yaml = [
        NAMESPACES,
        REVIEWS,
        REVIEWS_SLICE,
        PODS,
        DESTINATION_RULE,
        &bad,
    ]
    .join("---");
    let server = start_stub(quiet(Catalog::default()), &yaml).await;
    let (discovery, mut versions) = start_discovery("bad", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;

    let mut found = titles(&v1);
    found.sort();
    assert_eq!(
        found,
        ["DestinationRule shop/reviews", "ServiceEntry shop/reviews"]
    );
    let [rejected] = v1.rejected.as_slice() else {
        panic!("one rejected object: {:?}", v1.rejected)
    };
    assert_eq!(rejected.object, "VirtualService shop/reviews");
    assert!(
        rejected
            .errors
            .iter()
            .any(|e| e.starts_with("spec.http[0].match[0].uri.regex: ")),
        "{:?}",
        rejected.errors
    );
    let rejected = "sluice_control_rejected_resources{kind=\"VirtualService\"}";
    assert_eq!(metric(&discovery, rejected), Some(1.0));

    server.apply_yaml(VIRTUAL_SERVICE).unwrap();
    let v2 = next(&mut versions, &v1).await;
    assert!(v2.rejected.is_empty(), "{:?}", v2.rejected);
    assert_eq!(changes(&v1, &v2), ["VirtualService shop/reviews"]);
    assert_eq!(metric(&discovery, rejected), Some(0.0));
}

#[tokio::test]
async fn istio_kinds_are_watched_at_the_version_served_and_mesh_config_is_optional() {
    // VirtualService at v1alpha3 only, DestinationRule at v1beta1 and v1alpha3; no
    // MeshConfig CRD.
    let catalog = Catalog::kubernetes()
        .with_istio(&[IstioVersion::V1alpha3])
        .with_type(ResourceType::new(
            "networking.istio.io",
            &["v1beta1", "v1alpha3"],
            "DestinationRule",
            true,
        ));
    let yaml = shop().replace("networking.istio.io/v1\n", "networking.istio.io/v1alpha3\n");
    let server = start_stub(quiet(catalog), &yaml).await;
    let (_discovery, mut versions) = start_discovery("versions", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;

    let mut found = titles(&v1);
    found.sort();
    assert_eq!(
        found,
        [
            "DestinationRule shop/reviews",
            "ServiceEntry shop/reviews",
            "VirtualService shop/reviews"
        ]
    );
    let watched = |path: &str| {
        server
            .requests()
            .iter()
            .any(|r| r.path == path && r.is_watch())
    };
    assert!(watched(
        "/apis/networking.istio.io/v1alpha3/virtualservices"
    ));
    assert!(watched(
        "/apis/networking.istio.io/v1beta1/destinationrules"
    ));
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path.contains("meshconfigs"))
    );
}

#[tokio::test]
async fn a_mesh_config_in_the_root_namespace_is_published() {
    let yaml = [shop().as_str(), MESH_CONFIG].join("---");
    let server = start_stub(quiet(Catalog::default()), &yaml).await;
    let (_discovery, mut versions) = start_discovery("meshconfig", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;
    assert!(
        titles(&v1).contains(&"MeshConfig sluice-system/mesh".to_string()),
        "{:?}",
        titles(&v1)
    );
}

#[tokio::test]
async fn release_policies_are_published_and_a_bad_one_is_rejected_naming_its_field() {
    let good = "
apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  sticky: {header: x-user-id}
  fallback: {subsets: [{from: v2, to: v1}]}
";
    let bad = "
apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: broken, namespace: shop}
spec:
  host: reviews
  sticky: {header: x-user-id, clientAddress: true}
";
    let yaml = [shop().as_str(), good, bad].join("---");
    let server = start_stub(quiet(Catalog::default()), &yaml).await;
    let (_discovery, mut versions) = start_discovery("release", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;
    assert!(
        titles(&v1).contains(&"ReleasePolicy shop/reviews".to_string()),
        "{:?}",
        titles(&v1)
    );
    let [rejected] = v1.rejected.as_slice() else {
        panic!("one rejected object: {:?}", v1.rejected)
    };
    assert_eq!(rejected.object, "ReleasePolicy shop/broken");
    assert!(
        rejected
            .errors
            .iter()
            .any(|e| e.starts_with("spec.sticky: ")),
        "{:?}",
        rejected.errors
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/apis/sluice.dev/v1alpha1/releasepolicies" && r.is_watch())
    );
}

#[tokio::test]
async fn without_istio_crds_the_services_are_published() {
    let yaml = [NAMESPACES, REVIEWS, REVIEWS_SLICE, PODS].join("---");
    let server = start_stub(quiet(Catalog::kubernetes()), &yaml).await;
    let (_discovery, mut versions) = start_discovery("no-istio", &server.kubeconfig()).await;
    let v1 = until(&mut versions, "the first sync", ClusterConfig::synced).await;
    assert_eq!(titles(&v1), ["ServiceEntry shop/reviews"]);
}

#[tokio::test]
async fn an_unreachable_api_server_delays_discovery_only() {
    // A port that accepts connections and closes them at once: an API server that is
    // there but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let closer = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let server = start_stub(quiet(Catalog::default()), "").await;
    let kubeconfig = server
        .kubeconfig()
        .replace(&server.url(), &format!("https://{address}"));

    let started = tokio::time::Instant::now();
    let (discovery, versions) = start_discovery("unreachable", &kubeconfig).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start returned at once"
    );
    let failures = "sluice_control_watch_errors_total{kind=\"APIDiscovery\"}";
    eventually("API discovery failed twice", || async {
        metric(&discovery, failures).is_some_and(|n| n >= 2.0)
    })
    .await;
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_eq!(versions.borrow().version, 0, "nothing published");
    closer.abort();
}
