//! When to poll next: a pure function of what the item's history predicts, how long it has been
//! running and how many polls were made.
//!
//! With a history (the durations of the item's recent successful refreshes), the wait sleeps
//! sparsely — straight towards the start of the window where the refresh is expected to end, in
//! steps of at most `poll.max` — then polls every 2 % of the time elapsed, so the end is seen
//! within 2 % of the refresh's duration, however long it runs. Without a history (a model's first refresh),
//! each interval is a tenth of the time elapsed, so the end is seen within 10 % of the duration
//! at a cost that grows only with its logarithm. Always within `[poll.min, poll.max]` (but see
//! [`Ceiling::Default`]), with a little jitter so runners started together spread out, and one
//! look just past `maxOverrun`; a service's `Retry-After` is applied by the caller on top.
//!
//! That precision has a price in calls, paid gladly when someone waits for the end (one item, or
//! a fleet item that others depend on). A fleet item nobody waits on aims at the fewest calls
//! instead ([`Aim::Economy`]): the capacity's own queue in the service starts the next refresh
//! the moment one ends, so seeing the end a little later costs the night nothing, while every
//! call spent counts against the principal's API budget, which a large fleet exhausts first.
//! It looks first where about seven in ten recent runs had ended (halfway between the median and
//! the 90th percentile), then every third of the time elapsed (with the default `poll.max`, one
//! early look first and steps of up to a quarter of the way). A refresh that waits in the
//! service's queue first is looked at that much later, the queue counted at the same point of
//! its own spread (seven in ten recent waits, [`Queue`]): its median would look too early at
//! every refresh that waited longer than most, and the wait varies as much as the run.

use std::time::Duration;

/// How precisely the end of a refresh is detected: this fraction of its duration.
const PRECISION: f64 = 0.02;
/// The narrowest window around the expected end, as a fraction of the expected duration.
const MIN_SPREAD: f64 = 0.05;
/// Added to the observed range on each side of the window.
const MARGIN: f64 = 0.03;
/// Without history: the interval as a fraction of the elapsed time.
const BLIND: f64 = 0.1;
/// Jitter amplitude: intervals are shortened by up to this fraction.
const JITTER: f64 = 0.1;
/// Economy, past the first look: the interval as a fraction of the elapsed time.
const ECONOMY: f64 = 1.0 / 3.0;
/// Frugal, past the first look: the interval as a fraction of the elapsed time.
const FRUGAL: f64 = 0.5;
/// With the default `poll.max`, an economical or frugal wait looks at least this often, as a
/// fraction of the time to its first look: a place it holds for a refresh that ended unseen is
/// held at most that long.
const QUARTER: f64 = 0.25;

/// How long refreshes on the item's capacity lately waited in the service's queue before they
/// began: seven in ten waited at most `likely`, nine in ten at most `late`. An economical wait
/// adds `likely` to its first look, a frugal one `late`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queue {
    /// Seven in ten recent waits were at most this.
    pub likely: Duration,
    /// Nine in ten recent waits were at most this.
    pub late: Duration,
}

impl Queue {
    /// No queue (what is assumed until one is seen).
    pub const NONE: Queue = Queue {
        likely: Duration::ZERO,
        late: Duration::ZERO,
    };
}

/// What `max` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ceiling {
    /// The task gave `poll.max`: it bounds every interval, whatever the aim.
    #[default]
    Given,
    /// `poll.max` is the default. It bounds every interval of a prompt wait and of a wait without
    /// a history. An economical or frugal wait with a history looks once by then (past the
    /// queue: most failures show early, such as missing credentials, a gateway, a refused
    /// source), then at least every quarter of the time to its first look, however long that is:
    /// a two-hour refresh costs about five reads instead of sixty, and one that ends unseen
    /// holds its place at most a quarter of its usual duration.
    Default,
}

/// What a wait optimizes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aim {
    /// See the end within 2 % of the duration (10 % without a history).
    #[default]
    Promptness,
    /// The fewest calls: a first look where most recent runs had ended, then every third of the
    /// time elapsed.
    Economy,
    /// Economy once the service has throttled the run (its API budget is what binds the night):
    /// a first look where nine in ten recent runs had ended, then every half of the time elapsed.
    Frugal,
}

/// What the history predicts of a refresh's duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// The typical (median) duration.
    pub median: Duration,
    /// Half the width of the window where it usually ends, as a fraction of the median.
    pub spread: f64,
    /// Nine in ten recent successful runs ended within this: past it, a run is overrunning.
    pub p90: Duration,
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
        // The whole observed range, as a half-width relative to the median, plus a margin: a
        // refresh that ends just outside what was seen before must still be caught in the window.
        let spread = ((at(1.0) - at(0.0)) / 2.0 / median + MARGIN).max(MIN_SPREAD);
        Some(Expectation {
            median: Duration::from_secs_f64(median),
            spread,
            p90: Duration::from_secs_f64(at(0.9)),
        })
    }

    /// `maxOverrun` as a running time: `multiple` times what nine in ten recent runs took.
    pub fn overrun_at(&self, multiple: f64) -> Duration {
        self.p90.mul_f64(multiple)
    }

    /// Where the window of the expected end starts.
    fn window_start(&self) -> f64 {
        self.median.as_secs_f64() * (1.0 - self.spread).max(0.0)
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
    /// Promptness or economy.
    pub aim: Aim,
    /// The wait in the service's queue before the refresh begins: economy and frugal look that
    /// much later (promptness does not guess: a queue may empty at any time).
    pub queue: Queue,
    /// Whether `max` bounds every interval.
    pub ceiling: Ceiling,
    /// `maxOverrun` as a running time: one look lands just past it, so the wait ends there
    /// whatever the step.
    pub give_up: Option<Duration>,
}

impl PollPolicy {
    /// A policy without history.
    pub fn bounded(min: Duration, max: Duration) -> PollPolicy {
        PollPolicy {
            min,
            max,
            expectation: None,
            aim: Aim::Promptness,
            queue: Queue::NONE,
            ceiling: Ceiling::Given,
            give_up: None,
        }
    }

    /// The delay before the next poll, when the item has been running for `elapsed`;
    /// `jitter` in `[-1, 1]`.
    pub fn next(&self, elapsed: Duration, jitter: f64) -> Duration {
        let (min, max) = (
            self.min.as_secs_f64(),
            self.max.as_secs_f64().max(self.min.as_secs_f64()),
        );
        let t = elapsed.as_secs_f64();
        let u = jitter.clamp(-1.0, 1.0).abs();
        // Jitter only shortens an interval: a longer one would overshoot the window or the
        // precision promised above.
        let mut ceiling = max;
        let jittered = match (self.aim, self.expectation) {
            (Aim::Promptness, None) => BLIND * t * (1.0 - JITTER * u),
            (Aim::Economy, None) => ECONOMY * t * (1.0 - JITTER * u),
            (Aim::Frugal, None) => FRUGAL * t * (1.0 - JITTER * u),
            (Aim::Economy | Aim::Frugal, Some(e)) => {
                let (first, queue, fraction) = if self.aim == Aim::Frugal {
                    (e.p90, self.queue.late, FRUGAL)
                } else {
                    ((e.median + e.p90) / 2, self.queue.likely, ECONOMY)
                };
                let (first, queue) = ((first + queue).as_secs_f64(), queue.as_secs_f64());
                let stretched = self.ceiling == Ceiling::Default;
                if stretched {
                    ceiling = max.max(QUARTER * first);
                }
                // Where failures show: `max` into the run, once the queue lets it begin.
                let early = max + queue;
                // Half of `max` at least before it, or a read just made (attaching) tells the same.
                if stretched && t < early - max / 2.0 && early < first {
                    early - t
                } else if t + min < first {
                    // Straight to the first look, in steps of at most the ceiling.
                    first - t
                } else {
                    fraction * t * (1.0 - JITTER * u)
                }
            }
            (Aim::Promptness, Some(e)) => {
                let start = e.window_start();
                // Within 2 % of any duration at least as long as the time already elapsed.
                let dense = (PRECISION * t.max(start)).max(min);
                if t + dense < start {
                    // Sparse: straight to the window (each sleep capped at `max` below),
                    // landing early by less than one dense interval; a short gap is not
                    // jittered at all, so a short refresh costs no extra poll.
                    let gap = start - t;
                    if gap > 10.0 * dense {
                        gap - u * (JITTER * gap).min(dense)
                    } else {
                        gap
                    }
                } else {
                    // In the window, and beyond it when the refresh runs long.
                    dense * (1.0 - JITTER * u)
                }
            }
        };
        let mut next = jittered.clamp(min, ceiling);
        if let Some(limit) = self.give_up.map(|d| d.as_secs_f64()) {
            if t < limit {
                // One look just past `maxOverrun`, however long the step.
                next = next.min(limit - t + min);
            }
        }
        Duration::from_secs_f64(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn without_history_intervals_are_a_tenth_of_the_elapsed_time_within_bounds() {
        let p = PollPolicy::bounded(s(5.0), s(60.0));
        assert_eq!(p.next(s(0.0), 0.0), s(5.0));
        assert_eq!(p.next(s(100.0), 0.0), s(10.0));
        assert_eq!(p.next(s(5000.0), 0.0), s(60.0));
        assert_eq!(p.next(s(0.0), -1.0), s(5.0), "jitter never goes below min");
        assert_eq!(p.next(s(5000.0), 1.0), s(60.0), "nor above max");
        assert_eq!(p.next(s(100.0), 1.0), s(9.0), "jitter shortens");
        assert!(p.next(s(100.0), 0.5) > p.next(s(100.0), -1.0));
    }

    #[test]
    fn history_is_learned_as_a_median_and_a_window() {
        let e = Expectation::from_durations(&[s(100.0), s(110.0), s(90.0), s(105.0), s(95.0)])
            .expect("learned");
        assert_eq!(e.median, s(100.0));
        assert!((e.spread - 0.13).abs() < 1e-9, "{}", e.spread);
        let narrow = Expectation::from_durations(&[s(100.0); 3]).expect("learned");
        assert_eq!(narrow.spread, MIN_SPREAD);
        assert_eq!(Expectation::from_durations(&[]), None);
    }

    #[test]
    fn with_history_it_sleeps_to_the_window_then_polls_densely_then_backs_off() {
        let e = Expectation {
            median: s(3600.0),
            spread: 0.1,
            p90: s(3900.0),
        };
        let p = PollPolicy {
            min: s(1.0),
            max: s(300.0),
            expectation: Some(e),
            aim: Aim::Promptness,
            queue: Queue::NONE,
            ceiling: Ceiling::Given,
            give_up: None,
        };
        assert_eq!(p.next(s(0.0), 0.0), s(300.0), "sparse, capped at max");
        assert_eq!(
            p.next(s(3100.0), 0.0),
            s(140.0),
            "straight to the window at 3240 s"
        );
        assert_eq!(
            p.next(s(3500.0), 0.0),
            s(70.0),
            "in the window: 2 % of the time elapsed"
        );
        assert_eq!(
            p.next(s(5000.0), 0.0),
            s(100.0),
            "long: 2 % of the elapsed time"
        );
        let short = PollPolicy {
            min: s(1.0),
            max: s(60.0),
            expectation: Some(Expectation {
                median: s(10.0),
                spread: 0.05,
                p90: s(10.5),
            }),
            aim: Aim::Promptness,
            queue: Queue::NONE,
            ceiling: Ceiling::Given,
            give_up: None,
        };
        assert_eq!(short.next(s(0.0), 0.0), s(9.5));
        assert_eq!(
            short.next(s(0.0), 1.0),
            s(9.5),
            "a short gap is not jittered"
        );
        assert_eq!(
            short.next(s(9.5), 0.0),
            s(1.0),
            "dense, but never below min"
        );
    }

    #[test]
    fn economy_looks_first_between_median_and_p90_then_every_third_of_the_elapsed_time() {
        let p = PollPolicy {
            min: s(1.0),
            max: s(300.0),
            expectation: Some(Expectation {
                median: s(600.0),
                spread: 0.5,
                p90: s(900.0),
            }),
            aim: Aim::Economy,
            queue: Queue::NONE,
            ceiling: Ceiling::Given,
            give_up: None,
        };
        assert_eq!(p.next(s(0.0), 0.0), s(300.0), "sparse, capped at max");
        assert_eq!(
            p.next(s(500.0), 1.0),
            s(250.0),
            "to halfway between the median and p90, not jittered"
        );
        assert_eq!(
            p.next(s(750.0), 0.0),
            s(250.0),
            "a third of the elapsed time"
        );
        assert_eq!(p.next(s(2000.0), 0.0), s(300.0), "never above max");
        let blind = PollPolicy {
            expectation: None,
            ..p
        };
        assert_eq!(blind.next(s(45.0), 0.0), s(15.0));
        let frugal = PollPolicy {
            aim: Aim::Frugal,
            ..p
        };
        assert_eq!(frugal.next(s(700.0), 0.0), s(200.0), "to p90");
        assert_eq!(frugal.next(s(900.0), 0.0), s(300.0), "half, capped at max");
        assert_eq!(frugal.next(s(400.0), 0.0), s(300.0), "capped at max");
        assert_eq!(blind.next(s(1.0), 0.0), s(1.0), "never below min");
    }

    /// An economical wait on a refresh of about 40 minutes, `poll.max` 2 min given.
    fn forty_minutes() -> PollPolicy {
        PollPolicy {
            min: s(1.0),
            max: s(120.0),
            expectation: Some(Expectation {
                median: s(2400.0),
                spread: 0.1,
                p90: s(2600.0),
            }),
            aim: Aim::Economy,
            queue: Queue::NONE,
            ceiling: Ceiling::Given,
            give_up: None,
        }
    }

    #[test]
    fn with_the_default_ceiling_economy_looks_early_once_then_every_quarter_of_the_way() {
        let given = forty_minutes();
        let default = PollPolicy {
            ceiling: Ceiling::Default,
            ..given
        };
        assert_eq!(default.next(s(0.0), 1.0), s(120.0), "the early look");
        assert_eq!(
            default.next(s(120.5), 0.0),
            s(625.0),
            "then to the first look at 2500 s in steps of a quarter of it"
        );
        assert_eq!(
            default.next(s(1995.5), 0.0),
            s(504.5),
            "the rest of the way"
        );
        assert_eq!(
            default.next(s(2500.0), 0.0),
            s(625.0),
            "a third of the elapsed time, at most a quarter of the first look's"
        );
        assert_eq!(
            default.next(s(90.0), 0.0),
            s(625.0),
            "attached past half of poll.max: no early look"
        );
        for t in [0.0, 120.5, 2500.0, 9000.0] {
            assert!(given.next(s(t), 0.0) <= s(120.0), "a given poll.max binds");
        }
        let frugal = PollPolicy {
            aim: Aim::Frugal,
            ..default
        };
        assert_eq!(frugal.next(s(0.0), 0.0), s(120.0));
        assert_eq!(frugal.next(s(120.0), 0.0), s(650.0), "to p90 in quarters");
        let queued = PollPolicy {
            queue: Queue {
                likely: s(300.0),
                late: s(400.0),
            },
            ..default
        };
        assert_eq!(
            queued.next(s(0.0), 0.0),
            s(420.0),
            "the early look comes after the queue"
        );
        let slow_min = PollPolicy {
            min: s(300.0),
            max: s(300.0),
            ..default
        };
        assert_eq!(
            slow_min.next(s(0.0), 0.0),
            s(300.0),
            "poll.min above the default poll.max: the early look at poll.min"
        );
        let short = PollPolicy {
            expectation: Some(Expectation {
                median: s(60.0),
                spread: 0.1,
                p90: s(70.0),
            }),
            ..default
        };
        assert_eq!(
            short.next(s(0.0), 0.0),
            s(65.0),
            "no early look before the first"
        );
        for (other, t) in [
            (
                PollPolicy {
                    aim: Aim::Promptness,
                    ..default
                },
                0.0,
            ),
            (
                PollPolicy {
                    expectation: None,
                    ..default
                },
                5000.0,
            ),
        ] {
            assert_eq!(
                other.next(s(t), 0.0),
                s(120.0),
                "a prompt or blind wait keeps the default bound"
            );
        }
    }

    #[test]
    fn one_look_lands_just_past_max_overrun_whatever_the_step() {
        let p = PollPolicy {
            ceiling: Ceiling::Default,
            give_up: Some(s(5200.0)),
            ..forty_minutes()
        };
        assert_eq!(p.next(s(5000.0), 0.0), s(201.0), "not the 625 s step");
        assert_eq!(p.next(s(5201.0), 0.0), s(625.0), "past it, as before");
        let prompt = PollPolicy {
            aim: Aim::Promptness,
            ceiling: Ceiling::Given,
            max: s(600.0),
            ..p
        };
        assert_eq!(prompt.next(s(5150.0), 0.0), s(51.0));
    }

    #[test]
    fn a_queue_in_the_service_pushes_an_economical_first_look_back_and_nothing_else() {
        let p = PollPolicy {
            min: s(1.0),
            max: s(600.0),
            expectation: Some(Expectation {
                median: s(600.0),
                spread: 0.5,
                p90: s(900.0),
            }),
            aim: Aim::Economy,
            queue: Queue {
                likely: s(120.0),
                late: s(200.0),
            },
            ceiling: Ceiling::Given,
            give_up: None,
        };
        assert_eq!(
            p.next(s(500.0), 0.0),
            s(370.0),
            "to 750 s plus seven in ten waits"
        );
        assert_eq!(p.next(s(900.0), 0.0), s(300.0), "then a third, as before");
        let frugal = PollPolicy {
            aim: Aim::Frugal,
            ..p
        };
        assert_eq!(
            frugal.next(s(700.0), 0.0),
            s(400.0),
            "to p90 plus nine in ten waits"
        );
        let prompt = PollPolicy {
            aim: Aim::Promptness,
            ..p
        };
        assert_eq!(
            prompt.next(s(500.0), 0.0),
            PollPolicy {
                queue: Queue::NONE,
                ..prompt
            }
            .next(s(500.0), 0.0),
            "promptness does not guess"
        );
    }
}
