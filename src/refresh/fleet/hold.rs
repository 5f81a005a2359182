//! A fleet's holds on capacities that reject new refreshes (surge protection, overload): while a
//! capacity is held none of its items starts; when its back-off ends one item probes it, and the
//! first trigger it accepts (seen through [`Watched`]) ends the hold for all.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::ServiceError;
use crate::ops::outputs::secs;
use crate::refresh::capacity::Backoff;
use crate::refresh::{Fut, ItemInfo, Refreshable, Run, Triggered};
use crate::task::WaitOptions;

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

    /// `capacity` rejected an item: the item that first finds it rejecting, or its probe, holds
    /// it for the next wait of its back-off; an item started before the hold began, rejected
    /// while another probes or waits, adds nothing.
    pub(super) fn rejected(
        &mut self,
        capacity: &str,
        service: ServiceError,
        probe: bool,
        wait: &WaitOptions,
        now: Instant,
    ) {
        let new = !self.held.contains_key(capacity);
        let hold = self
            .held
            .entry(capacity.to_owned())
            .or_insert_with(|| Hold {
                since: now,
                until: now,
                backoff: Backoff::new(wait),
                probing: false,
                last: ServiceError::default(),
            });
        hold.last = service;
        if new || probe {
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
    use crate::refresh::capacity::tests::wait;

    #[tokio::test(start_paused = true)]
    async fn a_hold_admits_one_probe_when_it_ends_and_adds_up_per_capacity() {
        let opts = wait(10.0, 60.0);
        let mut holds = Holds::default();
        let t0 = Instant::now();
        assert!(holds.admits("a", t0));
        holds.rejected("a", ServiceError::default(), false, &opts, t0);
        // A second item started before the hold, rejected too: the wait does not grow.
        holds.rejected("a", ServiceError::default(), false, &opts, t0);
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
        // Another item started before the hold comes back rejected: the probe is still out.
        holds.rejected("a", ServiceError::default(), false, &opts, t1);
        assert!(!holds.admits("a", t1 + Duration::from_secs(30)));
        holds.rejected("a", ServiceError::default(), true, &opts, t1);
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
        holds.rejected("b", ServiceError::default(), false, &opts, t2);
        let totals = holds.totals(t2 + Duration::from_secs(5));
        assert_eq!(
            totals,
            BTreeMap::from([("a".into(), 91.0), ("b".into(), 5.0)])
        );
    }
}
