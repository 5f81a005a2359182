//! How long a capacity's refreshes wait in the service before they begin, as this fleet sees it.
//!
//! A fleet may keep more refreshes on a capacity than the capacity runs at once (its
//! `maxParallelPerCapacity` above the capacity's parallelism, so that a freed slot is used at
//! once): the rest wait in the service's queue. A standard refresh's history does not say when a
//! queued refresh began (its `startTime` is when it was requested, in the emulator; unverified
//! for the real service), so a wait timed from the trigger looks too early, and again, at every
//! queued refresh. The fleet learns the queue instead: each completed refresh of the capacity
//! took `lag` longer than its history predicted (its reported duration minus its expected
//! median); the median of the recent lags is the queue an economical wait adds to its first look.
//! Where the service reports the real begin, or nothing queues, the lags centre on zero.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Recent completions per capacity that the estimate is taken from.
const RECENT: usize = 16;

/// The recent lags per capacity.
#[derive(Debug, Default)]
pub(super) struct Queues {
    lags: HashMap<String, VecDeque<f64>>,
}

impl Queues {
    /// A refresh of `capacity` that was expected to take `expected` seconds reported `took`.
    pub(super) fn ended(&mut self, capacity: &str, expected: f64, took: Option<f64>) {
        let Some(took) = took.filter(|t| t.is_finite() && expected.is_finite()) else {
            return;
        };
        let lags = self.lags.entry(capacity.to_string()).or_default();
        if lags.len() == RECENT {
            lags.pop_front();
        }
        lags.push_back(took - expected);
    }

    /// The queue a refresh started now on `capacity` is expected to wait through.
    pub(super) fn wait(&self, capacity: &str) -> Duration {
        let Some(lags) = self.lags.get(capacity).filter(|l| !l.is_empty()) else {
            return Duration::ZERO;
        };
        let mut sorted: Vec<f64> = lags.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        Duration::from_secs_f64(sorted[sorted.len() / 2].max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_the_median_lag_of_the_capacity_s_recent_completions() {
        let mut q = Queues::default();
        assert_eq!(q.wait("A"), Duration::ZERO, "nothing seen yet");
        for took in [14.0, 13.0, 15.0, 30.0, 10.5] {
            q.ended("A", 10.0, Some(took));
        }
        assert_eq!(
            q.wait("A"),
            Duration::from_secs(4),
            "the median, not the outlier"
        );
        assert_eq!(q.wait("B"), Duration::ZERO, "each capacity its own");
        q.ended("B", 10.0, Some(8.0));
        assert_eq!(
            q.wait("B"),
            Duration::ZERO,
            "faster than expected: no queue"
        );
        q.ended("B", f64::INFINITY, Some(8.0));
        q.ended("B", 10.0, None);
        assert_eq!(
            q.lags["B"].len(),
            1,
            "without an expectation or a duration, nothing is learned"
        );
    }

    #[test]
    fn only_recent_completions_count() {
        let mut q = Queues::default();
        for _ in 0..RECENT {
            q.ended("A", 10.0, Some(40.0));
        }
        for _ in 0..=RECENT / 2 {
            q.ended("A", 10.0, Some(10.0));
        }
        assert_eq!(q.wait("A"), Duration::ZERO, "the queue emptied");
    }
}
