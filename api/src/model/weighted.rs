//! Weighted choice that follows the weights from the first request on.
//!
//! A schedule is computed once per rule with smooth weighted round robin
//! (the nginx algorithm), so 90/10 yields one "b" in every ten picks, spread
//! out, rather than a coin flip per request. At run time a pick is one
//! atomic increment.

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
    }
}
