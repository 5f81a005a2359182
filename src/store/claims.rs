//! Claims: single flight across processes. Before a run triggers a refresh of an item, it
//! claims the item with a primary-key insert, which succeeds for exactly one of any number of
//! processes sharing the store; the others see who holds it and go through `ifRunning`. A
//! claim lapses at its expiry, or as soon as the operation holding it is no longer running
//! (its process died and a retry closed its row, or a signal did), so a dead worker never blocks
//! an item for long.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::conn::DbError;
use super::dialect::Cond;
use super::operations::running;
use super::schema::CLAIMS;
use super::values::Value;
use super::{Store, now};
use crate::error::Error;

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The item is ours to trigger.
    Ours,
    /// Another running operation holds it.
    Held {
        /// The operation (`pbiops_operations.id`) holding it.
        holder: i64,
        /// Since when.
        since: Timestamp,
    },
}

impl Store {
    /// Claims `item_key` for the operation `holder` until `ttl` from now.
    pub async fn claim_item(
        &self,
        item_key: &str,
        holder: i64,
        ttl: Duration,
    ) -> Result<Claim, Error> {
        let d = self.dialect();
        let insert = d.insert(
            CLAIMS.name,
            &["item_key", "holder", "claimed_at", "expires_at"],
        );
        let select = d.select(
            CLAIMS.name,
            &["holder", "claimed_at", "expires_at"],
            &[Cond::Eq("item_key")],
            &[],
            false,
        );
        let delete = d.delete(CLAIMS.name, &[Cond::Eq("item_key"), Cond::Eq("holder")]);
        let key = item_key.to_string();
        let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_hours(24));
        let action = format!("claim {item_key}");
        self.call(&action, move |s| {
            let mut last = None;
            for _ in 0..3 {
                let claimed_at = now();
                let params = [
                    Value::text(&key),
                    Value::text(&holder.to_string()),
                    Value::Time(Some(claimed_at)),
                    Value::Time(Some(claimed_at.saturating_add(ttl).unwrap_or(claimed_at))),
                ];
                match s.execute(&insert, &params) {
                    Ok(()) => return Ok(Claim::Ours),
                    Err(e) => last = Some(e),
                }
                let rows = s.query(&select, &[Value::text(&key)], |c| {
                    Ok((c.required_text()?, c.required_time()?, c.required_time()?))
                })?;
                // No row: the holder released it between the two statements; try again.
                let Some((held_by, since, expires)) = rows.into_iter().next() else {
                    continue;
                };
                let id: i64 = held_by.parse().unwrap_or_default();
                if id == holder {
                    return Ok(Claim::Ours);
                }
                if expires > now() && running(s, &[id])?.contains(&id) {
                    return Ok(Claim::Held { holder: id, since });
                }
                // Lapsed: take it over (only if it is still that holder's).
                s.execute(&delete, &[Value::text(&key), Value::text(&held_by)])?;
            }
            Err(last.unwrap_or_else(|| DbError::data("the claim could not be taken")))
        })
        .await
    }

    /// Gives `item_key` back, if `holder` still holds it.
    pub async fn release_item(&self, item_key: &str, holder: i64) -> Result<(), Error> {
        let delete = give_back(self.dialect());
        let params = vec![Value::text(item_key), Value::text(&holder.to_string())];
        let action = format!("release the claim on {item_key}");
        self.call(&action, move |s| s.execute(&delete, &params))
            .await
    }
}

/// The statement that gives a claim back (parameters: the item's key, the holder), only if the
/// holder still holds it.
pub(super) fn give_back(d: super::Dialect) -> String {
    d.delete(CLAIMS.name, &[Cond::Eq("item_key"), Cond::Eq("holder")])
}
