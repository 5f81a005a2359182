//! Capacity admission across processes: with a store and `maxParallelPerCapacity`, a run takes
//! one of the capacity's slots (shared by every worker using the store, handed out in order of
//! arrival) before it triggers, renews it while its refresh runs, and gives it back at the end.
//! A worker that dies stops renewing, and its slot returns to the others within the slot lease
//! ([`slot_lease`], `PBIOPS_SLOT_LEASE`).

use std::sync::atomic::{AtomicU64, Ordering};
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
    let mut told = None;
    loop {
        match store
            .take_slot(&info.capacity, limit, holder, slot_lease())
            .await?
        {
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
            }
        }
        if tokio::time::Instant::now() + step > deadline {
            if let Err(e) = store.release_slot(&info.capacity, None, holder).await {
                tracing::warn!("{e}; the place in the queue lapses on its own");
            }
            return Ok(None);
        }
        tokio::time::sleep(step).await;
    }
}

impl Admission<'_> {
    /// Runs `work` while renewing the slot, then gives the slot back.
    pub(crate) async fn hold<T>(self, work: impl Future<Output = T>) -> T {
        let renew = async {
            loop {
                tokio::time::sleep(renew_every()).await;
                if let Err(e) = self
                    .store
                    .renew_slot(&self.capacity, self.slot, self.holder, slot_lease())
                    .await
                {
                    tracing::warn!("{e}; retrying at the next renewal");
                }
            }
        };
        let result = tokio::select! {
            result = work => result,
            () = renew => unreachable!("the renewal loop never ends"),
        };
        if let Err(e) = self
            .store
            .release_slot(&self.capacity, Some(self.slot), self.holder)
            .await
        {
            tracing::warn!("{e}; the slot lapses on its own");
        }
        result
    }
}
