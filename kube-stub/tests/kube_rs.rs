//! kube-rs against the stand-in: discovery of the Istio group's versions, and watchers that list
//! in pages, follow live changes, re-watch after the server ends their streams, and relist after
//! a compaction makes their resourceVersion expire.

#[path = "support/client.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DynamicObject};
use kube::discovery::{self, Discovery};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use sluice_kube_stub::{Catalog, IstioVersion, Options, StubServer};
use support::{Watch, client, eventually, service, services, start};

/// Options with bookmarks far apart, so a watcher's resourceVersion only moves with the events
/// it is sent.
fn quiet() -> Options {
    Options {
        bookmark_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

fn lists(server: &StubServer, path: &str) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.is_list_of(path))
        .map(|r| r.query)
        .collect()
}

fn watches(server: &StubServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.path == path && r.is_watch())
        .count()
}

fn names<K: Resource>(events: &[Event<K>]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InitApply(o) => Some(o.name_any()),
            _ => None,
        })
        .collect()
}

/// Reads a whole initial listing: `Init`, the objects, `InitDone`.
async fn initial<K: Resource + Send + std::fmt::Debug + 'static>(
    watch: &mut Watch<K>,
) -> Vec<String> {
    loop {
        if matches!(watch.next("Init").await, Event::Init) {
            break;
        }
    }
    let mut events = Vec::new();
    loop {
        match watch.next("the initial objects and InitDone").await {
            Event::InitDone => return names(&events),
            event => events.push(event),
        }
    }
}

#[tokio::test]
async fn service_watcher_pages_follows_changes_and_survives_ends_and_compaction() {
    let server = start(quiet(), &services("shop", 5)).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "shop");
    let config = watcher::Config::default()
        .labels("app=web")
        .page_size(2)
        .timeout(30);
    let mut watch = Watch::new(watcher::watcher(api, config));
    let path = "/api/v1/namespaces/shop/services";

    let listed = initial(&mut watch).await;
    assert_eq!(listed, ["svc-0", "svc-1", "svc-2", "svc-3", "svc-4"]);
    let pages = lists(&server, path);
    assert_eq!(pages.len(), 3, "5 services in pages of 2: {pages:?}");
    assert!(pages.iter().all(|q| q.contains("limit=2")), "{pages:?}");
    assert!(pages[1].contains("continue="), "{pages:?}");

    server.apply_yaml(&service("shop", "svc-5", "web")).unwrap();
    let Event::Apply(added) = watch.next("svc-5 added").await else {
        panic!("expected Apply of svc-5")
    };
    assert_eq!(added.name_any(), "svc-5");
    server
        .apply_yaml(&service("shop", "svc-0", "web").replace("port: 80", "port: 8080"))
        .unwrap();
    let Event::Apply(modified) = watch.next("svc-0 modified").await else {
        panic!("expected Apply of svc-0")
    };
    let ports = modified.spec.unwrap().ports.unwrap();
    assert_eq!(
        (modified.metadata.name.as_deref(), ports[0].port),
        (Some("svc-0"), 8080)
    );
    server.delete("v1", "Service", "shop", "svc-1").unwrap();
    let Event::Delete(deleted) = watch.next("svc-1 deleted").await else {
        panic!("expected Delete of svc-1")
    };
    assert_eq!(deleted.name_any(), "svc-1");

    // The server ends the stream: the watcher watches again from where it was, no relist.
    let watches_before = watches(&server, path);
    server.end_watches();
    eventually("the watcher watched again", || async {
        watches(&server, path) > watches_before
    })
    .await;
    server.apply_yaml(&service("shop", "svc-6", "web")).unwrap();
    let Event::Apply(added) = watch.next("svc-6 after the watch ended").await else {
        panic!("expected Apply of svc-6")
    };
    assert_eq!(added.name_any(), "svc-6");
    assert_eq!(
        lists(&server, path).len(),
        3,
        "no relist after a plain re-watch"
    );

    // A change the watcher does not see moves the store on; compaction forgets the history;
    // the re-watch from the watcher's old resourceVersion gets 410 Expired, and it relists.
    server.apply_yaml(&service("shop", "db", "db")).unwrap();
    server.compact();
    server.end_watches();
    let relisted = initial(&mut watch).await;
    assert_eq!(
        relisted,
        ["svc-0", "svc-2", "svc-3", "svc-4", "svc-5", "svc-6"]
    );
    assert!(
        watch
            .errors
            .iter()
            .any(|e| e.contains("410") || e.contains("Expired")),
        "the watcher saw 410 Expired: {:?}",
        watch.errors
    );
    assert_eq!(lists(&server, path).len(), 6, "relisted in 3 more pages");

    server.apply_yaml(&service("shop", "svc-7", "web")).unwrap();
    let Event::Apply(added) = watch.next("svc-7 after the relist").await else {
        panic!("expected Apply of svc-7")
    };
    assert_eq!(added.name_any(), "svc-7");
}

const VIRTUAL_SERVICE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
";

#[tokio::test]
async fn dynamic_watcher_streams_the_istio_kind_at_the_version_asked_for() {
    let yaml = format!("{}---{VIRTUAL_SERVICE}", services("shop", 0));
    let server = start(quiet(), &yaml).await;
    let client = client(&server).await;
    let group = discovery::group(&client, "networking.istio.io")
        .await
        .unwrap();
    let (resource, _) = group
        .versioned_resources("v1alpha3")
        .into_iter()
        .find(|(r, _)| r.kind == "VirtualService")
        .expect("VirtualService at v1alpha3");
    let api: Api<DynamicObject> = Api::namespaced_with(client, "shop", &resource);
    let config = watcher::Config::default().streaming_lists().timeout(30);
    let mut watch = Watch::new(watcher::watcher(api, config));

    assert_eq!(initial(&mut watch).await, ["reviews"]);
    let path = "/apis/networking.istio.io/v1alpha3/namespaces/shop/virtualservices";
    assert!(
        lists(&server, path).is_empty(),
        "a streaming list does not list"
    );
    let streaming = server
        .requests()
        .into_iter()
        .any(|r| r.path == path && r.query.contains("sendInitialEvents=true"));
    assert!(streaming, "the initial watch asked for initial events");

    let v1beta1 = VIRTUAL_SERVICE
        .replace("networking.istio.io/v1\n", "networking.istio.io/v1beta1\n")
        .replace("reviews, namespace", "ratings, namespace");
    server.apply_yaml(&v1beta1).unwrap();
    let Event::Apply(added) = watch.next("ratings added").await else {
        panic!("expected Apply of ratings")
    };
    assert_eq!(added.name_any(), "ratings");
    let types = added.types.expect("apiVersion and kind");
    assert_eq!(types.api_version, "networking.istio.io/v1alpha3");

    server
        .apply_yaml(&VIRTUAL_SERVICE.replace("subset: v1", "subset: v2"))
        .unwrap();
    let Event::Apply(modified) = watch.next("reviews modified").await else {
        panic!("expected Apply of reviews")
    };
    assert_eq!(
        modified.data["spec"]["http"][0]["route"][0]["destination"]["subset"],
        "v2"
    );
    assert_eq!(modified.metadata.generation, Some(2));
    server
        .delete(
            "networking.istio.io/v1alpha3",
            "VirtualService",
            "shop",
            "ratings",
        )
        .unwrap();
    let Event::Delete(deleted) = watch.next("ratings deleted").await else {
        panic!("expected Delete of ratings")
    };
    assert_eq!(deleted.name_any(), "ratings");
}

#[tokio::test]
async fn watches_end_on_their_timeout_and_the_watcher_watches_again() {
    let server = start(quiet(), &services("shop", 0)).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "shop");
    let mut watch = Watch::new(watcher::watcher(api, watcher::Config::default().timeout(1)));
    assert!(initial(&mut watch).await.is_empty());
    let path = "/api/v1/namespaces/shop/configmaps";
    eventually(
        "the watcher re-watched twice after 1 s timeouts",
        || async { watches(&server, path) >= 3 },
    )
    .await;
    let timeouts = server
        .requests()
        .into_iter()
        .filter(|r| r.path == path && r.is_watch())
        .all(|r| r.query.contains("timeoutSeconds=1"));
    assert!(timeouts, "every watch asked for timeoutSeconds=1");
    server
        .apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n")
        .unwrap();
    let Event::Apply(added) = watch.next("the config map").await else {
        panic!("expected Apply of c")
    };
    assert_eq!(added.name_any(), "c");
}

#[tokio::test]
async fn discovery_finds_the_served_istio_versions() {
    let server = start(Options::default(), "").await;
    let client = client(&server).await;
    let group = discovery::group(&client, "networking.istio.io")
        .await
        .unwrap();
    assert_eq!(
        group.versions().collect::<Vec<_>>(),
        ["v1", "v1beta1", "v1alpha3"]
    );
    assert_eq!(group.preferred_version(), Some("v1"));
    let (recommended, caps) = group.recommended_kind("VirtualService").unwrap();
    assert_eq!(
        (recommended.version.as_str(), recommended.plural.as_str()),
        ("v1", "virtualservices")
    );
    assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
    let plain = Discovery::new(client.clone()).run().await.unwrap();
    let aggregated = Discovery::new(client).run_aggregated().await.unwrap();
    for everything in [plain, aggregated] {
        assert!(everything.has_group("sluice.dev"));
        assert!(everything.has_group("discovery.k8s.io"));
        let istio = everything
            .get("networking.istio.io")
            .expect("the Istio group");
        assert_eq!(
            istio.versions().collect::<Vec<_>>(),
            ["v1", "v1beta1", "v1alpha3"]
        );
        let (vs, _) = istio.recommended_kind("VirtualService").unwrap();
        assert_eq!(vs.api_version, "networking.istio.io/v1");
        let core = everything.get("").expect("core group");
        assert!(core.recommended_kind("Service").is_some());
    }

    let options = Options {
        catalog: Catalog::kubernetes().with_istio(&[IstioVersion::V1alpha3]),
        ..Options::default()
    };
    let old = start(options, "").await;
    let client = support::client(&old).await;
    let group = discovery::group(&client, "networking.istio.io")
        .await
        .unwrap();
    assert_eq!(group.versions().collect::<Vec<_>>(), ["v1alpha3"]);
    let plain = Discovery::new(client.clone()).run().await.unwrap();
    let aggregated = Discovery::new(client).run_aggregated().await.unwrap();
    for everything in [plain, aggregated] {
        assert!(!everything.has_group("sluice.dev"), "MeshConfig not served");
        let istio = everything
            .get("networking.istio.io")
            .expect("the Istio group");
        assert_eq!(istio.versions().collect::<Vec<_>>(), ["v1alpha3"]);
    }
}
