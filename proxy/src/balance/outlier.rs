//! Outlier detection: endpoints that keep failing are ejected for a while.
//! The state is keyed by endpoint address, so it survives config changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use sluice_api::model::policy::Outlier;

/// Failures and ejections per endpoint address.
#[derive(Debug, Default)]
pub struct Outliers {
    endpoints: Mutex<HashMap<SocketAddr, State>>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

impl Outliers {
    /// Records the outcome of a request: its status, or `None` when the
    /// endpoint could not be reached or reset. Ejects the endpoint when the
    /// policy's count of consecutive errors is reached.
    pub fn record(&self, addr: SocketAddr, status: Option<u16>, policy: &Outlier) {
        let server_error = status.is_none_or(|s| s >= 500);
        let gateway_error = status.is_none_or(|s| matches!(s, 502..=504));
        let mut endpoints = self.lock();
        if !server_error {
            // Successes are the common case: leave the map alone for healthy endpoints.
            if let Some(state) = endpoints.get_mut(&addr) {
                state.consecutive_5xx = 0;
                state.consecutive_gateway = 0;
            }
            return;
        }
        let state = endpoints.entry(addr).or_default();
        state.consecutive_5xx += 1;
        state.consecutive_gateway = if gateway_error {
            state.consecutive_gateway + 1
        } else {
            0
        };
        let by_5xx = policy.consecutive_5xx > 0 && state.consecutive_5xx >= policy.consecutive_5xx;
        let by_gateway = policy.consecutive_gateway > 0
            && state.consecutive_gateway >= policy.consecutive_gateway;
        if by_5xx || by_gateway {
            state.ejections += 1;
            state.ejected_until =
                Some(Instant::now() + policy.base_ejection_time * state.ejections);
            state.consecutive_5xx = 0;
            state.consecutive_gateway = 0;
            tracing::info!(endpoint = %addr, ejections = state.ejections, "endpoint ejected as an outlier");
        }
    }

    /// True while the endpoint is ejected.
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.lock()
            .get(&addr)
            .and_then(|s| s.ejected_until)
            .is_some_and(|until| until > Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, State>> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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

    #[test]
    fn ejects_after_consecutive_errors_only() {
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
        // (policy, outcomes, ejected after them)
        let cases: [(Outlier, &[Option<u16>], bool); 5] = [
            (policy(3, 0), &[Some(500), Some(503), Some(500)], true),
            (policy(3, 0), &[Some(500), Some(200), Some(500)], false),
            (policy(0, 2), &[Some(500), Some(500)], false),
            (policy(0, 2), &[None, Some(504)], true),
            (policy(5, 0), &[Some(404); 9], false),
        ];
        for (p, outcomes, ejected) in cases {
            let outliers = Outliers::default();
            for o in outcomes {
                outliers.record(addr, *o, &p);
            }
            assert_eq!(outliers.is_ejected(addr), ejected, "{outcomes:?}");
        }
    }
}
