//! The polling policy: how often to ask, how long to tolerate a missing id, when to give up.
//!
//! Polls start at `poll.min` and grow by half each time up to `poll.max` (with ±10 % jitter, so
//! that many runners started together spread out), never past the deadline. A new refresh may be
//! missing from the service for a while (the history lags, and the service may drop requests);
//! it is tolerated for the grace period, then reported as dropped. All timing goes through
//! `tokio::time`, so tests run it on a paused clock.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// The bounds of the polling interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// Shortest interval.
    pub min: Duration,
    /// Longest interval.
    pub max: Duration,
}

impl PollPolicy {
    /// The delay before poll number `n` (0-based), given a jitter factor in `[-1, 1]`.
    pub fn delay(&self, n: u32, jitter: f64) -> Duration {
        let base = self.min.as_secs_f64() * 1.5f64.powi(n.min(64) as i32);
        let jittered = base * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
        Duration::from_secs_f64(jittered.clamp(self.min.as_secs_f64(), self.max.as_secs_f64()))
    }
}

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

/// Polls `poll` until it is done, the `timeout` passes, or the id stays missing for `grace`.
///
/// The first poll happens immediately when `immediate` (attaching to a refresh that is already
/// known), else after the first interval (a refresh just triggered is rarely visible at once).
pub async fn until_done<T, F, Fut>(
    policy: PollPolicy,
    timeout: Duration,
    grace: Duration,
    immediate: bool,
    mut poll: F,
) -> Result<Waited<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, Error>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut seen = false;
    let mut n = 0u32;
    if !immediate && !sleep_before_deadline(policy.delay(0, jitter()), deadline).await {
        return Ok(Waited::TimedOut);
    }
    loop {
        let mut at_least = Duration::ZERO;
        match poll().await? {
            Poll::Done(t) => return Ok(Waited::Done(t)),
            Poll::Running => seen = true,
            Poll::RunningFor(d) => {
                seen = true;
                at_least = d;
            }
            Poll::Missing if !seen && start.elapsed() >= grace => return Ok(Waited::Dropped),
            Poll::Missing => {}
        }
        n += 1;
        if !sleep_before_deadline(policy.delay(n, jitter()).max(at_least), deadline).await {
            return Ok(Waited::TimedOut);
        }
    }
}

/// Sleeps for `delay`, or until `deadline` if that comes first; false when the deadline passed.
async fn sleep_before_deadline(delay: Duration, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let wake = (now + delay).min(deadline);
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
        min: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };

    #[test]
    fn delays_grow_from_min_to_max_and_stay_in_bounds() {
        assert_eq!(POLICY.delay(0, 0.0), Duration::from_secs(5));
        assert_eq!(POLICY.delay(1, 0.0), Duration::from_secs_f64(7.5));
        assert_eq!(POLICY.delay(20, 0.0), Duration::from_secs(60));
        assert_eq!(
            POLICY.delay(0, -1.0),
            Duration::from_secs(5),
            "jitter never goes below min"
        );
        assert_eq!(
            POLICY.delay(30, 1.0),
            Duration::from_secs(60),
            "jitter never goes above max"
        );
        assert!(POLICY.delay(2, 1.0) > POLICY.delay(2, -1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_two_hour_refresh_is_followed_to_the_end_with_few_polls() {
        let polls = Cell::new(0u32);
        let start = Instant::now();
        let done_at = start + Duration::from_secs(7200);
        let result = until_done(
            POLICY,
            Duration::from_secs(3 * 3600),
            Duration::from_secs(120),
            false,
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
        assert!(polls.get() < 140, "{} polls", polls.get());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_the_wait_exactly() {
        let start = Instant::now();
        let result: Waited<()> = until_done(
            POLICY,
            Duration::from_secs(100),
            Duration::from_secs(10),
            true,
            || async { Ok(Poll::Running) },
        )
        .await
        .expect("no error");
        assert_eq!(result, Waited::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_id_is_tolerated_for_the_grace_period_then_dropped() {
        let start = Instant::now();
        let result: Waited<()> = until_done(
            POLICY,
            Duration::from_secs(3600),
            Duration::from_secs(30),
            false,
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
    async fn a_retry_after_from_the_service_stretches_the_next_interval() {
        let polls = Cell::new(0u32);
        let start = Instant::now();
        let result = until_done(
            POLICY,
            Duration::from_secs(3600),
            Duration::from_secs(30),
            true,
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
            Duration::from_secs(3600),
            Duration::from_secs(30),
            false,
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
