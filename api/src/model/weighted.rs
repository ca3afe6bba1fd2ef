//! Weighted choice that follows the weights from the first request on.
//!
//! A schedule is computed once per rule with smooth weighted round robin
//! (the nginx algorithm), so 90/10 yields one "b" in every ten picks, spread
//! out, rather than a coin flip per request. At run time a pick is one
//! atomic increment. For sticky users the same weights are also laid out as
//! bucket ranges, so a user's fixed bucket picks the destination.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

/// Picks indices in proportion to their weights.
#[derive(Debug, Serialize)]
pub struct Schedule {
    order: Vec<u32>,
    #[serde(skip)]
    next: AtomicUsize,
}

impl Schedule {
    /// Builds the schedule; zero weights are never picked. `None` when all
    /// weights are zero.
    pub fn new(weights: &[u32]) -> Option<Schedule> {
        let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
        if g == 0 {
            return None;
        }
        let reduced: Vec<i64> = weights.iter().map(|w| i64::from(w / g)).collect();
        let total: i64 = reduced.iter().sum();
        let mut current = vec![0i64; reduced.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, w) in current.iter_mut().zip(&reduced) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            order.push(best as u32);
        }
        Some(Schedule {
            order,
            next: AtomicUsize::new(0),
        })
    }

    /// The next index.
    pub fn pick(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.order[n % self.order.len()] as usize
    }
}

/// The number of buckets sticky routing hashes users into (`0..BUCKETS`).
pub const BUCKETS: u16 = 10_000;

/// The bucket of a user key: a stable hash (FNV-1a, then a 64-bit finalizer so similar
/// keys spread) modulo [`BUCKETS`]. Stable across proxies, restarts and releases.
pub fn bucket(key: &[u8]) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % u64::from(BUCKETS)) as u16
}

/// Weights as cumulative bucket ranges in route order: destination `i` owns buckets
/// `[start, end)`. Raising one destination's weight only moves the buckets at the edge
/// its range grows into, so users already on it stay (monotone for two destinations).
#[derive(Debug, Serialize)]
pub struct Buckets {
    ranges: Vec<(u16, u16)>,
}

impl Buckets {
    /// The ranges of `weights`; `None` when all are zero.
    pub fn new(weights: &[u32]) -> Option<Buckets> {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut cumulative = 0u64;
        let mut start = 0u16;
        let ranges = weights
            .iter()
            .map(|w| {
                cumulative += u64::from(*w);
                let end = (cumulative * u64::from(BUCKETS) / total) as u16;
                let range = (start, end);
                start = end;
                range
            })
            .collect();
        Some(Buckets { ranges })
    }

    /// The index owning `bucket` (taken modulo [`BUCKETS`]).
    pub fn pick(&self, bucket: u16) -> usize {
        let b = bucket % BUCKETS;
        self.ranges
            .iter()
            .position(|(start, end)| (*start..*end).contains(&b))
            .unwrap_or(self.ranges.len() - 1)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(weights: &[u32], picks: usize) -> Vec<usize> {
        let s = Schedule::new(weights).unwrap();
        let mut c = vec![0; weights.len()];
        for _ in 0..picks {
            c[s.pick()] += 1;
        }
        c
    }

    #[test]
    fn first_ten_follow_90_10() {
        assert_eq!(counts(&[90, 10], 10), vec![9, 1]);
    }

    #[test]
    fn exact_over_a_period() {
        assert_eq!(counts(&[50, 50], 2), vec![1, 1]);
        assert_eq!(counts(&[70, 20, 10], 100), vec![70, 20, 10]);
        assert_eq!(counts(&[100, 0], 10), vec![10, 0]);
    }

    #[test]
    fn smooth_not_bursty() {
        let s = Schedule::new(&[80, 20]).unwrap();
        let picks: Vec<usize> = (0..5).map(|_| s.pick()).collect();
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 1);
    }

    #[test]
    fn all_zero_is_none() {
        assert!(Schedule::new(&[0, 0]).is_none());
        assert!(Buckets::new(&[0, 0]).is_none());
    }

    #[test]
    fn buckets_are_cumulative_in_route_order() {
        let b = Buckets::new(&[90, 10]).unwrap();
        assert_eq!(b.ranges, [(0, 9000), (9000, 10_000)]);
        assert_eq!(
            (b.pick(0), b.pick(8999), b.pick(9000), b.pick(9999)),
            (0, 0, 1, 1)
        );
        let zero = Buckets::new(&[0, 100, 0]).unwrap();
        assert!((0..BUCKETS).all(|k| zero.pick(k) == 1));
        let thirds = Buckets::new(&[1, 1, 1]).unwrap();
        assert_eq!(thirds.ranges, [(0, 3333), (3333, 6666), (6666, 10_000)]);
    }

    #[test]
    fn raising_a_weight_keeps_its_users_and_lowering_moves_only_the_edge() {
        let users: Vec<u16> = (0..5000)
            .map(|u| bucket(format!("user-{u}").as_bytes()))
            .collect();
        let on = |weights: &[u32]| -> Vec<usize> {
            let b = Buckets::new(weights).unwrap();
            users.iter().map(|k| b.pick(*k)).collect()
        };
        let (at10, at30) = (on(&[90, 10]), on(&[70, 30]));
        for (before, after) in at10.iter().zip(&at30) {
            assert!(
                *before == 0 || *after == 1,
                "a v2 user moved back on a raise"
            );
        }
        let share = at30.iter().filter(|v| **v == 1).count() as f64 / users.len() as f64;
        assert!((share - 0.30).abs() < 0.03, "share {share}");
        let back = on(&[90, 10]);
        assert_eq!(back, at10, "lowering again restores the same users");
    }

    #[test]
    fn bucket_is_stable_and_spread() {
        assert_eq!(bucket(b"user-1"), bucket(b"user-1"));
        let mut seen = vec![0u32; 10];
        for u in 0..10_000 {
            seen[usize::from(bucket(format!("{u}").as_bytes()) / 1000)] += 1;
        }
        assert!(seen.iter().all(|n| (850..1150).contains(n)), "{seen:?}");
    }
}
