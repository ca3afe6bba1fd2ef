//! The protocol in detail, through kube-rs's plain API calls: authentication, pages and their
//! expiry, watches replaying history, filtering by label, bookmarks, timeouts, 410 Expired, and
//! the errors of reads and writes.

#[path = "support/client.rs"]
mod support;

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    VersionMatch, WatchEvent, WatchParams,
};
use kube::core::Status;
use kube::{Error, ResourceExt};
use serde_json::json;
use sluice_kube_stub::Options;
use support::{WAIT, client, client_for, service, services, start};

fn api_error<T: std::fmt::Debug>(result: Result<T, Error>) -> Box<Status> {
    match result {
        Err(Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next event, bookmarks included.
async fn next_event<K>(
    stream: &mut (impl Stream<Item = Result<WatchEvent<K>, Error>> + Unpin),
    what: &str,
) -> WatchEvent<K> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no watch event within {WAIT:?}: {what}"))
        .unwrap_or_else(|| panic!("the watch ended: {what}"))
        .unwrap_or_else(|e| panic!("watch failed: {e}: {what}"))
}

/// The next event that is not a bookmark.
async fn next_change<K>(
    stream: &mut (impl Stream<Item = Result<WatchEvent<K>, Error>> + Unpin),
    what: &str,
) -> WatchEvent<K> {
    loop {
        match next_event(stream, what).await {
            WatchEvent::Bookmark(_) => continue,
            event => return event,
        }
    }
}

fn virtual_services(client: kube::Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", version, "VirtualService");
    Api::namespaced_with(client, "shop", &ApiResource::from_gvk(&gvk))
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let server = start(Options::default(), "").await;
    let wrong = server.kubeconfig().replace(server.token(), "not-the-token");
    let api: Api<Service> = Api::all(client_for(&wrong).await);
    let status = api_error(api.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn pages_continue_until_compaction_expires_them() {
    let server = start(Options::default(), &services("shop", 3)).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "shop");
    let first = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(first.items[0].name_any(), "svc-0");
    assert_eq!(first.metadata.remaining_item_count, Some(2));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items[0].name_any(), "svc-1");
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );

    // A page continues the first page's snapshot, whatever changed since.
    server.delete("v1", "Service", "shop", "svc-1").unwrap();
    let again = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        again.items[0].name_any(),
        "svc-1",
        "the snapshot still has svc-1"
    );

    server.compact();
    let status = api_error(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn lists_read_an_exact_resource_version_and_selectors() {
    let server = start(Options::default(), &services("shop", 2)).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "shop");
    let before = server.resource_version().to_string();
    server.apply_yaml(&service("shop", "db", "db")).unwrap();
    let exact = ListParams::default()
        .at(&before)
        .matching(VersionMatch::Exact);
    let old = api.list(&exact).await.unwrap();
    let names = |list: &kube::api::ObjectList<Service>| -> Vec<String> {
        list.items.iter().map(|s| s.name_any()).collect()
    };
    assert_eq!(names(&old), ["svc-0", "svc-1"]);
    let now = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&now), ["db", "svc-0", "svc-1"]);
    let web = api
        .list(&ListParams::default().labels("app in (web),app!=db"))
        .await
        .unwrap();
    assert_eq!(names(&web), ["svc-0", "svc-1"]);
    let one = api
        .list(&ListParams::default().fields("metadata.name=svc-1"))
        .await
        .unwrap();
    assert_eq!(names(&one), ["svc-1"]);
    let status = api_error(
        api.list(&ListParams::default().fields("spec.type=ClusterIP"))
            .await,
    );
    assert_eq!(status.code, 400);
    assert!(
        status
            .message
            .contains("field label not supported: spec.type"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn watches_replay_history_from_a_resource_version_until_it_expires() {
    let server = start(Options::default(), &services("shop", 1)).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "shop");
    let from = server.resource_version().to_string();
    server.apply_yaml(&service("shop", "svc-1", "web")).unwrap();
    server
        .apply_yaml(&service("shop", "svc-0", "web").replace("port: 80", "port: 81"))
        .unwrap();
    server.delete("v1", "Service", "shop", "svc-1").unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    let WatchEvent::Added(added) = next_event(&mut events, "svc-1 added").await else {
        panic!("expected ADDED")
    };
    assert_eq!(added.name_any(), "svc-1");
    let WatchEvent::Modified(modified) = next_event(&mut events, "svc-0 modified").await else {
        panic!("expected MODIFIED")
    };
    assert_eq!(modified.name_any(), "svc-0");
    let WatchEvent::Deleted(deleted) = next_event(&mut events, "svc-1 deleted").await else {
        panic!("expected DELETED")
    };
    assert_eq!(
        deleted.resource_version(),
        Some(server.resource_version().to_string()),
        "a deleted object carries the deletion's resourceVersion"
    );

    server.compact();
    let mut expired = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    let WatchEvent::Error(status) = next_event(&mut expired, "410 Expired").await else {
        panic!("expected an ERROR event")
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert!(
        tokio::time::timeout(WAIT, expired.next())
            .await
            .unwrap()
            .is_none(),
        "the expired watch ends"
    );
}

#[tokio::test]
async fn watches_follow_label_selectors_send_bookmarks_and_end_on_timeout() {
    let options = Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    };
    let server = start(options, &services("shop", 1)).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "shop");
    let params = WatchParams::default().labels("app=web").timeout(2);
    let mut events = api.watch(&params, "0").await.unwrap().boxed();
    let WatchEvent::Added(current) = next_change(&mut events, "the current svc-0").await else {
        panic!("expected a synthetic ADDED for the current state")
    };
    assert_eq!(current.name_any(), "svc-0");

    server.apply_yaml(&service("shop", "svc-0", "db")).unwrap();
    let WatchEvent::Deleted(left) = next_change(&mut events, "svc-0 leaving the selection").await
    else {
        panic!("expected DELETED when the object stops matching")
    };
    assert_eq!(left.name_any(), "svc-0");
    server.apply_yaml(&service("shop", "svc-0", "web")).unwrap();
    let WatchEvent::Added(back) = next_change(&mut events, "svc-0 back in the selection").await
    else {
        panic!("expected ADDED when the object matches again")
    };
    assert_eq!(back.name_any(), "svc-0");

    let WatchEvent::Bookmark(bookmark) = next_event(&mut events, "a bookmark").await else {
        panic!("expected a BOOKMARK")
    };
    assert_eq!(
        bookmark.metadata.resource_version,
        server.resource_version().to_string()
    );
    let ended = tokio::time::timeout(WAIT, async { while events.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the watch ends after timeoutSeconds=2");
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let server = start(Options::default(), &services("shop", 2)).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "shop");
    let mut events = api
        .watch(&WatchParams::streaming_lists().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    for name in ["svc-0", "svc-1"] {
        let WatchEvent::Added(added) = next_event(&mut events, name).await else {
            panic!("expected ADDED {name}")
        };
        assert_eq!(added.name_any(), name);
    }
    let WatchEvent::Bookmark(end) = next_event(&mut events, "the end of the initial events").await
    else {
        panic!("expected a BOOKMARK")
    };
    assert!(
        end.metadata
            .annotations
            .contains_key("k8s.io/initial-events-end")
    );
}

#[tokio::test]
async fn reads_and_writes_answer_as_the_api_server_does() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                metadata: {name: reviews, namespace: shop}\nspec: {hosts: [reviews]}\n";
    let server = start(
        Options::default(),
        &format!("{}---\n{yaml}", services("shop", 1)),
    )
    .await;
    let client = client(&server).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "shop");

    let status = api_error(services.get("missing").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "services \"missing\" not found");

    let mut stale = services.get("svc-0").await.unwrap();
    server
        .apply_yaml(&service("shop", "svc-0", "web").replace("port: 80", "port: 82"))
        .unwrap();
    stale.labels_mut().insert("x".into(), "y".into());
    let status = api_error(
        services
            .replace("svc-0", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let mut fresh = Service::default();
    fresh.metadata.name = Some("fresh".into());
    let status = api_error(
        Api::<Service>::namespaced(client.clone(), "nowhere")
            .create(&PostParams::default(), &fresh)
            .await,
    );
    assert_eq!(status.code, 404, "{}", status.message);

    let v1 = virtual_services(client.clone(), "v1");
    let v1alpha3 = virtual_services(client.clone(), "v1alpha3");
    let old = v1alpha3.get("reviews").await.unwrap();
    assert_eq!(
        old.types.unwrap().api_version,
        "networking.istio.io/v1alpha3"
    );
    let labelled = v1
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"canary": "yes"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.labels()["canary"], "yes");
    assert_eq!(labelled.metadata.generation, Some(1));
    let respecced = v1
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hosts": ["reviews", "ratings"]}})),
        )
        .await
        .unwrap();
    assert_eq!(respecced.metadata.generation, Some(2));
    let status = api_error(
        v1.patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await,
    );
    assert_eq!(
        status.code, 415,
        "no strategic merge patch for custom resources"
    );
    let strategic = services
        .patch(
            "svc-0",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.labels()["tier"], "front");
    let deleted = v1alpha3
        .delete("reviews", &Default::default())
        .await
        .unwrap();
    assert!(deleted.is_left(), "the deleted object comes back");
    assert!(v1.get_opt("reviews").await.unwrap().is_none());
}

#[tokio::test]
async fn extra_names_extend_the_serving_certificate() {
    // 127.0.0.2 is loopback but not among the certificate's default names.
    let options = Options {
        listen: "127.0.0.2:0".parse().unwrap(),
        extra_names: vec!["127.0.0.2".into()],
        ..Options::default()
    };
    let server = start(options, "").await;
    assert!(
        server.url().starts_with("https://127.0.0.2:"),
        "{}",
        server.url()
    );
    let api: Api<Service> = Api::all(client(&server).await);
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let options = Options {
        listen: "127.0.0.2:0".parse().unwrap(),
        ..Options::default()
    };
    let unnamed = start(options, "").await;
    let api: Api<Service> = Api::all(client(&unnamed).await);
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(!matches!(err, Error::Api(_)), "TLS refuses the name: {err}");
}
