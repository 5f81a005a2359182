//! Pacing shared by every request of a run: once an API throttles, all workers slow down.
//!
//! A 429's `Retry-After` pauses every request of the process to the same API, not only the one
//! that got it, so a fleet of concurrent waits does not keep hitting the limit. The 429 also
//! teaches the pace the API tolerates: the number of requests sent to it in the minute before
//! becomes the budget per minute (less a margin), spread evenly from then on. Until the first
//! 429, nothing is paced.
//!
//! Each API throttles on its own (Fabric per API, Power BI apart, Entra ID apart), so the pace
//! keeps one lane per API, named by its host ([`lane`]): a Fabric 429 never slows Power BI. With
//! a store, what the lanes learn is shared with the other runs acting as the same principal
//! ([`shared()`]), and what they learned is taken in here ([`Pace::absorb`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

mod shared;
pub(crate) use shared::{principal, shared};

/// The window the learned budget is counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// The share of the observed budget used afterwards.
const MARGIN: f64 = 0.9;
/// Below this many requests in the minute, a 429 says nothing about this run's own rate (the
/// tenant's budget is shared): only the pause applies.
const LEARN_FROM: usize = 20;
/// The smallest budget taken from elsewhere: a lower one is not a rate anyone learned.
const MIN_BUDGET: f64 = 1.0;
/// An absorbed pause shorter than this beyond the lane's own is not worth a log line (the
/// same shared pause read again differs by the clocks' reading jitter).
const NOTICE: Duration = Duration::from_millis(100);

/// The lane of a request: its host, with the port when the URL names one. One API is one host
/// (`api.powerbi.com`, `api.fabric.microsoft.com`, `login.microsoftonline.com`, each sovereign
/// cloud's own), and the services throttle per API.
pub(crate) fn lane(request: reqwest::RequestBuilder) -> String {
    request
        .build()
        .ok()
        .and_then(|r| {
            let url = r.url();
            let host = url.host_str()?.to_ascii_lowercase();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_default()
}

/// One API's pace.
#[derive(Debug)]
struct Lane {
    sent: VecDeque<Instant>,
    /// Requests per minute, once learned (here or from the store).
    budget: Option<f64>,
    next_slot: Instant,
    paused_until: Instant,
    /// A 429 of this run the store has not heard of yet, and the budget it taught, if any.
    unshared: Option<Option<f64>>,
}

impl Lane {
    fn new(now: Instant) -> Lane {
        Lane {
            sent: VecDeque::new(),
            budget: None,
            next_slot: now,
            paused_until: now,
            unshared: None,
        }
    }

    fn spacing(&self) -> Option<Duration> {
        self.budget
            .map(|b| Duration::from_secs_f64(WINDOW.as_secs_f64() / b))
    }

    /// Takes `budget` when it is tighter; whether it was.
    fn tighten(&mut self, budget: f64) -> bool {
        let tighter = self.budget.is_none_or(|old| budget < old);
        if tighter {
            self.budget = Some(budget);
        }
        tighter
    }
}

/// What a lane's own 429s taught since the store last heard from it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Learned {
    /// The lane (the API's host).
    pub lane: String,
    /// The pause left from now.
    pub pause: Duration,
    /// The budget per minute learned, when one was.
    pub budget: Option<f64>,
}

/// The shared pace.
#[derive(Debug, Default)]
pub struct Pace {
    lanes: Mutex<HashMap<String, Lane>>,
    learned: Notify,
}

impl Pace {
    fn with_lane<T>(&self, lane: &str, body: impl FnOnce(&mut Lane, Instant) -> T) -> Option<T> {
        let mut lanes = self.lanes.lock().ok()?;
        let now = Instant::now();
        let state = lanes
            .entry(lane.to_string())
            .or_insert_with(|| Lane::new(now));
        Some(body(state, now))
    }

    /// Waits for this request's turn on `lane`: after any pause, and at the learned spacing.
    /// Returns `false` at once, taking no turn, when the turn would come after `deadline`.
    pub async fn turn(&self, lane: &str, deadline: Instant) -> bool {
        let at = self.with_lane(lane, |s, now| {
            while s
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) > WINDOW)
            {
                s.sent.pop_front();
            }
            let at = now.max(s.paused_until).max(s.next_slot);
            if at > deadline {
                return None;
            }
            if let Some(spacing) = s.spacing() {
                s.next_slot = at + spacing;
            }
            s.sent.push_back(at);
            Some(at)
        });
        match at {
            Some(Some(at)) => {
                tokio::time::sleep_until(at).await;
                true
            }
            Some(None) => false,
            None => true,
        }
    }

    /// Whether any API keeps a budget, learned from this run's 429s or taken in from the store
    /// (another run as the same principal was throttled lately): calls are what binds. Any API:
    /// a fleet mixing models and Dataflow Gen2 spends fewer calls on both once either throttles
    /// (the waits do not know their lane; sparing calls on the other API only costs latency).
    pub(crate) fn budgeted(&self) -> bool {
        self.lanes
            .lock()
            .is_ok_and(|lanes| lanes.values().any(|l| l.budget.is_some()))
    }

    /// A 429 on `lane` asked to wait `after`: every request to it pauses, and its pace tightens.
    pub fn throttled(&self, lane: &str, after: Duration) {
        let learned = self.with_lane(lane, |s, now| {
            s.paused_until = s.paused_until.max(now + after);
            let recent = s
                .sent
                .iter()
                .filter(|t| now.duration_since(**t) <= WINDOW)
                .count();
            let learned = (recent >= LEARN_FROM).then_some(recent as f64 * MARGIN);
            if let Some(budget) = learned {
                s.tighten(budget);
            }
            let earlier = s.unshared.flatten();
            s.unshared = Some(match (earlier, learned) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
            learned
        });
        match learned.flatten() {
            Some(budget) => tracing::warn!(
                "throttled by {lane}: pausing every request to it for {:.1}s, then at most {budget:.0} per minute",
                after.as_secs_f64()
            ),
            None => tracing::warn!(
                "throttled by {lane}: pausing every request to it for {:.1}s",
                after.as_secs_f64()
            ),
        }
        self.learned.notify_one();
    }

    /// Resolves once a 429 has taught something [`Pace::unshared`] has not handed out yet.
    pub(crate) async fn learned(&self) {
        self.learned.notified().await;
    }

    /// What each lane's own 429s taught since the last call: the pause left, and the budget
    /// learned (never one taken from elsewhere).
    pub(crate) fn unshared(&self) -> Vec<Learned> {
        let Ok(mut lanes) = self.lanes.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        lanes
            .iter_mut()
            .filter_map(|(lane, s)| {
                let budget = s.unshared.take()?;
                Some(Learned {
                    lane: lane.clone(),
                    pause: s.paused_until.saturating_duration_since(now),
                    budget,
                })
            })
            .collect()
    }

    /// Takes in what other runs learned of `lane`: a pause of `pause` from now, and a budget
    /// per minute when it is tighter than this run's.
    pub(crate) fn absorb(&self, lane: &str, pause: Duration, budget: Option<f64>) {
        let budget = budget.filter(|b| b.is_finite()).map(|b| b.max(MIN_BUDGET));
        let noticed = self.with_lane(lane, |s, now| {
            let until = now + pause;
            let longer = until > s.paused_until + NOTICE;
            s.paused_until = s.paused_until.max(until);
            let tighter = budget.is_some_and(|b| s.tighten(b));
            (longer, tighter.then_some(budget).flatten())
        });
        let Some((longer, tighter)) = noticed else {
            return;
        };
        if longer {
            tracing::info!(
                "another run as the same principal was throttled by {lane}: pausing every request to it for {:.1}s",
                pause.as_secs_f64()
            );
        }
        if let Some(budget) = tighter {
            tracing::info!(
                "runs as the same principal learned the pace {lane} tolerates: at most {budget:.0} requests per minute"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "api.powerbi.com";
    const B: &str = "api.fabric.microsoft.com";

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_requests_only_pause_after_a_429() {
        let pace = Pace::default();
        let start = Instant::now();
        pace.turn(A, far()).await;
        pace.throttled(A, Duration::from_secs(2));
        pace.turn(A, far()).await;
        pace.turn(A, far()).await;
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
            pace.turn(A, far()).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "no pacing before a 429");
        pace.throttled(A, Duration::from_secs(5));
        pace.turn(A, far()).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "the pause applies to the next request"
        );
        pace.turn(A, far()).await;
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
        pace.throttled(A, Duration::from_secs(30));
        let start = Instant::now();
        assert!(!pace.turn(A, start + Duration::from_secs(10)).await);
        assert_eq!(start.elapsed(), Duration::ZERO, "it does not sleep");
        assert!(pace.turn(A, start + Duration::from_secs(31)).await);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn each_api_has_its_own_lane() {
        let pace = Pace::default();
        let start = Instant::now();
        pace.throttled(A, Duration::from_secs(30));
        pace.turn(B, far()).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "Fabric is not paused");
        pace.turn(A, far()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[test]
    fn a_lane_is_the_host_and_its_explicit_port() {
        let client = reqwest::Client::new();
        let lane_of = |url: &str| lane(client.get(url));
        assert_eq!(
            lane_of("https://API.powerbi.com/v1.0/myorg/groups"),
            "api.powerbi.com"
        );
        assert_eq!(lane_of("http://127.0.0.1:8123/v1/items"), "127.0.0.1:8123");
        assert_eq!(lane_of("not a url"), "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_handed_out_once_with_its_pause_and_budget() {
        let pace = Pace::default();
        assert!(pace.unshared().is_empty(), "nothing learned yet");
        for _ in 0..30 {
            pace.turn(A, far()).await;
        }
        pace.turn(B, far()).await;
        pace.throttled(A, Duration::from_secs(5));
        // The notification waits for the sync even when nobody listened at the time.
        tokio::time::timeout(Duration::from_millis(1), pace.learned())
            .await
            .expect("a 429 wakes the sync");
        tokio::time::advance(Duration::from_secs(2)).await;
        pace.throttled(B, Duration::from_secs(1));
        assert_eq!(
            sorted(pace.unshared()),
            [
                Learned {
                    lane: B.into(),
                    pause: Duration::from_secs(1),
                    budget: None,
                },
                Learned {
                    lane: A.into(),
                    pause: Duration::from_secs(3),
                    budget: Some(27.0),
                },
            ]
        );
        assert!(pace.unshared().is_empty(), "handed out once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_pause_and_budget_apply_but_are_not_handed_back() {
        let pace = Pace::default();
        let start = Instant::now();
        pace.absorb(A, Duration::from_secs(4), Some(30.0));
        assert!(pace.unshared().is_empty(), "what others learned is theirs");
        pace.turn(B, far()).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "only its lane pauses");
        pace.turn(A, far()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(4), "the shared pause");
        pace.turn(A, far()).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(6),
            "30 per minute: one every 2 s"
        );
        pace.absorb(A, Duration::ZERO, Some(60.0));
        pace.turn(A, far()).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(8),
            "a looser budget does not loosen the pace"
        );
        pace.absorb(A, Duration::from_secs(1), None);
        pace.turn(A, far()).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "a pause shorter than the spacing changes nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_from_elsewhere_that_is_no_rate_is_bounded() {
        let pace = Pace::default();
        let start = Instant::now();
        pace.absorb(A, Duration::ZERO, Some(f64::NAN));
        pace.absorb(A, Duration::ZERO, Some(0.0));
        pace.turn(A, far()).await;
        pace.turn(A, far()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(60), "one per minute");
    }

    fn sorted(mut learned: Vec<Learned>) -> Vec<Learned> {
        learned.sort_by(|a, b| a.lane.cmp(&b.lane));
        learned
    }
}
