//! The update that brings a proxy from the view it was sent to a new one: the full state
//! the first time, then only what changed, compared by the rendered documents.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::wire::{Rendered, Update};

/// The update from `held` (none: nothing sent yet) to `view` (rendered, in order) at
/// `version`: the full state the first time, else [`delta`]'s.
pub fn update(held: Option<&[Rendered]>, version: u64, view: &[Rendered]) -> Update {
    match held.map(|held| delta(held, version, view)) {
        Some(Some(update)) => update,
        Some(None) => Update {
            version,
            ..Update::default()
        },
        None => Update {
            version,
            full: true,
            upsert: view.to_vec(),
            ..Update::default()
        },
    }
}

/// The changes from `held` to `view` at `version`, or `None` when the view is unchanged.
pub fn delta(held: &[Rendered], version: u64, view: &[Rendered]) -> Option<Update> {
    let before: HashMap<&str, &Arc<str>> = held.iter().map(|r| (&*r.id, &r.doc)).collect();
    let now: HashSet<&str> = view.iter().map(|r| &*r.id).collect();
    let upsert: Vec<Rendered> = view
        .iter()
        .filter(|r| before.get(&*r.id).is_none_or(|doc| !same(doc, &r.doc)))
        .cloned()
        .collect();
    let remove: Vec<Arc<str>> = held
        .iter()
        .filter(|r| !now.contains(&*r.id))
        .map(|r| r.id.clone())
        .collect();
    let same_order = held.iter().map(|r| &r.id).eq(view.iter().map(|r| &r.id));
    if upsert.is_empty() && remove.is_empty() && same_order {
        return None;
    }
    // The order the proxy makes: what it kept, in place, then what is new, appended.
    let kept = held.iter().map(|r| &r.id).filter(|id| now.contains(&***id));
    let added = view
        .iter()
        .map(|r| &r.id)
        .filter(|id| !before.contains_key(&***id));
    let made: Vec<&Arc<str>> = kept.chain(added).collect();
    let order = (!made.iter().copied().eq(view.iter().map(|r| &r.id)))
        .then(|| view.iter().map(|r| r.id.clone()).collect());
    Some(Update {
        version,
        full: false,
        upsert,
        remove,
        order,
    })
}

/// Documents unchanged from one version to the next are shared: pointer equality settles
/// most compares.
fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, doc: &str) -> Rendered {
        Rendered {
            id: id.into(),
            doc: doc.into(),
        }
    }

    fn ids(list: &[Arc<str>]) -> Vec<&str> {
        list.iter().map(|id| &**id).collect()
    }

    #[test]
    fn full_state_first_then_only_changes() {
        let first_view = [r("a", "1"), r("b", "1")];
        let first = update(None, 1, &first_view);
        assert!(first.full);
        assert_eq!(first.upsert.len(), 2);
        assert_eq!(delta(&first_view, 2, &[r("a", "1"), r("b", "1")]), None);

        let changed = delta(&first_view, 3, &[r("a", "2"), r("c", "1")]).unwrap();
        assert!(!changed.full);
        assert_eq!(changed.upsert, vec![r("a", "2"), r("c", "1")]);
        assert_eq!(ids(&changed.remove), ["b"]);
        assert_eq!(changed.order, None, "kept in place, new ones appended");
        assert_eq!(changed.version, 3);
    }

    #[test]
    fn an_order_the_proxy_cannot_make_is_sent() {
        let held = [r("a", "1"), r("b", "1")];
        let reordered = delta(&held, 2, &[r("b", "1"), r("a", "1")]).unwrap();
        assert!(reordered.upsert.is_empty() && reordered.remove.is_empty());
        assert_eq!(ids(reordered.order.as_ref().unwrap()), ["b", "a"]);
        let inserted = delta(
            &[r("b", "1"), r("a", "1")],
            3,
            &[r("c", "1"), r("b", "1"), r("a", "1")],
        )
        .unwrap();
        assert_eq!(inserted.upsert, vec![r("c", "1")]);
        assert_eq!(ids(inserted.order.as_ref().unwrap()), ["c", "b", "a"]);
    }
}
