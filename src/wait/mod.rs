//! The wait: how often to ask ([`PollPolicy`]), how long to tolerate a missing id, when to give up.
//!
//! Every sleep stays within the policy's bounds and never runs past the deadline. A new refresh may be
//! missing from the service for a while (the history lags, and the service may drop requests);
//! it is tolerated for the grace period, then reported as dropped. All timing goes through
//! `tokio::time`, so tests run it on a paused clock.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

mod policy;
pub use policy::{Aim, Ceiling, Expectation, PollPolicy, Queue};

/// What one poll found.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<T> {
    /// Finished: the terminal state.
    Done(T),
    /// Still running.
    Running,
    /// Still running, and the service asks not to be asked again for this long (`Retry-After`).
    RunningFor(Duration),
    /// The service does not (yet) know the id.
    Missing,
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited<T> {
    /// The item reached a terminal state.
    Done(T),
    /// The deadline passed first.
    TimedOut,
    /// The id never appeared within the grace period.
    Dropped,
}

/// How a wait begins: what is known of the run, and so when it is first read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Read at once (a run attached to may have ended meanwhile).
    Now,
    /// After the first interval; the run was read from the item's list, so it exists and is
    /// never reported dropped.
    Listed,
    /// After the first interval, and by the end of the grace at the latest: only the trigger's
    /// answer names the run, and the service may not show it yet (or drop it).
    Named,
}

/// Polls `poll` until it is done, the `timeout` passes, or the id stays missing for `grace`.
///
/// `started` is how long the item had already been running when the wait began (attaching to a
/// running refresh), so the policy knows where it stands. `begin` says when the first poll
/// comes (a new refresh is rarely visible at once).
pub async fn until_done<T, F, Fut>(
    policy: PollPolicy,
    started: Duration,
    timeout: Duration,
    grace: Duration,
    begin: Begin,
    mut poll: F,
) -> Result<Waited<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, Error>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut seen = begin == Begin::Listed;
    let mut last_poll = false;
    if begin != Begin::Now {
        let mut delay = policy.next(started, jitter());
        if !seen {
            delay = within_grace(delay, &policy, grace, start);
        }
        last_poll = !sleep_before_deadline(delay, deadline).await;
    }
    loop {
        let mut at_least = Duration::ZERO;
        match poll().await {
            Ok(Poll::Done(t)) => return Ok(Waited::Done(t)),
            Ok(Poll::Running) => seen = true,
            Ok(Poll::RunningFor(d)) => {
                seen = true;
                at_least = d;
            }
            Ok(Poll::Missing) if !seen && start.elapsed() >= grace => return Ok(Waited::Dropped),
            Ok(Poll::Missing) => {}
            // A status read that failed even after its retries does not end a long wait: the
            // refresh goes on in the service; the next poll (or the deadline) decides. At the
            // deadline, the wait has timed out like any other: the refresh may still run.
            Err(Error::Unavailable { action, last, .. }) => {
                tracing::warn!("{action}: {last}; the wait goes on until its deadline");
            }
            Err(e) => return Err(e),
        }
        if last_poll {
            return Ok(Waited::TimedOut);
        }
        let mut delay = policy
            .next(started + start.elapsed(), jitter())
            .max(at_least);
        if !seen {
            delay = within_grace(delay, &policy, grace, start);
        }
        // At the deadline, one last look, so a refresh that ended since the previous poll is
        // reported as ended rather than as timed out.
        last_poll = !sleep_before_deadline(delay, deadline).await;
    }
}

/// `delay`, or less so that a refresh not seen yet is looked for again when its grace ends:
/// dropped is decided then, not at the next look the policy planned, however far.
fn within_grace(delay: Duration, policy: &PollPolicy, grace: Duration, start: Instant) -> Duration {
    let left = grace.saturating_sub(start.elapsed());
    if left.is_zero() {
        delay
    } else {
        delay.min(left.max(policy.min))
    }
}

/// Sleeps for `delay`, or until `deadline` if that comes first; false when it woke at the deadline.
async fn sleep_before_deadline(delay: Duration, deadline: Instant) -> bool {
    let wake = (Instant::now() + delay).min(deadline);
    tokio::time::sleep_until(wake).await;
    wake < deadline
}

fn jitter() -> f64 {
    fastrand::f64() * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const POLICY: PollPolicy = PollPolicy {
        expectation: None,
        min: Duration::from_secs(5),
        max: Duration::from_secs(60),
        aim: Aim::Promptness,
        queue: Queue::NONE,
        ceiling: Ceiling::Given,
        give_up: None,
    };

    #[tokio::test(start_paused = true)]
    async fn a_two_hour_refresh_is_followed_to_the_end_with_few_polls() {
        let polls = Cell::new(0u32);
        let start = Instant::now();
        let done_at = start + Duration::from_secs(7200);
        let result = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(3 * 3600),
            Duration::from_secs(120),
            Begin::Named,
            || {
                polls.set(polls.get() + 1);
                async move {
                    Ok::<_, Error>(if Instant::now() >= done_at {
                        Poll::Done("Completed")
                    } else {
                        Poll::Running
                    })
                }
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done("Completed"));
        let detected = start.elapsed().as_secs_f64() - 7200.0;
        assert!(detected <= 66.0, "seen {detected}s after the end");
        assert!(
            polls.get() < 160,
            "{} polls; fixed 5 s polling makes 1440",
            polls.get()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_history_a_two_hour_refresh_costs_few_polls_and_is_seen_within_2_percent() {
        let expectation = Expectation::from_durations(&[
            Duration::from_secs(7000),
            Duration::from_secs(7200),
            Duration::from_secs(7400),
        ]);
        let policy = PollPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
            expectation,
            aim: Aim::Promptness,
            queue: Queue::NONE,
            ceiling: Ceiling::Given,
            give_up: None,
        };
        let polls = Cell::new(0u32);
        let start = Instant::now();
        let done_at = start + Duration::from_secs(7300);
        let result = until_done(
            policy,
            Duration::ZERO,
            Duration::from_secs(3 * 3600),
            Duration::from_secs(120),
            Begin::Named,
            || {
                polls.set(polls.get() + 1);
                async move {
                    Ok::<_, Error>(if Instant::now() >= done_at {
                        Poll::Done(())
                    } else {
                        Poll::Running
                    })
                }
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done(()));
        let late = start.elapsed().as_secs_f64() - 7300.0;
        assert!(late <= 0.02 * 7300.0, "seen {late}s late");
        assert!(
            polls.get() <= 1440 / 10,
            "{} polls; fixed 5 s polling makes 1460",
            polls.get()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_the_wait_exactly() {
        let start = Instant::now();
        let result: Waited<()> = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(100),
            Duration::from_secs(10),
            Begin::Now,
            || async { Ok(Poll::Running) },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_ends_just_before_the_deadline_is_seen_by_a_last_poll() {
        let start = Instant::now();
        let done_at = start + Duration::from_secs_f64(99.5);
        let result = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(100),
            Duration::from_secs(10),
            Begin::Now,
            || async move {
                Ok::<_, Error>(if Instant::now() >= done_at {
                    Poll::Done(())
                } else {
                    Poll::Running
                })
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done(()));
        assert_eq!(start.elapsed(), Duration::from_secs(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_status_read_that_keeps_failing_does_not_end_the_wait() {
        let polls = Cell::new(0u32);
        let result = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_secs(10),
            Begin::Now,
            || {
                polls.set(polls.get() + 1);
                let n = polls.get();
                async move {
                    match n {
                        1..=3 => Err(Error::Unavailable {
                            action: "read".into(),
                            attempts: 6,
                            last: "HTTP 503".into(),
                        }),
                        _ => Ok(Poll::Done(n)),
                    }
                }
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_id_is_tolerated_for_the_grace_period_then_dropped() {
        let start = Instant::now();
        let result: Waited<()> = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_secs(30),
            Begin::Named,
            || async { Ok(Poll::Missing) },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Dropped);
        assert!(
            start.elapsed() >= Duration::from_secs(30) && start.elapsed() < Duration::from_secs(60)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_not_seen_yet_is_looked_for_again_when_its_grace_ends() {
        /// How long a wait under `policy` takes to call a refresh the service never shows
        /// dropped, with a grace of 90 s.
        async fn dropped_after(policy: PollPolicy) -> Duration {
            let start = Instant::now();
            let result: Waited<()> = until_done(
                policy,
                Duration::ZERO,
                Duration::from_secs(3 * 3600),
                Duration::from_secs(90),
                Begin::Named,
                || async { Ok(Poll::Missing) },
            )
            .await
            .expect("no error");
            assert_eq!(result, Waited::Dropped);
            start.elapsed()
        }
        // An economical wait on an hour-long refresh would sleep from its early look towards
        // the expected end; a refresh the service never showed is dropped at the grace instead.
        let policy = PollPolicy {
            expectation: Expectation::from_durations(&[Duration::from_secs(3600)]),
            aim: Aim::Economy,
            ceiling: Ceiling::Default,
            ..POLICY
        };
        assert_eq!(
            dropped_after(policy).await,
            Duration::from_secs(90),
            "the early look at 60 s, then the grace"
        );
        // A first look planned past the grace (the early look comes after a long queue) is
        // brought back to it.
        let queued = PollPolicy {
            queue: Queue {
                likely: Duration::from_secs(600),
                late: Duration::from_secs(900),
            },
            ..policy
        };
        assert_eq!(dropped_after(queued).await, Duration::from_secs(90));
    }

    /// When an economical wait with the default ceiling reads an hour-long refresh that waits
    /// 300 s in the service's queue (poll.max 60 s, grace 60 s), beginning as `begin`.
    async fn reads_of_a_queued_hour(begin: Begin) -> Vec<u64> {
        let policy = PollPolicy {
            expectation: Expectation::from_durations(&[Duration::from_secs(3600)]),
            aim: Aim::Economy,
            ceiling: Ceiling::Default,
            queue: Queue {
                likely: Duration::from_secs(300),
                late: Duration::from_secs(400),
            },
            ..POLICY
        };
        let start = Instant::now();
        let reads = std::cell::RefCell::new(Vec::new());
        let result = until_done(
            policy,
            Duration::ZERO,
            Duration::from_secs(3 * 3600),
            Duration::from_secs(60),
            begin,
            || {
                reads.borrow_mut().push(start.elapsed().as_secs());
                let n = reads.borrow().len();
                async move { Ok::<_, Error>(if n < 3 { Poll::Running } else { Poll::Done(()) }) }
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done(()));
        reads.into_inner()
    }

    #[tokio::test(start_paused = true)]
    async fn the_early_look_comes_after_the_queue_even_when_the_grace_reads_first() {
        assert_eq!(
            reads_of_a_queued_hour(Begin::Named).await,
            [60, 360, 1335],
            "the grace, the early look past the queue, then a quarter of the 3900 s way"
        );
        assert_eq!(
            reads_of_a_queued_hour(Begin::Listed).await,
            [360, 1335, 2310],
            "a listed run is not read for the grace"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_from_the_service_stretches_the_next_interval() {
        let polls = Cell::new(0u32);
        let start = Instant::now();
        let result = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_secs(30),
            Begin::Now,
            || {
                polls.set(polls.get() + 1);
                let n = polls.get();
                async move {
                    Ok::<_, Error>(if n == 1 {
                        Poll::RunningFor(Duration::from_secs(120))
                    } else {
                        Poll::Done(n)
                    })
                }
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done(2));
        assert!(
            start.elapsed() >= Duration::from_secs(120),
            "waited {:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_appearing_id_is_followed() {
        let polls = Cell::new(0u32);
        let result = until_done(
            POLICY,
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_secs(30),
            Begin::Named,
            || {
                polls.set(polls.get() + 1);
                let n = polls.get();
                async move {
                    Ok::<_, Error>(match n {
                        1..=2 => Poll::Missing,
                        3..=4 => Poll::Running,
                        _ => Poll::Done(n),
                    })
                }
            },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::Done(5));
    }
}
