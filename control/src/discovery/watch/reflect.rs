//! One kind's watcher: kube-rs' `watcher` (paginated lists, bookmarks, re-watch after a
//! stream ends, relist after `410 Gone`) with its default backoff, feeding a reflector
//! store, and telling the rebuild loop what changed.

use std::fmt::Debug;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use super::with_causes;

/// Objects per page of a list (client-go's pager uses the same).
const PAGE_SIZE: u32 = 500;

/// What a watcher tells the rebuild loop.
#[derive(Debug)]
pub enum Signal {
    /// An object of a listed kind was added, changed or deleted.
    Changed,
    /// The kind's objects were (re)listed into its store: the first time, or after a
    /// relist.
    Listed(String),
    /// The kind is not served (404): its CRD was removed.
    NotFound(String),
}

/// A kind to watch: its name in logs, the watch, how objects are slimmed.
pub struct Kind<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Clone + Eq + Hash,
{
    /// The kind's name (`Service`, `VirtualService`...).
    pub name: String,
    /// The API to watch (all namespaces).
    pub api: Api<K>,
    /// The store the objects go to.
    pub writer: Writer<K>,
    /// The store's dynamic type (kube-rs' key for objects of dynamic kinds).
    pub dyntype: K::DynamicType,
    /// Drops what is not read before an object is stored.
    pub slim: Box<dyn Fn(&mut K) + Send + Sync>,
}

/// Watches `kind` for ever, keeping its store current and sending a [`Signal`] for each
/// change; errors are logged, counted and retried with backoff. Ends when the rebuild
/// loop is gone.
pub async fn follow<K>(kind: Kind<K>, signals: UnboundedSender<Signal>, metrics: Arc<Metrics>)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + PartialEq + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync,
{
    let Kind {
        name,
        api,
        mut writer,
        dyntype,
        slim,
    } = kind;
    let store = writer.as_reader();
    let config = watcher::Config::default().page_size(PAGE_SIZE);
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event.modify(|object| slim(object)),
            Err(error) => {
                metrics.watch_error(&name);
                if not_found(&error) {
                    tracing::warn!(kind = %name, "the API server does not serve this kind any more (404); its objects are left out until discovery finds it again");
                    if signals.send(Signal::NotFound(name.clone())).is_err() {
                        return;
                    }
                } else if expired(&error) {
                    tracing::debug!(kind = %name, error = %with_causes(&error), "watch expired; relisting");
                } else {
                    tracing::warn!(kind = %name, error = %with_causes(&error), "watch failed; retrying with backoff");
                }
                continue;
            }
        };
        let signal = match &event {
            Event::Apply(object) => {
                let key = ObjectRef::from_obj_with(object, dyntype.clone());
                if store.get(&key).as_deref() == Some(object) {
                    // The same slim object: the stored `Arc` stays, so the rebuild
                    // knows the object did not change without comparing it.
                    continue;
                }
                Some(Signal::Changed)
            }
            Event::Delete(_) => Some(Signal::Changed),
            Event::InitDone => Some(Signal::Listed(name.clone())),
            Event::Init | Event::InitApply(_) => None,
        };
        writer.apply_watcher_event(&event);
        if let Some(signal) = signal
            && signals.send(signal).is_err()
        {
            return;
        }
    }
}

/// The API server's status code in a watcher error, when it answered with one.
fn status_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    }
}

fn not_found(error: &watcher::Error) -> bool {
    status_code(error) == Some(404)
}

/// `410 Gone`/`Expired`: the resourceVersion is too old; the watcher relists.
fn expired(error: &watcher::Error) -> bool {
    status_code(error) == Some(410)
}
