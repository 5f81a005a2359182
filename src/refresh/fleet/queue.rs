//! How long a capacity's refreshes wait in the service before they begin, as this fleet sees it.
//!
//! A fleet may keep more refreshes on a capacity than the capacity runs at once (its
//! `maxParallelPerCapacity` above the capacity's parallelism, so that a freed slot is used at
//! once): the rest wait in the service's queue, and a wait timed from the trigger looks too early
//! at every one of them. While a standard refresh runs, its history entry does not say whether it
//! began; once it ended, its first attempt's start does (`Run::began`, later than the request by
//! the queue it waited through). Where seven in ten of the recent such waits on a capacity had
//! ended is what an economical wait there adds to its first look (nine in ten, a frugal one).
//! Where the service does not say, nothing is learned and nothing is added.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::wait::Queue;

/// Recent refreshes per capacity that the estimate is taken from.
const RECENT: usize = 16;

/// The recent queue waits per capacity, in seconds.
#[derive(Debug, Default)]
pub(super) struct Queues {
    waits: HashMap<String, VecDeque<f64>>,
}

impl Queues {
    /// A refresh of `capacity` ended, having waited `queued` seconds in the service (when said).
    pub(super) fn ended(&mut self, capacity: &str, queued: Option<f64>) {
        let Some(queued) = queued.filter(|q| q.is_finite() && *q >= 0.0) else {
            return;
        };
        let waits = self.waits.entry(capacity.to_string()).or_default();
        if waits.len() == RECENT {
            waits.pop_front();
        }
        waits.push_back(queued);
    }

    /// The queue a refresh started now on `capacity` is expected to wait through: where seven
    /// and nine in ten of the recent waits there had ended.
    pub(super) fn wait(&self, capacity: &str) -> Queue {
        let Some(waits) = self.waits.get(capacity).filter(|w| !w.is_empty()) else {
            return Queue::NONE;
        };
        let mut sorted: Vec<f64> = waits.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            Duration::from_secs_f64(sorted[i])
        };
        Queue {
            likely: at(0.7),
            late: at(0.9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_where_seven_and_nine_in_ten_recent_waits_of_the_capacity_ended() {
        let mut q = Queues::default();
        assert_eq!(q.wait("A"), Queue::NONE, "nothing seen yet");
        for waited in [4.0, 3.0, 5.0, 60.0, 0.5, 1.0, 2.0, 6.0, 7.0, 8.0] {
            q.ended("A", Some(waited));
        }
        assert_eq!(
            q.wait("A"),
            Queue {
                likely: Duration::from_secs(6),
                late: Duration::from_secs(8),
            },
            "seven and nine in ten, not the outlier"
        );
        assert_eq!(q.wait("B"), Queue::NONE, "each capacity its own");
        q.ended("B", None);
        q.ended("B", Some(f64::NAN));
        assert!(!q.waits.contains_key("B"), "an unsaid wait teaches nothing");
    }

    #[test]
    fn only_recent_refreshes_count() {
        let mut q = Queues::default();
        for _ in 0..RECENT {
            q.ended("A", Some(40.0));
        }
        for _ in 0..RECENT {
            q.ended("A", Some(0.0));
        }
        assert_eq!(q.wait("A"), Queue::NONE, "the queue emptied");
    }
}
