//! Header propagation across hops: a configured header (`x-swimlane`, `baggage`) seen on a
//! request entering the pod is remembered under the request's trace context, and added to
//! the requests the app sends with the same trace context while serving it. The app must
//! forward one of `traceparent`, `x-request-id`, `x-b3-traceid` or `b3`; a request without
//! any cannot be correlated and gets nothing. The table is bounded (the oldest entry goes
//! first) and entries expire after the configured TTL.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};
use sluice_api::model::Propagation;

/// The carried headers of one inbound request.
#[derive(Debug)]
struct Entry {
    headers: Vec<(HeaderName, HeaderValue)>,
    at: Instant,
}

/// Remembered inbound requests by trace key, and when each key was recorded, oldest first.
#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    order: VecDeque<(String, Instant)>,
}

/// The propagation table of one proxy.
#[derive(Debug, Default)]
pub struct Table {
    inner: Mutex<Inner>,
}

/// The trace keys of a request: the trace id of `traceparent`, `x-request-id`, the b3 trace
/// id (`x-b3-traceid` or the first field of `b3`), each prefixed by its kind.
fn trace_keys(headers: &HeaderMap) -> Vec<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut keys = Vec::new();
    if let Some(id) = text("traceparent").and_then(|t| t.split('-').nth(1)) {
        keys.push(format!("w3c:{id}"));
    }
    if let Some(id) = text("x-request-id").filter(|v| !v.is_empty()) {
        keys.push(format!("rid:{id}"));
    }
    let b3 = text("x-b3-traceid").or_else(|| text("b3").and_then(|v| v.split('-').next()));
    if let Some(id) = b3.filter(|v| !v.is_empty()) {
        keys.push(format!("b3:{id}"));
    }
    keys
}

impl Table {
    /// Remembers the carried headers of an inbound request under its trace keys.
    pub fn record(&self, settings: &Propagation, headers: &HeaderMap) {
        let carried: Vec<(HeaderName, HeaderValue)> = settings
            .headers
            .iter()
            .filter_map(|h| headers.get(h.as_str()).map(|v| (h, v)))
            .filter_map(|(h, v)| Some((HeaderName::from_bytes(h.as_bytes()).ok()?, v.clone())))
            .collect();
        if carried.is_empty() {
            return;
        }
        let keys = trace_keys(headers);
        if keys.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.expire(now, settings);
        for key in keys {
            // `order` holds every entry (and stale records of keys seen again), so
            // bounding it bounds the table.
            while inner.order.len() >= settings.max_entries {
                let Some((oldest, at)) = inner.order.pop_front() else {
                    break;
                };
                if inner.entries.get(&oldest).is_some_and(|e| e.at == at) {
                    inner.entries.remove(&oldest);
                }
            }
            inner.order.push_back((key.clone(), now));
            inner.entries.insert(
                key,
                Entry {
                    headers: carried.clone(),
                    at: now,
                },
            );
        }
    }

    /// Adds the remembered headers of the inbound request an outbound request belongs to
    /// (by its trace keys); headers the request already has stay as they are. Returns the
    /// number added.
    pub fn apply(&self, settings: &Propagation, headers: &mut HeaderMap) -> usize {
        let keys = trace_keys(headers);
        if keys.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.expire(now, settings);
        let Some(entry) = keys.iter().find_map(|k| inner.entries.get(k)) else {
            return 0;
        };
        let mut added = 0;
        for (name, value) in &entry.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
                added += 1;
            }
        }
        added
    }

    /// The number of remembered trace keys.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops entries older than the TTL, oldest first.
    fn expire(&mut self, now: Instant, settings: &Propagation) {
        while let Some((key, at)) = self.order.front() {
            if now.duration_since(*at) < settings.ttl {
                break;
            }
            // A key recorded again later has a newer entry: keep that one.
            if self.entries.get(key).is_some_and(|e| e.at == *at) {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(max_entries: usize, ttl: Duration) -> Propagation {
        Propagation {
            headers: vec!["x-swimlane".into(), "baggage".into()],
            max_entries,
            ttl,
        }
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn carried_by_each_kind_of_trace_context_and_never_overwritten() {
        let s = settings(100, Duration::from_secs(30));
        let t = Table::default();
        t.record(
            &s,
            &request(&[
                ("x-swimlane", "gray"),
                ("baggage", "lane=gray"),
                ("x-request-id", "r1"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ]),
        );
        for by in [
            ("x-request-id", "r1"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
            ),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ] {
            let mut out = request(&[by]);
            assert_eq!(t.apply(&s, &mut out), 2, "{by:?}");
            assert_eq!(out["x-swimlane"], "gray");
            assert_eq!(out["baggage"], "lane=gray");
        }
        let mut own = request(&[("x-request-id", "r1"), ("x-swimlane", "blue")]);
        assert_eq!(t.apply(&s, &mut own), 1);
        assert_eq!(own["x-swimlane"], "blue", "the app's own value stays");
        let mut none = request(&[("x-other", "1")]);
        assert_eq!(t.apply(&s, &mut none), 0, "no trace header: no correlation");
        let mut unknown = request(&[("x-request-id", "r2")]);
        assert_eq!(t.apply(&s, &mut unknown), 0);
    }

    #[test]
    fn bounded_and_expiring() {
        let s = settings(2, Duration::from_secs(30));
        let t = Table::default();
        for id in ["a", "b", "c"] {
            let mut h = request(&[("x-swimlane", "gray")]);
            h.insert("x-request-id", HeaderValue::from_static(id));
            t.record(&s, &h);
        }
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.apply(&s, &mut request(&[("x-request-id", "a")])),
            0,
            "the oldest went"
        );
        assert_eq!(t.apply(&s, &mut request(&[("x-request-id", "c")])), 1);

        let short = settings(10, Duration::ZERO);
        let t = Table::default();
        t.record(
            &short,
            &request(&[("x-swimlane", "gray"), ("x-request-id", "r")]),
        );
        assert_eq!(
            t.apply(&short, &mut request(&[("x-request-id", "r")])),
            0,
            "expired"
        );
        assert!(t.is_empty());
        t.record(&short, &request(&[("x-request-id", "r")]));
        assert!(t.is_empty(), "nothing to carry: nothing remembered");
    }
}
