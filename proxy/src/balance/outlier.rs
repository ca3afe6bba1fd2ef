//! Outlier detection, as Envoy applies Istio's `outlierDetection`: an
//! endpoint with `consecutive5xxErrors` or `consecutiveGatewayErrors` in a
//! row (connect failures count as both) is ejected at once, unless
//! `maxEjectionPercent` of its destination's endpoints are out already; it
//! returns at the first `interval` sweep after base ejection time × times
//! ejected (capped at 300 s, or the base time when that is longer), and the
//! count of ejections decays by one per healthy interval.
//!
//! The sweeps are a grid of `interval` from the proxy's start: an ejection
//! ends on a grid point, computed when the endpoint is ejected, so no timer
//! runs and the request path reads one atomic per endpoint. The state is
//! kept by endpoint address, so it survives config changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sluice_api::model::policy::Outlier;

/// The longest ejection, unless the base ejection time is longer (Envoy's
/// default `max_ejection_time`).
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// Failures and ejections per endpoint address.
#[derive(Debug)]
pub struct Outliers {
    endpoints: ArcSwap<HashMap<SocketAddr, Arc<Health>>>,
    epoch: Instant,
}

impl Default for Outliers {
    fn default() -> Self {
        Outliers {
            endpoints: ArcSwap::default(),
            epoch: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// End of the current or last ejection, in ns since the epoch (0: never).
    ejected_until: AtomicU64,
    /// Times ejected, for the ejection time (Envoy's backoff); only
    /// ejecting (rare) takes this lock.
    times_ejected: Mutex<u32>,
}

impl Outliers {
    /// Records the outcome of a request or connection: its status, or `None`
    /// when the endpoint could not be reached or reset. `peers` lists the
    /// addresses of the destination's endpoints, asked for only when the
    /// endpoint reaches the policy's count of consecutive errors.
    pub fn record(
        &self,
        addr: SocketAddr,
        status: Option<u16>,
        policy: &Outlier,
        peers: impl FnOnce() -> Vec<SocketAddr>,
    ) {
        self.record_at(addr, status, policy, peers, self.now());
    }

    /// True while the endpoint is ejected.
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.ejected_at(addr, self.now())
    }

    fn record_at(
        &self,
        addr: SocketAddr,
        status: Option<u16>,
        policy: &Outlier,
        peers: impl FnOnce() -> Vec<SocketAddr>,
        now: u64,
    ) {
        let server_error = status.is_none_or(|s| s >= 500);
        if !server_error {
            // Successes are the common case: leave the map alone for healthy endpoints.
            if let Some(h) = self.endpoints.load().get(&addr) {
                h.consecutive_5xx.store(0, Ordering::Relaxed);
                h.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            return;
        }
        let gateway_error = status.is_none_or(|s| matches!(s, 502..=504));
        let h = self.entry(addr);
        let in_a_row_5xx = h.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        let in_a_row_gateway = if gateway_error {
            h.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            h.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let reached = |count: u32, limit: u32| limit > 0 && count >= limit;
        if !(reached(in_a_row_5xx, policy.consecutive_5xx)
            || reached(in_a_row_gateway, policy.consecutive_gateway))
        {
            return;
        }
        h.consecutive_5xx.store(0, Ordering::Relaxed);
        h.consecutive_gateway.store(0, Ordering::Relaxed);
        if now < h.ejected_until.load(Ordering::Relaxed) {
            return;
        }
        let peers = peers();
        let out = peers
            .iter()
            .filter(|p| **p != addr && self.ejected_at(**p, now))
            .count();
        let total = peers.len().max(1);
        if out * 100 >= policy.max_ejection_percent as usize * total {
            tracing::info!(endpoint = %addr, ejected = out, total, "not ejected: maxEjectionPercent of the destination's endpoints are ejected already");
            return;
        }
        self.eject(addr, &h, policy, now);
    }

    fn eject(&self, addr: SocketAddr, h: &Health, policy: &Outlier, now: u64) {
        let interval = nanos(policy.interval).max(1);
        let mut times = h
            .times_ejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = h.ejected_until.load(Ordering::Relaxed);
        if last > 0 {
            // One less for every sweep it has been back and healthy.
            let healthy_sweeps = (now.saturating_sub(last) / interval).min(u64::from(u32::MAX));
            *times = times.saturating_sub(healthy_sweeps as u32);
        }
        *times += 1;
        let cap = MAX_EJECTION.max(policy.base_ejection_time);
        let ejection = policy.base_ejection_time.saturating_mul(*times).min(cap);
        let until = (now + nanos(ejection)).div_ceil(interval) * interval;
        h.ejected_until.store(until, Ordering::Relaxed);
        tracing::info!(endpoint = %addr, times = *times, back_in = ?Duration::from_nanos(until - now), "endpoint ejected as an outlier");
    }

    fn ejected_at(&self, addr: SocketAddr, now: u64) -> bool {
        self.endpoints
            .load()
            .get(&addr)
            .is_some_and(|h| now < h.ejected_until.load(Ordering::Relaxed))
    }

    fn entry(&self, addr: SocketAddr) -> Arc<Health> {
        if let Some(h) = self.endpoints.load().get(&addr) {
            return h.clone();
        }
        let mut found = None;
        self.endpoints.rcu(|map| {
            let mut map = HashMap::clone(map);
            found = Some(map.entry(addr).or_default().clone());
            map
        });
        found.unwrap_or_default()
    }

    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed()).max(1)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn policy(consecutive_5xx: u32, consecutive_gateway: u32) -> Outlier {
        Outlier {
            consecutive_5xx,
            consecutive_gateway,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 100,
            min_health_percent: 0,
        }
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 80))
    }

    #[test]
    fn ejects_after_consecutive_errors_only() {
        // (policy, outcomes, ejected after them)
        let cases: [(Outlier, &[Option<u16>], bool); 6] = [
            (policy(3, 0), &[Some(500), Some(503), Some(500)], true),
            (policy(3, 0), &[Some(500), Some(200), Some(500)], false),
            (policy(0, 2), &[Some(500), Some(500)], false),
            (policy(0, 2), &[None, Some(504)], true),
            (policy(0, 2), &[None, None], true),
            (policy(5, 0), &[Some(404); 9], false),
        ];
        for (p, outcomes, ejected) in cases {
            let outliers = Outliers::default();
            for o in outcomes {
                outliers.record_at(addr(1), *o, &p, || vec![addr(1), addr(2)], SEC);
            }
            assert_eq!(outliers.ejected_at(addr(1), SEC), ejected, "{outcomes:?}");
        }
    }

    #[test]
    fn ejection_ends_on_a_sweep_and_grows_with_each_ejection() {
        let p = policy(1, 0);
        let o = Outliers::default();
        let peers = || vec![addr(1), addr(2)];
        // Ejected at 1s: base 30s, so back at the first sweep after 31s: 40s.
        o.record_at(addr(1), Some(500), &p, peers, SEC);
        for (t, ejected) in [(39, true), (40, false)] {
            assert_eq!(o.ejected_at(addr(1), t * SEC), ejected, "at {t}s");
        }
        // Ejected again at 41s, the second time: 60s, back at the sweep after 101s.
        o.record_at(addr(1), Some(500), &p, peers, 41 * SEC);
        for (t, ejected) in [(101, true), (110, false)] {
            assert_eq!(o.ejected_at(addr(1), t * SEC), ejected, "at {t}s");
        }
        // Healthy for three sweeps: the count decays from 2 to 0, so the next
        // ejection (at 145s) is the base time again: back at 180s.
        o.record_at(addr(1), Some(500), &p, peers, 145 * SEC);
        for (t, ejected) in [(179, true), (180, false)] {
            assert_eq!(o.ejected_at(addr(1), t * SEC), ejected, "at {t}s");
        }
    }

    #[test]
    fn max_ejection_percent_keeps_endpoints_in() {
        // (max %, endpoints, how many failing endpoints get ejected)
        let cases = [(100, 4, 4), (50, 4, 2), (10, 4, 1), (10, 2, 1), (0, 4, 0)];
        for (max, n, expected) in cases {
            let p = Outlier {
                max_ejection_percent: max,
                ..policy(1, 0)
            };
            let o = Outliers::default();
            let peers = || (1..=n).map(addr).collect::<Vec<_>>();
            for i in 1..=n {
                o.record_at(addr(i), Some(503), &p, peers, SEC);
            }
            let ejected = (1..=n).filter(|i| o.ejected_at(addr(*i), SEC)).count();
            assert_eq!(ejected, expected as usize, "max {max}% of {n}");
        }
    }
}
