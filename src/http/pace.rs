//! Pacing shared by every request of a run: once the service throttles, all workers slow down.
//!
//! A 429's `Retry-After` pauses every request of the process, not only the one that got it, so
//! a fleet of concurrent waits does not keep hitting the limit. The 429 also teaches the pace the
//! service tolerates: the number of requests sent in the minute before it becomes the budget per
//! minute (less a margin), spread evenly from then on. Until the first 429, nothing is paced.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The window the learned budget is counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// The share of the observed budget used afterwards.
const MARGIN: f64 = 0.9;
/// Below this many requests in the minute, a 429 says nothing about this run's own rate (the
/// tenant's budget is shared): only the pause applies.
const LEARN_FROM: usize = 20;

#[derive(Debug)]
struct State {
    sent: VecDeque<Instant>,
    spacing: Option<Duration>,
    next_slot: Instant,
    paused_until: Instant,
}

/// The shared pace.
#[derive(Debug)]
pub struct Pace {
    state: Mutex<State>,
}

impl Default for Pace {
    fn default() -> Self {
        let now = Instant::now();
        Pace {
            state: Mutex::new(State {
                sent: VecDeque::new(),
                spacing: None,
                next_slot: now,
                paused_until: now,
            }),
        }
    }
}

impl Pace {
    /// Waits for this request's turn: after any shared pause, and at the learned spacing.
    /// Returns `false` at once, taking no turn, when the turn would come after `deadline`.
    pub async fn turn(&self, deadline: Instant) -> bool {
        let at = {
            let Ok(mut s) = self.state.lock() else {
                return true;
            };
            let now = Instant::now();
            while s
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) > WINDOW)
            {
                s.sent.pop_front();
            }
            let at = now.max(s.paused_until).max(s.next_slot);
            if at > deadline {
                return false;
            }
            if let Some(spacing) = s.spacing {
                s.next_slot = at + spacing;
            }
            s.sent.push_back(at);
            at
        };
        tokio::time::sleep_until(at).await;
        true
    }

    /// A 429 asked to wait `after`: every request pauses, and the pace tightens.
    pub fn throttled(&self, after: Duration) {
        let Ok(mut s) = self.state.lock() else { return };
        let now = Instant::now();
        s.paused_until = s.paused_until.max(now + after);
        let recent = s
            .sent
            .iter()
            .filter(|t| now.duration_since(**t) <= WINDOW)
            .count();
        if recent < LEARN_FROM {
            tracing::warn!(
                "throttled by the service: pausing every request for {:.1}s",
                after.as_secs_f64()
            );
            return;
        }
        let budget = recent as f64 * MARGIN;
        let spacing = Duration::from_secs_f64(WINDOW.as_secs_f64() / budget);
        s.spacing = Some(s.spacing.map_or(spacing, |old| old.max(spacing)));
        tracing::warn!(
            "throttled by the service: pausing every request for {:.1}s, then at most {budget:.0} per minute",
            after.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_requests_only_pause_after_a_429() {
        let pace = Pace::default();
        let start = Instant::now();
        pace.turn(far()).await;
        pace.throttled(Duration::from_secs(2));
        pace.turn(far()).await;
        pace.turn(far()).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "paused once, not paced"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_paced_until_a_429_then_everyone_pauses_and_spreads_out() {
        let pace = Pace::default();
        let start = Instant::now();
        for _ in 0..30 {
            pace.turn(far()).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "no pacing before a 429");
        pace.throttled(Duration::from_secs(5));
        pace.turn(far()).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "the pause applies to the next request"
        );
        pace.turn(far()).await;
        // 30 requests in the minute before the 429: 27 per minute from now on.
        let expected = Duration::from_secs(5) + Duration::from_secs_f64(60.0 / 27.0);
        assert!(
            start.elapsed().abs_diff(expected) < Duration::from_millis(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_beyond_the_deadline_takes_no_turn() {
        let pace = Pace::default();
        pace.throttled(Duration::from_secs(30));
        let start = Instant::now();
        assert!(!pace.turn(start + Duration::from_secs(10)).await);
        assert_eq!(start.elapsed(), Duration::ZERO, "it does not sleep");
        assert!(pace.turn(start + Duration::from_secs(31)).await);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
