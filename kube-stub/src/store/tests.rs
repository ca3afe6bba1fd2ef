//! The store's versioning, history, snapshots and compaction.

use serde_json::json;

use super::*;
use crate::Catalog;

fn types() -> (ResourceType, ResourceType) {
    let catalog = Catalog::kubernetes();
    (
        catalog.by_kind("", "Namespace").unwrap().clone(),
        catalog.by_kind("", "Service").unwrap().clone(),
    )
}

fn new_object(resource: &ResourceType, namespace: &str, name: &str) -> Value {
    let mut object = json!({"metadata": {"name": name}, "spec": {"x": 1}});
    prepare_new(resource, namespace, &mut object).unwrap();
    object
}

fn rv(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap()
}

#[test]
fn writes_bump_one_resource_version() {
    let (ns, svc) = types();
    let store = Store::new(true);
    let shop = store.create(&ns, new_object(&ns, "", "shop")).unwrap();
    assert_eq!(rv(&shop), "1");
    assert_eq!(
        shop["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "shop"
    );
    let web = store.create(&svc, new_object(&svc, "shop", "web")).unwrap();
    assert_eq!(rv(&web), "2");
    let err = store
        .create(&svc, new_object(&svc, "shop", "web"))
        .unwrap_err();
    assert_eq!(err.reason, "AlreadyExists");
    let err = store
        .create(&svc, new_object(&svc, "nowhere", "web"))
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
    let updated = store
        .update(&svc, "shop", "web", |old| {
            let mut new = old.clone();
            new["spec"]["x"] = json!(2);
            Ok(new)
        })
        .unwrap();
    assert_eq!(
        (rv(&updated), &updated["metadata"]["generation"]),
        ("3", &json!(2))
    );
    let stale = store.update(&svc, "shop", "web", |_| Ok(web.as_ref().clone()));
    assert_eq!(stale.unwrap_err().reason, "Conflict");
    assert_eq!(store.resource_version(), 3);
}

#[test]
fn lists_read_past_snapshots_until_compaction() {
    let (ns, svc) = types();
    let store = Store::new(true);
    store.create(&ns, new_object(&ns, "", "shop")).unwrap();
    store.create(&svc, new_object(&svc, "shop", "a")).unwrap();
    store.create(&svc, new_object(&svc, "shop", "b")).unwrap();
    store.delete(&svc, "shop", "a").unwrap();
    let names = |at| -> Vec<String> {
        let snapshot = store.list(&svc, Some("shop"), at).unwrap();
        snapshot.items.into_iter().map(|(k, _)| k.name).collect()
    };
    assert_eq!(names(None), ["b"]);
    assert_eq!(names(Some(3)), ["a", "b"]);
    assert_eq!(names(Some(2)), ["a"]);
    let (changes, current) = store.changes_after(2).unwrap();
    assert_eq!(current, 4);
    assert_eq!(changes.iter().map(|c| c.rv).collect::<Vec<_>>(), [3, 4]);
    assert!(changes[1].cur.is_none());
    store.compact();
    assert_eq!(
        store.list(&svc, None, Some(3)).unwrap_err(),
        Expired {
            requested: 3,
            oldest: 4
        }
    );
    assert!(store.changes_after(3).is_err());
    assert!(store.changes_after(4).unwrap().0.is_empty());
}

#[test]
fn deleting_a_namespace_deletes_its_contents() {
    let (ns, svc) = types();
    let store = Store::new(true);
    store.create(&ns, new_object(&ns, "", "shop")).unwrap();
    store.create(&svc, new_object(&svc, "shop", "a")).unwrap();
    let deleted = store.delete(&ns, "", "shop").unwrap();
    assert_eq!(rv(&deleted), "4");
    assert_eq!(store.get(&svc, "shop", "a").unwrap_err().code, 404);
}
