//! A capacity that rejects new refreshes: Fabric surge protection, or a capacity overloaded past
//! its limits, answers every trigger `CapacityLimitExceeded` until its load falls (Microsoft
//! Learn, "Surge protection": new background operations are rejected until the 24-hour
//! background percentage falls below the recovery threshold). That is a wait, not a failure:
//! nothing started, nothing is to be watched, and the same trigger succeeds later.
//!
//! So the item's capacity is *held*: the trigger is tried again after a back-off of 30 s,
//! doubling up to 5 min, never past `timeout` (the first wait is brought within the task's `poll`
//! bounds, and the cap is ten times the first wait, so a test with tiny bounds runs in moments).
//! One item retries in [`single`]. In a fleet ([`Holds`]), no other item of a held capacity
//! starts while it is held; when the back-off ends one item probes it, and the first trigger the
//! capacity accepts ends the hold for all; items on other capacities go on meanwhile. An item
//! whose capacity is still rejecting when its `timeout` has passed ends `Skipped`, exit 5,
//! `errorCode` [`REJECTED`]: nothing ran, and a rerun may succeed.
//!
//! UNVERIFIED: the HTTP status of the rejection (429 per third-party clients) and whether it
//! carries `Retry-After`; pbiops keys on the code alone, in either API's error envelope, and
//! ignores any `Retry-After` it might carry (the capacity's recovery takes minutes, not seconds).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::runner::{self, Follower, Options};
use super::{Fut, ItemInfo, Outcome, Refreshable, Run, Triggered};
use crate::error::{Error, ExitCode, ServiceError};
use crate::ops::Context;
use crate::ops::outputs::{Outputs, Status, secs};
use crate::task::WaitOptions;

/// The `errorCode` of an item whose capacity rejected it until its timeout.
pub(crate) const REJECTED: &str = "CapacityRejected";
/// What to do about it.
pub(crate) const HELP: &str = "the capacity rejects new background operations while its surge protection is active or it is overloaded: see its load in the Fabric Capacity Metrics app, then raise its surge protection thresholds, scale it up, or move the refresh to a quieter hour; a longer `timeout` waits longer";
/// The first wait after a rejection (before `poll` bounds).
const FIRST: Duration = Duration::from_secs(30);
/// The longest wait, as a multiple of the first (30 s → 5 min).
const GROWTH: u32 = 10;

/// The waits between two triggers on a rejecting capacity: doubling from the first up to ten
/// times it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// 30 s doubling to 5 min, the first wait brought within `wait`'s poll bounds.
    pub(crate) fn new(wait: &WaitOptions) -> Backoff {
        let first = FIRST.min(wait.poll_max).max(wait.poll_min);
        Backoff {
            next: first,
            max: first * GROWTH,
        }
    }

    /// The next wait.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }
}

impl Follower<'_, '_> {
    /// The capacity refused the trigger: an outcome saying so, for the caller to hold it.
    pub(super) fn capacity_rejected(&self, service: ServiceError) -> Outcome {
        tracing::warn!(
            "capacity {} rejected the refresh of {} ({service}): surge protection or an overload; nothing started",
            self.item.info().capacity,
            self.what()
        );
        Outcome {
            error_code: Some(REJECTED.into()),
            rejected: Some(service),
            ..Outcome::new(Status::Skipped, ExitCode::Timeout)
        }
    }
}

/// The outcome of an item whose capacity rejected it until its timeout, after `waited`.
pub(super) fn given_up(info: &ItemInfo, service: &ServiceError, waited: Duration) -> Outcome {
    Outcome {
        error_code: Some(REJECTED.into()),
        error_message: Some(format!(
            "capacity {} rejected every refresh of {} for {:.0}s, until the timeout ({service}); nothing was started",
            info.capacity,
            info.describe(),
            waited.as_secs_f64()
        )),
        capacity_wait_seconds: Some(secs(waited.as_secs_f64())),
        ..Outcome::new(Status::Skipped, ExitCode::Timeout)
    }
}

/// One item (not in a fleet): refreshes it, and while its capacity rejects the trigger, waits
/// and tries again, within `timeout`; each try goes through the whole runner again (a refresh
/// someone else started meanwhile is attached to, not doubled).
pub(super) async fn single(
    ctx: &Context<'_>,
    profile: &str,
    item: &dyn Refreshable,
    opts: &Options,
    out: &mut Outputs,
) -> Result<Outcome, Error> {
    let deadline = Instant::now() + opts.wait.timeout;
    let mut backoff = Backoff::new(&opts.wait);
    let mut waited = Duration::ZERO;
    loop {
        let attempt = within(opts, deadline);
        let mut outcome = runner::refresh_with(ctx, profile, item, &attempt, None, out).await?;
        let Some(service) = outcome.rejected.take() else {
            if !waited.is_zero() {
                outcome.capacity_wait_seconds = Some(secs(waited.as_secs_f64()));
            }
            return Ok(outcome);
        };
        let pause = backoff
            .next()
            .min(deadline.saturating_duration_since(Instant::now()));
        if !pause.is_zero() {
            tracing::info!(
                "holding capacity {}: the refresh is tried again in {:.1}s",
                item.info().capacity,
                pause.as_secs_f64()
            );
        }
        tokio::time::sleep(pause).await;
        waited += pause;
        if Instant::now() >= deadline {
            let outcome = given_up(item.info(), &service, waited);
            let message = outcome.error_message.clone().unwrap_or_default();
            ctx.reporter
                .error(&crate::redact::scrub(&message), Some(HELP));
            return Ok(outcome);
        }
    }
}

/// `opts` with what is left until `deadline` as its timeout.
pub(super) fn within(opts: &Options, deadline: Instant) -> Options {
    let left = deadline.saturating_duration_since(Instant::now());
    Options {
        wait: WaitOptions {
            timeout: left.max(Duration::from_millis(1)),
            ..opts.wait
        },
        ..*opts
    }
}

/// A fleet's holds: the capacities that rejected a trigger, until one of their items is accepted.
#[derive(Debug, Default)]
pub(super) struct Holds {
    held: HashMap<String, Hold>,
    /// Per capacity, the time held so far (holds that ended).
    totals: BTreeMap<String, Duration>,
}

#[derive(Debug)]
struct Hold {
    since: Instant,
    /// When the next item may probe the capacity.
    until: Instant,
    backoff: Backoff,
    /// An item is probing it now: the others wait for its answer.
    probing: bool,
    /// What the capacity said last.
    last: ServiceError,
}

impl Holds {
    /// Whether an item of `capacity` may start at `now` (as the probe, if it is held).
    pub(super) fn admits(&self, capacity: &str, now: Instant) -> bool {
        self.held
            .get(capacity)
            .is_none_or(|h| !h.probing && now >= h.until)
    }

    /// What `capacity` said last, while it is held.
    pub(super) fn holding(&self, capacity: &str) -> Option<&ServiceError> {
        self.held.get(capacity).map(|h| &h.last)
    }

    /// An item of `capacity` starts: while the capacity is held, it is the probe.
    pub(super) fn starting(&mut self, capacity: &str) {
        if let Some(h) = self.held.get_mut(capacity) {
            tracing::info!(
                "capacity {capacity}: trying one refresh to see whether it accepts again"
            );
            h.probing = true;
        }
    }

    /// `capacity` rejected an item (its probe, or one started before it was held): it is held
    /// for the next wait of its back-off (an item rejected while others wait adds nothing).
    pub(super) fn rejected(
        &mut self,
        capacity: &str,
        service: ServiceError,
        wait: &WaitOptions,
        now: Instant,
    ) {
        let hold = self
            .held
            .entry(capacity.to_owned())
            .or_insert_with(|| Hold {
                since: now,
                until: now,
                backoff: Backoff::new(wait),
                probing: true,
                last: ServiceError::default(),
            });
        hold.last = service;
        if hold.probing {
            let pause = hold.backoff.next();
            hold.until = now + pause;
            hold.probing = false;
            tracing::warn!(
                "capacity {capacity} rejects new refreshes (surge protection or an overload): none of its items starts for {:.1}s; items on other capacities go on",
                pause.as_secs_f64()
            );
        }
    }

    /// An item of `capacity` ended without being rejected (accepted, or stopped before its
    /// trigger): the capacity is not known to reject any more.
    pub(super) fn release(&mut self, capacity: &str, now: Instant) {
        if let Some(hold) = self.held.remove(capacity) {
            let held = now.duration_since(hold.since);
            tracing::info!(
                "capacity {capacity} accepts refreshes again, after {:.1}s",
                held.as_secs_f64()
            );
            *self.totals.entry(capacity.to_owned()).or_default() += held;
        }
    }

    /// When the scheduler must look again for an item waiting on one of `waiting`: the next
    /// end of a hold nobody is probing yet (one that ended lets an item start at once, or waits
    /// for a free slot, which a finishing item signals anyway).
    pub(super) fn next_end<'w>(
        &self,
        waiting: impl IntoIterator<Item = &'w str>,
        now: Instant,
    ) -> Option<Instant> {
        waiting
            .into_iter()
            .filter_map(|c| self.held.get(c))
            .filter(|h| !h.probing && h.until > now)
            .map(|h| h.until)
            .min()
    }

    /// Per capacity held during the run, the time held in seconds (holds still going end now).
    pub(super) fn totals(mut self, now: Instant) -> BTreeMap<String, f64> {
        let still: Vec<String> = self.held.keys().cloned().collect();
        for capacity in still {
            self.release(&capacity, now);
        }
        self.totals
            .into_iter()
            .map(|(c, d)| (c, secs(d.as_secs_f64())))
            .collect()
    }
}

/// The capacities on which a fleet's item had a trigger accepted, with a wake-up for the
/// scheduler: a held capacity is released as soon as its probe is accepted, not when the
/// probe's refresh ends.
#[derive(Debug, Default)]
pub(super) struct Accepted {
    capacities: RefCell<Vec<String>>,
    notify: Notify,
}

impl Accepted {
    /// Waits until an item has been accepted since the last call.
    pub(super) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The capacities accepted since the last call.
    pub(super) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.capacities.borrow_mut())
    }
}

/// An item whose accepted triggers are told to [`Accepted`].
pub(super) struct Watched<'w> {
    /// The item.
    pub(super) inner: &'w dyn Refreshable,
    /// Where acceptances go.
    pub(super) accepted: &'w Accepted,
}

impl Refreshable for Watched<'_> {
    fn info(&self) -> &ItemInfo {
        self.inner.info()
    }

    fn runs(&self) -> Fut<'_, Vec<Run>> {
        self.inner.runs()
    }

    fn trigger(&self) -> Fut<'_, Triggered> {
        Box::pin(async move {
            let answer = self.inner.trigger().await?;
            // "Already running" is a run the capacity took: it accepts work again.
            if matches!(answer, Triggered::Accepted(_) | Triggered::Busy(_)) {
                let capacity = self.inner.info().capacity.clone();
                self.accepted.capacities.borrow_mut().push(capacity);
                self.accepted.notify.notify_one();
            }
            Ok(answer)
        })
    }

    fn status<'a>(&'a self, run: &'a Run) -> Fut<'a, Option<Run>> {
        self.inner.status(run)
    }

    fn cancel<'a>(&'a self, run: &'a Run) -> Fut<'a, bool> {
        self.inner.cancel(run)
    }

    fn refresh_type(&self, run: &Run) -> Option<&'static str> {
        self.inner.refresh_type(run)
    }

    fn explain(&self, run: Option<&Run>, history: &[Run]) -> Option<(String, String)> {
        self.inner.explain(run, history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(poll_min: f64, poll_max: f64) -> WaitOptions {
        WaitOptions {
            wait: true,
            timeout: Duration::from_secs(3600),
            poll_min: Duration::from_secs_f64(poll_min),
            poll_max: Duration::from_secs_f64(poll_max),
            grace: Duration::from_secs(60),
            max_overrun: None,
        }
    }

    fn waits(mut backoff: Backoff, n: usize) -> Vec<f64> {
        (0..n).map(|_| backoff.next().as_secs_f64()).collect()
    }

    #[test]
    fn the_back_off_doubles_from_30_seconds_to_5_minutes_within_the_poll_bounds() {
        assert_eq!(
            waits(Backoff::new(&wait(5.0, 120.0)), 6),
            [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
        );
        // Tiny bounds (tests) scale it down; a long poll.min scales it up.
        assert_eq!(
            waits(Backoff::new(&wait(0.01, 0.1)), 6),
            [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
        );
        assert_eq!(waits(Backoff::new(&wait(60.0, 120.0)), 2), [60.0, 120.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_admits_one_probe_when_it_ends_and_adds_up_per_capacity() {
        let opts = wait(10.0, 60.0);
        let mut holds = Holds::default();
        let t0 = Instant::now();
        assert!(holds.admits("a", t0));
        holds.rejected("a", ServiceError::default(), &opts, t0);
        // A second item started before the hold, rejected too: the wait does not grow.
        holds.rejected("a", ServiceError::default(), &opts, t0);
        assert!(!holds.admits("a", t0 + Duration::from_secs(29)));
        assert!(holds.admits("b", t0), "other capacities go on");
        assert_eq!(
            holds.next_end(["a", "b"], t0),
            Some(t0 + Duration::from_secs(30))
        );
        assert_eq!(holds.next_end(["b"], t0), None, "nothing waits on it");
        let t1 = t0 + Duration::from_secs(30);
        assert!(holds.admits("a", t1));
        holds.starting("a");
        assert!(!holds.admits("a", t1), "one probe at a time");
        assert_eq!(
            holds.next_end(["a"], t1),
            None,
            "a probe's answer wakes the scheduler"
        );
        holds.rejected("a", ServiceError::default(), &opts, t1);
        assert_eq!(
            holds.next_end(["a"], t1),
            Some(t1 + Duration::from_secs(60))
        );
        assert_eq!(
            holds.next_end(["a"], t1 + Duration::from_secs(60)),
            None,
            "an ended hold needs no wake-up"
        );
        let t2 = t1 + Duration::from_secs(60);
        holds.starting("a");
        holds.release("a", t2 + Duration::from_secs(1));
        assert!(holds.admits("a", t2));
        assert!(holds.holding("a").is_none());
        holds.rejected("b", ServiceError::default(), &opts, t2);
        let totals = holds.totals(t2 + Duration::from_secs(5));
        assert_eq!(
            totals,
            BTreeMap::from([("a".into(), 91.0), ("b".into(), 5.0)])
        );
    }
}
