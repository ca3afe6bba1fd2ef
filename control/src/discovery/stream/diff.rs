//! What one proxy was last sent, and the update that brings it to a new view: only what
//! changed, compared by the rendered documents.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::wire::{Rendered, Update};

/// The resources a proxy holds, in order, as it was sent them.
#[derive(Debug, Default)]
pub struct Sent {
    /// False before the first (full) update.
    started: bool,
    held: Vec<Rendered>,
}

impl Sent {
    /// The update from what was sent to `view` (rendered, in order) at `version`: the full
    /// state the first time, then the changes, or `None` when the view is unchanged.
    pub fn update(&mut self, version: u64, view: Vec<Rendered>) -> Option<Update> {
        if !self.started {
            self.started = true;
            self.held = view.clone();
            return Some(Update {
                version,
                full: true,
                upsert: view,
                ..Update::default()
            });
        }
        let before: HashMap<&str, &Arc<str>> = self.held.iter().map(|r| (&*r.id, &r.doc)).collect();
        let now: HashSet<&str> = view.iter().map(|r| &*r.id).collect();
        let upsert: Vec<Rendered> = view
            .iter()
            .filter(|r| before.get(&*r.id).is_none_or(|doc| !same(doc, &r.doc)))
            .cloned()
            .collect();
        let remove: Vec<Arc<str>> = self
            .held
            .iter()
            .filter(|r| !now.contains(&*r.id))
            .map(|r| r.id.clone())
            .collect();
        if upsert.is_empty() && remove.is_empty() && self.same_order(&view) {
            return None;
        }
        // The order the proxy makes: what it kept, in place, then what is new, appended.
        let kept = self
            .held
            .iter()
            .map(|r| &r.id)
            .filter(|id| now.contains(&***id));
        let added = view
            .iter()
            .map(|r| &r.id)
            .filter(|id| !before.contains_key(&***id));
        let made: Vec<&Arc<str>> = kept.chain(added).collect();
        let order = (!made.iter().copied().eq(view.iter().map(|r| &r.id)))
            .then(|| view.iter().map(|r| r.id.clone()).collect());
        self.held = view;
        Some(Update {
            version,
            full: false,
            upsert,
            remove,
            order,
        })
    }

    fn same_order(&self, view: &[Rendered]) -> bool {
        self.held
            .iter()
            .map(|r| &r.id)
            .eq(view.iter().map(|r| &r.id))
    }
}

/// Documents rendered once per version are shared: pointer equality settles most compares.
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
        let mut sent = Sent::default();
        let first = sent.update(1, vec![r("a", "1"), r("b", "1")]).unwrap();
        assert!(first.full);
        assert_eq!(first.upsert.len(), 2);
        assert_eq!(sent.update(2, vec![r("a", "1"), r("b", "1")]), None);

        let delta = sent.update(3, vec![r("a", "2"), r("c", "1")]).unwrap();
        assert!(!delta.full);
        assert_eq!(delta.upsert, vec![r("a", "2"), r("c", "1")]);
        assert_eq!(ids(&delta.remove), ["b"]);
        assert_eq!(delta.order, None, "kept in place, new ones appended");
        assert_eq!(delta.version, 3);
    }

    #[test]
    fn an_order_the_proxy_cannot_make_is_sent() {
        let mut sent = Sent::default();
        sent.update(1, vec![r("a", "1"), r("b", "1")]);
        let reordered = sent.update(2, vec![r("b", "1"), r("a", "1")]).unwrap();
        assert!(reordered.upsert.is_empty() && reordered.remove.is_empty());
        assert_eq!(ids(reordered.order.as_ref().unwrap()), ["b", "a"]);
        let inserted = sent
            .update(3, vec![r("c", "1"), r("b", "1"), r("a", "1")])
            .unwrap();
        assert_eq!(inserted.upsert, vec![r("c", "1")]);
        assert_eq!(ids(inserted.order.as_ref().unwrap()), ["c", "b", "a"]);
    }
}
