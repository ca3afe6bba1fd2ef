//! Circuit breaking (`trafficPolicy.connectionPool`), as Envoy's per-cluster
//! thresholds: connections, requests waiting for a connection, active
//! requests and active retries, each counted with an atomic and released by
//! a guard when the connection, wait, request or retry ends.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sluice_api::model::policy::Settings;

/// One of the thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `tcp.maxConnections`: connections to the destination, all endpoints together.
    Connections,
    /// `http.http1MaxPendingRequests`: requests waiting for a connection.
    PendingRequests,
    /// `http.http2MaxRequests`: requests in flight.
    Requests,
    /// `http.maxRetries`: retries in flight.
    Retries,
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::Connections,
        Limit::PendingRequests,
        Limit::Requests,
        Limit::Retries,
    ];

    /// The DestinationRule field that sets it.
    pub fn field(self) -> &'static str {
        match self {
            Limit::Connections => "connectionPool.tcp.maxConnections",
            Limit::PendingRequests => "connectionPool.http.http1MaxPendingRequests",
            Limit::Requests => "connectionPool.http.http2MaxRequests",
            Limit::Retries => "connectionPool.http.maxRetries",
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Connections => "max_connections",
            Limit::PendingRequests => "max_pending_requests",
            Limit::Requests => "max_requests",
            Limit::Retries => "max_retries",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::PendingRequests => "requests waiting for a connection",
            Limit::Requests => "requests in flight",
            Limit::Retries => "retries in flight",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// The thresholds in force for a destination; `u32::MAX` is no limit (the
/// value Istio gives Envoy when a field is unset or 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits([u32; 4]);

impl Default for Limits {
    fn default() -> Self {
        Limits([u32::MAX; 4])
    }
}

impl Limits {
    /// The thresholds a DestinationRule's settings give.
    pub fn of(settings: &Settings) -> Limits {
        let pool = settings.connection_pool.as_ref();
        let tcp = pool.and_then(|p| p.tcp.as_ref());
        let http = pool.and_then(|p| p.http.as_ref());
        let set = |v: Option<i32>| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(u32::MAX)
        };
        Limits([
            set(tcp.and_then(|t| t.max_connections)),
            set(http.and_then(|h| h.http1_max_pending_requests)),
            set(http.and_then(|h| h.http2_max_requests)),
            set(http.and_then(|h| h.max_retries)),
        ])
    }

    /// The threshold of `limit`.
    pub fn max(&self, limit: Limit) -> u32 {
        self.0[limit.index()]
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<String> = Limit::ALL
            .iter()
            .filter(|l| self.max(**l) != u32::MAX)
            .map(|l| format!("{}={}", l.label(), self.max(*l)))
            .collect();
        if set.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&set.join(","))
        }
    }
}

/// The counters of one destination (service, subset, port). They outlive
/// config versions: a new version with the same destination keeps counting
/// the connections and requests the old one opened.
#[derive(Debug, Default)]
pub struct Breaker {
    counts: [AtomicU32; 4],
}

impl Breaker {
    /// Counts one more of `limit` unless `max` are counted already.
    pub fn try_acquire(self: &Arc<Self>, limit: Limit, max: u32) -> Option<Permit> {
        self.counts[limit.index()]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Permit {
            breaker: self.clone(),
            limit,
        })
    }

    /// Counts one more of `limit` whatever the threshold (Envoy always lets
    /// an endpoint without connections have one, so waiting requests are
    /// never stranded).
    pub fn acquire(self: &Arc<Self>, limit: Limit) -> Permit {
        self.counts[limit.index()].fetch_add(1, Ordering::AcqRel);
        Permit {
            breaker: self.clone(),
            limit,
        }
    }

    /// How many of `limit` are counted now.
    pub fn count(&self, limit: Limit) -> u32 {
        self.counts[limit.index()].load(Ordering::Acquire)
    }

    /// Counts by limit, for the config dump.
    pub fn counts(&self) -> Vec<(&'static str, u32)> {
        Limit::ALL
            .iter()
            .map(|l| (l.label(), self.count(*l)))
            .collect()
    }
}

/// One counted connection, waiting request, request or retry; uncounted when dropped.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    limit: Limit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.breaker.counts[self.limit.index()].fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::istio::destination_rule::{ConnectionPoolSettings, HttpSettings, TcpSettings};

    use super::*;

    #[test]
    fn limits_from_settings_zero_and_unset_are_unlimited() {
        let settings = |tcp: Option<i32>, pending: Option<i32>, requests: Option<i32>| Settings {
            connection_pool: Some(ConnectionPoolSettings {
                tcp: Some(TcpSettings {
                    max_connections: tcp,
                    ..TcpSettings::default()
                }),
                http: Some(HttpSettings {
                    http1_max_pending_requests: pending,
                    http2_max_requests: requests,
                    max_retries: Some(0),
                    ..HttpSettings::default()
                }),
            }),
            ..Settings::default()
        };
        let cases = [
            (settings(Some(1), Some(2), Some(3)), [1, 2, 3, u32::MAX]),
            (settings(None, Some(0), Some(-1)), [u32::MAX; 4]),
            (Settings::default(), [u32::MAX; 4]),
        ];
        for (s, expected) in cases {
            assert_eq!(Limits::of(&s), Limits(expected));
        }
    }

    #[test]
    fn permits_count_up_to_the_threshold_and_back_down() {
        let b = Arc::new(Breaker::default());
        let first = b.try_acquire(Limit::Connections, 2).unwrap();
        let second = b.try_acquire(Limit::Connections, 2).unwrap();
        assert!(
            b.try_acquire(Limit::Connections, 2).is_none(),
            "at the limit"
        );
        assert!(
            b.try_acquire(Limit::Requests, 2).is_some(),
            "limits count apart"
        );
        let forced = b.acquire(Limit::Connections);
        assert_eq!(b.count(Limit::Connections), 3);
        drop((first, second, forced));
        assert_eq!(b.count(Limit::Connections), 0);
        assert!(b.try_acquire(Limit::Connections, 2).is_some());
    }
}
