//! What proxies that see the same share: one [`View`] per version and kind of workload
//! (namespace and labels), its full-state line, and the line from each earlier view to it,
//! each computed once however many proxies need it. A thousand proxies of a few
//! namespaces so cost a few views and diffs per version, not a thousand, and each proxy
//! holds a pointer to the view it was sent rather than a copy.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use axum::body::Bytes;
use sluice_api::model::Workload;

use super::diff;
use super::wire::Rendered;

/// Proxies with the same namespace and labels see the same view.
pub type ViewKey = (String, BTreeMap<String, String>);

/// The key of `workload`'s view.
pub fn key(workload: &Workload) -> ViewKey {
    (workload.namespace.clone(), workload.labels.clone())
}

/// The views of one version, by kind of workload; each is picked once, by the first
/// proxy that needs it, while the others of its kind wait for it.
#[derive(Debug, Default)]
pub struct Views(Mutex<HashMap<ViewKey, Arc<OnceLock<Arc<View>>>>>);

impl Views {
    /// The view for `key`, picked by `pick` if it is the first asked for.
    pub fn get(&self, key: ViewKey, pick: impl FnOnce() -> View) -> Arc<View> {
        let cell = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(|| Arc::new(pick())).clone()
    }
}

/// The line from one view to another, made once (none: nothing changed).
type Delta = OnceLock<Option<Bytes>>;

/// One proxy kind's view of one version: its resources, rendered, in order.
#[derive(Debug)]
pub struct View {
    version: u64,
    resources: Vec<Rendered>,
    full: OnceLock<Bytes>,
    /// The line from each earlier view proxies held. Weak: a view does not keep the ones
    /// before it alive.
    deltas: Mutex<Vec<(Weak<View>, Arc<Delta>)>>,
}

impl View {
    /// The view of `version` holding `resources`.
    pub fn new(version: u64, resources: Vec<Rendered>) -> View {
        View {
            version,
            resources,
            full: OnceLock::new(),
            deltas: Mutex::default(),
        }
    }

    /// The version it belongs to.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The line that brings a proxy holding `held` (none: a new stream) to this view, or
    /// none when its view did not change.
    pub fn line_from(self: &Arc<Self>, held: Option<&Arc<View>>) -> Option<Bytes> {
        let Some(held) = held else {
            let full = || Bytes::from(diff::update(None, self.version, &self.resources).line());
            return Some(self.full.get_or_init(full).clone());
        };
        if Arc::ptr_eq(held, self) {
            return None;
        }
        let cell = {
            let mut deltas = self.deltas.lock().unwrap_or_else(PoisonError::into_inner);
            deltas.retain(|(from, _)| from.strong_count() > 0);
            let found = deltas
                .iter()
                .find(|(from, _)| std::ptr::eq(from.as_ptr(), Arc::as_ptr(held)));
            match found {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceLock::new());
                    deltas.push((Arc::downgrade(held), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| {
            diff::delta(&held.resources, self.version, &self.resources)
                .map(|update| Bytes::from(update.line()))
        })
        .clone()
    }
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

    #[test]
    fn lines_are_made_once_and_shared() {
        let one = Arc::new(View::new(1, vec![r("a", "1")]));
        let full = one.line_from(None).unwrap();
        assert!(full.starts_with(br#"{"version":1,"full":true"#));
        assert_eq!(
            one.line_from(None).unwrap().as_ptr(),
            full.as_ptr(),
            "made once"
        );
        assert_eq!(one.line_from(Some(&one)), None, "held already");

        let two = Arc::new(View::new(2, vec![r("a", "2")]));
        let delta = two.line_from(Some(&one)).unwrap();
        assert!(delta.starts_with(br#"{"version":2,"full":false"#));
        assert_eq!(two.line_from(Some(&one)).unwrap().as_ptr(), delta.as_ptr());
        let same = Arc::new(View::new(3, vec![r("a", "2")]));
        assert_eq!(same.line_from(Some(&two)), None, "no change for it");
    }

    #[test]
    fn a_view_does_not_keep_earlier_ones_alive() {
        let one = Arc::new(View::new(1, vec![r("a", "1")]));
        let two = Arc::new(View::new(2, vec![r("a", "2")]));
        two.line_from(Some(&one));
        let weak = Arc::downgrade(&one);
        drop(one);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn each_kind_of_workload_has_its_view_picked_once() {
        let views = Views::default();
        let shop = Workload {
            namespace: "shop".into(),
            labels: BTreeMap::new(),
            cluster_domain: Default::default(),
        };
        let first = views.get(key(&shop), || View::new(1, vec![]));
        let again = views.get(key(&shop), || panic!("picked again"));
        assert!(Arc::ptr_eq(&first, &again));
        let other = Workload {
            namespace: "web".into(),
            ..shop
        };
        let web = views.get(key(&other), || View::new(1, vec![r("a", "1")]));
        assert!(!Arc::ptr_eq(&first, &web));
    }
}
