//! When to poll next: a pure function of what the item's history predicts, how long it has been
//! running and how many polls were made.
//!
//! With a history (the durations of the item's recent successful refreshes), the wait sleeps
//! sparsely — straight towards the start of the window where the refresh is expected to end, in
//! steps of at most `poll.max` — then polls densely inside that window (every 2 % of the
//! expected duration, so the end is seen within 2 % of it), and when the refresh runs long it
//! backs off with the elapsed time (every 2 % of it). Without a history, intervals grow by half
//! from `poll.min`. Always within `[poll.min, poll.max]`, with a little jitter so runners started
//! together spread out; a service's `Retry-After` is applied by the caller on top.

use std::time::Duration;

/// How precisely the end of a refresh is detected: this fraction of its duration.
const PRECISION: f64 = 0.02;
/// The narrowest window around the expected end, as a fraction of the expected duration.
const MIN_SPREAD: f64 = 0.05;
/// Jitter amplitude (±).
const JITTER: f64 = 0.1;

/// What the history predicts of a refresh's duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// The typical (median) duration.
    pub median: Duration,
    /// Half the width of the window where it usually ends, as a fraction of the median.
    pub spread: f64,
}

impl Expectation {
    /// Learns from the durations of recent successful refreshes; `None` without any.
    pub fn from_durations(durations: &[Duration]) -> Option<Expectation> {
        let mut secs: Vec<f64> = durations
            .iter()
            .map(Duration::as_secs_f64)
            .filter(|s| *s > 0.0)
            .collect();
        if secs.is_empty() {
            return None;
        }
        secs.sort_by(f64::total_cmp);
        let at = |q: f64| secs[((secs.len() - 1) as f64 * q).round() as usize];
        let median = at(0.5);
        // The 10th–90th percentile range, as a half-width relative to the median.
        let spread = ((at(0.9) - at(0.1)) / 2.0 / median).max(MIN_SPREAD);
        Some(Expectation {
            median: Duration::from_secs_f64(median),
            spread,
        })
    }

    fn window(&self) -> (f64, f64) {
        let m = self.median.as_secs_f64();
        (m * (1.0 - self.spread).max(0.0), m * (1.0 + self.spread))
    }
}

/// The bounds of the polling interval, and what is known of the item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    /// Shortest interval.
    pub min: Duration,
    /// Longest interval.
    pub max: Duration,
    /// What the history predicts, when there is one.
    pub expectation: Option<Expectation>,
}

impl PollPolicy {
    /// A policy without history.
    pub fn bounded(min: Duration, max: Duration) -> PollPolicy {
        PollPolicy {
            min,
            max,
            expectation: None,
        }
    }

    /// The delay before the next poll, when the item has been running for `elapsed` and
    /// `polls` polls were made; `jitter` in `[-1, 1]`.
    pub fn next(&self, elapsed: Duration, polls: u32, jitter: f64) -> Duration {
        let (min, max) = (
            self.min.as_secs_f64(),
            self.max.as_secs_f64().max(self.min.as_secs_f64()),
        );
        let t = elapsed.as_secs_f64();
        let base = match self.expectation {
            None => min * 1.5f64.powi(polls.min(64) as i32),
            Some(e) => {
                let (start, end) = e.window();
                let dense = PRECISION * e.median.as_secs_f64();
                if t + dense < start {
                    // Sparse: straight to the window (the caller caps each sleep at `max`).
                    start - t
                } else if t <= end {
                    dense
                } else {
                    // Running long: keep the end within 2 % of the actual duration.
                    PRECISION * t
                }
            }
        };
        let jittered = base * (1.0 + JITTER * jitter.clamp(-1.0, 1.0));
        Duration::from_secs_f64(jittered.clamp(min, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn without_history_intervals_grow_from_min_to_max() {
        let p = PollPolicy::bounded(s(5.0), s(60.0));
        assert_eq!(p.next(s(0.0), 0, 0.0), s(5.0));
        assert_eq!(p.next(s(5.0), 1, 0.0), s(7.5));
        assert_eq!(p.next(s(500.0), 20, 0.0), s(60.0));
        assert_eq!(
            p.next(s(0.0), 0, -1.0),
            s(5.0),
            "jitter never goes below min"
        );
        assert_eq!(p.next(s(500.0), 30, 1.0), s(60.0), "nor above max");
    }

    #[test]
    fn history_is_learned_as_a_median_and_a_window() {
        let e = Expectation::from_durations(&[s(100.0), s(110.0), s(90.0), s(105.0), s(95.0)])
            .expect("learned");
        assert_eq!(e.median, s(100.0));
        assert!((e.spread - 0.1).abs() < 1e-9, "{}", e.spread);
        let narrow = Expectation::from_durations(&[s(100.0); 3]).expect("learned");
        assert_eq!(narrow.spread, MIN_SPREAD);
        assert_eq!(Expectation::from_durations(&[]), None);
    }

    #[test]
    fn with_history_it_sleeps_to_the_window_then_polls_densely_then_backs_off() {
        let e = Expectation {
            median: s(3600.0),
            spread: 0.1,
        };
        let p = PollPolicy {
            min: s(1.0),
            max: s(300.0),
            expectation: Some(e),
        };
        assert_eq!(p.next(s(0.0), 0, 0.0), s(300.0), "sparse, capped at max");
        assert_eq!(
            p.next(s(3100.0), 5, 0.0),
            s(140.0),
            "straight to the window at 3240 s"
        );
        assert_eq!(
            p.next(s(3500.0), 6, 0.0),
            s(72.0),
            "dense: 2 % of the expected hour"
        );
        assert_eq!(
            p.next(s(5000.0), 9, 0.0),
            s(100.0),
            "long: 2 % of the elapsed time"
        );
        let short = PollPolicy {
            min: s(1.0),
            max: s(60.0),
            expectation: Some(Expectation {
                median: s(10.0),
                spread: 0.05,
            }),
        };
        assert_eq!(short.next(s(0.0), 0, 0.0), s(9.5));
        assert_eq!(
            short.next(s(9.5), 1, 0.0),
            s(1.0),
            "dense, but never below min"
        );
    }
}
