//! Capacity admission across processes: with a store and `maxParallelPerCapacity`, a run takes
//! one of the capacity's slots (shared by every worker using the store, handed out in order of
//! arrival) before it triggers, renews it while its refresh runs, and gives it back at the end.
//! A worker that dies stops renewing, and its slot returns to the others within [`SLOT_TTL`].

use std::time::Duration;

use super::ItemInfo;
use crate::error::Error;
use crate::store::{Slot, Store};

/// How long a slot or a place in the queue lasts without renewal.
pub(crate) const SLOT_TTL: Duration = Duration::from_secs(120);
/// How often a holder renews its slot.
const RENEW_EVERY: Duration = Duration::from_secs(30);

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
            .take_slot(&info.capacity, limit, holder, SLOT_TTL)
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
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(e) = self
                    .store
                    .renew_slot(&self.capacity, self.slot, self.holder, SLOT_TTL)
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
