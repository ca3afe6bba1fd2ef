//! Watches: a chunked stream of JSON event lines, replaying history after a resourceVersion (or
//! the current state first), then live changes, bookmarks, until `timeoutSeconds`, the client,
//! or `end_watches()` ends it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::watch as channel;
use tokio::time::{Instant, Interval};

use super::Body;
use super::query::ListQuery;
use super::route::Target;
use super::{Shared, present};
use crate::catalog::ResourceType;
use crate::status::ApiError;
use crate::store::{Change, Expired};

/// The annotation of the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Starts a watch: the response head now, events as the body.
pub fn start(
    shared: Arc<Shared>,
    target: &Target<'_>,
    q: ListQuery,
) -> Result<Response<Body>, ApiError> {
    let mut watch = Watch {
        resource: target.resource.clone(),
        version: target.version.to_string(),
        namespace: target.namespace.map(str::to_string),
        pending: VecDeque::new(),
        position: 0,
        deadline: Instant::now() + q.timeout.unwrap_or(shared.watch_timeout),
        bookmarks: q.bookmarks.then(|| {
            tokio::time::interval_at(
                Instant::now() + shared.bookmark_interval,
                shared.bookmark_interval,
            )
        }),
        changes: shared.store.subscribe(),
        ends: shared.ends.subscribe(),
        done: false,
        shared: shared.clone(),
        query: q,
    };
    let initial = watch.query.send_initial_events
        || matches!(watch.query.resource_version.as_str(), "" | "0");
    if initial {
        watch.initial_events();
    } else {
        let rv = watch.query.resource_version_number()?;
        let current = shared.store.resource_version();
        if rv > current {
            return Err(ApiError::too_large_resource_version(rv, current));
        }
        watch.position = rv;
    }
    let events = stream::unfold(watch, |mut watch| async move {
        let line = watch.next().await?;
        Some((Ok(Frame::data(line)), watch))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(events)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

struct Watch {
    shared: Arc<Shared>,
    resource: ResourceType,
    version: String,
    namespace: Option<String>,
    query: ListQuery,
    /// Event lines ready to send.
    pending: VecDeque<Bytes>,
    /// The resourceVersion up to which changes were looked at.
    position: u64,
    deadline: Instant,
    bookmarks: Option<Interval>,
    changes: channel::Receiver<u64>,
    ends: channel::Receiver<u64>,
    done: bool,
}

impl Watch {
    /// Synthetic ADDED events for the current state (and, for a streaming list, the bookmark
    /// that ends them).
    fn initial_events(&mut self) {
        self.changes.borrow_and_update();
        let namespace = self.namespace.as_deref();
        let Ok(snapshot) = self.shared.store.list(&self.resource, namespace, None) else {
            return;
        };
        for (_, object) in snapshot.items {
            if self.selects(Some(&object)) {
                self.push("ADDED", &object);
            }
        }
        self.position = snapshot.resource_version;
        if self.query.send_initial_events {
            self.push_bookmark(true);
        }
    }

    /// The next event line; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.done {
                return None;
            }
            self.changes.borrow_and_update();
            match self.shared.store.changes_after(self.position) {
                Ok((changes, current)) => {
                    for change in changes {
                        self.push_change(&change);
                    }
                    self.position = current;
                }
                Err(expired) => self.push_expired(expired),
            }
            if !self.pending.is_empty() {
                continue;
            }
            let bookmarks = self.bookmarks.as_mut();
            tokio::select! {
                biased;
                _ = self.ends.changed() => return None,
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.changes.changed() => {}
                _ = tick(bookmarks) => self.push_bookmark(false),
            }
        }
    }

    fn selects(&self, object: Option<&Value>) -> bool {
        object.is_some_and(|o| {
            self.query
                .labels
                .matches(o.pointer("/metadata/labels").and_then(Value::as_object))
                && self.query.fields.matches(o)
        })
    }

    /// The event a change makes for this watch, as the API server's watch cache decides it:
    /// an object moving into the selection is ADDED, one moving out is DELETED.
    fn push_change(&mut self, change: &Change) {
        let key = &change.key;
        let in_scope = key.group == self.resource.group
            && key.plural == self.resource.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace);
        if !in_scope {
            return;
        }
        let was = self.selects(change.prev.as_deref());
        let is = self.selects(change.cur.as_deref());
        match (&change.prev, &change.cur, was, is) {
            (_, Some(cur), true, true) => self.push("MODIFIED", cur),
            (_, Some(cur), false, true) => self.push("ADDED", cur),
            (Some(prev), _, true, false) => {
                let mut gone = prev.as_ref().clone();
                gone["metadata"]["resourceVersion"] = json!(change.rv.to_string());
                self.push("DELETED", &gone);
            }
            _ => {}
        }
    }

    fn push(&mut self, kind: &str, object: &Value) {
        let object = present(object, &self.resource, &self.version);
        self.push_line(json!({"type": kind, "object": object}));
    }

    fn push_bookmark(&mut self, initial_events_end: bool) {
        let mut metadata = json!({"resourceVersion": self.position.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(&self.version),
            "metadata": metadata,
        });
        self.push_line(json!({"type": "BOOKMARK", "object": object}));
    }

    /// The history this watch needs is gone: an ERROR event with 410 Expired ends it, as the
    /// API server does (the HTTP status is still 200).
    fn push_expired(&mut self, expired: Expired) {
        let status = ApiError::expired(format!(
            "too old resource version: {} ({})",
            expired.requested, expired.oldest
        ))
        .to_status();
        self.push_line(json!({"type": "ERROR", "object": status}));
        self.done = true;
    }

    fn push_line(&mut self, event: Value) {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        self.pending.push_back(Bytes::from(line));
    }
}

/// The next bookmark tick, or never without bookmarks.
async fn tick(interval: Option<&mut Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
