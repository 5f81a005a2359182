//! Capacity admission across processes: with a store and `maxParallelPerCapacity`, a run takes
//! one of the capacity's slots (shared by every worker using the store, handed out in order of
//! arrival) before it triggers, renews it while its refresh runs, and gives it back at the end.
//! A worker that dies stops renewing, and its slot returns to the others within the slot lease
//! ([`slot_lease`], `PBIOPS_SLOT_LEASE`).
//!
//! Asking costs the store a handful of statements, so the asking is kept small: within one
//! process, one run per capacity stands in the store's queue at a time and the others wait their
//! turn in the process (in order), and a run far back in the queue asks less often. Without
//! that, a fan-out of four fleets kept ~80 waiters asking twice a second, and the store and the
//! machine spent their time answering them instead of handing slots on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use super::ItemInfo;
use crate::error::Error;
use crate::store::{Slot, Store};

/// How long a slot or a place in the queue lasts without renewal, unless `PBIOPS_SLOT_LEASE`
/// says otherwise: long enough that a store slow for a minute does not lose a live worker's
/// slot, short enough that a dead worker's slots return within a couple of minutes.
pub(crate) const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(120);

/// The lease of this process, in milliseconds (set once from the settings).
static SLOT_LEASE_MS: AtomicU64 = AtomicU64::new(DEFAULT_SLOT_LEASE.as_millis() as u64);

/// Sets the slot lease for the process (`PBIOPS_SLOT_LEASE`, checked by the settings).
pub(crate) fn set_slot_lease(lease: Duration) {
    let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
    SLOT_LEASE_MS.store(ms, Ordering::Relaxed);
}

/// How long a slot or a place in the queue lasts without renewal.
pub(crate) fn slot_lease() -> Duration {
    Duration::from_millis(SLOT_LEASE_MS.load(Ordering::Relaxed))
}

/// How often a holder renews its slot: four times per lease, so three renewals in a row can
/// fail (a store restarting) before the slot lapses.
fn renew_every() -> Duration {
    slot_lease() / 4
}

/// The longest pause between two requests of a run waiting far back in the queue.
const MAX_ASK_EVERY: Duration = Duration::from_secs(5);

/// Per capacity, the turn to stand in the store's queue for runs of this process.
static TURNS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// The process's turn for `capacity` (a fair lock: first come, first served).
fn turn(capacity: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut turns = TURNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    turns
        .entry(capacity.to_ascii_lowercase())
        .or_default()
        .clone()
}

/// How long to wait before asking again with `ahead` runs queued before this one, for `limit`
/// slots: `step` at the head of the queue, longer further back (a slot frees for it only after
/// `ahead / limit` rounds of the runs before it).
fn ask_every(step: Duration, ahead: usize, limit: usize) -> Duration {
    let rounds = 1 + ahead / limit.max(1);
    step.saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX))
        .min(MAX_ASK_EVERY.max(step))
}

/// A capacity slot held by this run.
pub(crate) struct Admission<'a> {
    store: &'a Store,
    capacity: String,
    slot: i64,
    holder: i64,
}

/// Waits for a slot of `info`'s capacity (at most `limit` held at once across processes) until
/// `deadline`; `Ok(None)` when the deadline passed first.
pub(crate) async fn admit<'a>(
    store: &'a Store,
    holder: i64,
    info: &ItemInfo,
    limit: usize,
    step: Duration,
    deadline: tokio::time::Instant,
) -> Result<Option<Admission<'a>>, Error> {
    // One run of this process at a time stands in the store's queue for the capacity.
    let turn = turn(&info.capacity);
    let Ok(_turn) = tokio::time::timeout_at(deadline, turn.lock()).await else {
        return Ok(None);
    };
    let mut told = None;
    loop {
        let answer = store
            .take_slot(&info.capacity, limit, holder, slot_lease())
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                // A place left in the queue would hold back every run behind it for a lease.
                if let Err(e) = store.release_slot(&info.capacity, None, holder).await {
                    tracing::warn!("{e}; the place in the queue lapses on its own");
                }
                return Err(e);
            }
        };
        let wait = match answer {
            Slot::Taken(slot) => {
                if told.is_some() {
                    tracing::info!("capacity {}: slot {slot} taken", info.capacity);
                }
                return Ok(Some(Admission {
                    store,
                    capacity: info.capacity.clone(),
                    slot,
                    holder,
                }));
            }
            Slot::Queued { ahead } => {
                if told != Some(ahead) {
                    tracing::info!(
                        "capacity {} has its {limit} slot(s) taken by runs sharing the store; waiting ({ahead} queued ahead) before refreshing {}",
                        info.capacity,
                        info.describe()
                    );
                    told = Some(ahead);
                }
                ask_every(step, ahead, limit)
            }
        };
        if tokio::time::Instant::now() + wait > deadline {
            if let Err(e) = store.release_slot(&info.capacity, None, holder).await {
                tracing::warn!("{e}; the place in the queue lapses on its own");
            }
            return Ok(None);
        }
        tokio::time::sleep(wait).await;
    }
}

impl<'a> Admission<'a> {
    /// A slot taken over from an earlier attempt of the same task run.
    pub(crate) fn inherited(
        store: &'a Store,
        capacity: String,
        slot: i64,
        holder: i64,
    ) -> Admission<'a> {
        Admission {
            store,
            capacity,
            slot,
            holder,
        }
    }

    /// Runs `work` while renewing the slot, then gives the slot back.
    pub(crate) async fn hold<T>(self, work: impl Future<Output = T>) -> T {
        let result = self.renewing(work).await;
        if let Err(e) = self.release(None).await {
            tracing::warn!("{e}; the slot lapses on its own");
        }
        result
    }

    /// Runs `work` while renewing the slot (which stays held).
    pub(crate) async fn renewing<T>(&self, work: impl Future<Output = T>) -> T {
        let renew = async {
            loop {
                tokio::time::sleep(renew_every()).await;
                match self
                    .store
                    .renew_slot(&self.capacity, self.slot, self.holder, slot_lease())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            "slot {} of capacity {} went to another run: this run renewed it too late (stalled longer than PBIOPS_SLOT_LEASE); until this refresh ends the capacity may hold one more than maxParallelPerCapacity",
                            self.slot,
                            self.capacity
                        );
                        // Nothing left to renew; the work goes on.
                        std::future::pending::<()>().await;
                    }
                    Err(e) => tracing::warn!("{e}; retrying at the next renewal"),
                }
            }
        };
        tokio::select! {
            result = work => result,
            () = renew => unreachable!("the renewal loop never ends"),
        }
    }

    /// Gives the slot back, with the claim on `claim` when given: one store call for both.
    pub(crate) async fn release(self, claim: Option<&str>) -> Result<(), Error> {
        self.store
            .release(&self.capacity, Some(self.slot), claim, self.holder)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_far_back_in_the_queue_asks_less_often_within_bounds() {
        let step = Duration::from_millis(500);
        assert_eq!(ask_every(step, 0, 5), step, "at the head: every step");
        assert_eq!(ask_every(step, 4, 5), step, "within the first round");
        assert_eq!(ask_every(step, 10, 5), Duration::from_millis(1500));
        assert_eq!(ask_every(step, 500, 5), MAX_ASK_EVERY, "never past the cap");
        assert_eq!(
            ask_every(step, 3, 0),
            Duration::from_secs(2),
            "no slot: rounds of one"
        );
        let slow = Duration::from_secs(8);
        assert_eq!(ask_every(slow, 100, 1), slow, "never below the step itself");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_of_one_process_take_their_turn_for_a_capacity_in_order() {
        let turn_a = turn("Cap-X");
        let first = turn_a.lock().await;
        let turn_b = turn("cap-x");
        assert!(
            turn_b.try_lock().is_err(),
            "the same capacity, whatever its case"
        );
        assert!(turn("cap-y").try_lock().is_ok(), "another capacity is free");
        drop(first);
        assert!(turn_b.try_lock().is_ok());
    }
}
