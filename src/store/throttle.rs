//! Throttling shared by every process acting as one principal (`pbiops_throttle`): per API host,
//! until when the service asked to pause, and the smallest budget per minute a run learned.
//!
//! Writers merge, they never overwrite: a 429 keeps the latest pause and the smallest live
//! budget, in one `UPDATE` whose `CASE`s read the row as it is at that moment, so concurrent
//! writers on any dialect converge on the same row whatever their order. The first 429 of a
//! (principal, API) inserts the row; a writer that loses that race merges instead. A budget
//! lapses [`BUDGET_TTL`] after the last 429: readers no longer see it, and the next writer
//! replaces it rather than keeping the smaller of the two.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::conn::DbError;
use super::dialect::{Cond, Dialect};
use super::schema::THROTTLE;
use super::values::{Cols, Value};
use super::{Store, bounded};
use crate::error::Error;

/// How long a learned budget holds without another 429.
pub const BUDGET_TTL: Duration = Duration::from_secs(600);

/// A 429 one process got, to merge into its principal's row for the API.
#[derive(Debug, Clone, Copy)]
pub struct Throttled<'a> {
    /// The principal's key (a client id in lower case).
    pub principal: &'a str,
    /// The API's host.
    pub api: &'a str,
    /// When it was written.
    pub at: Timestamp,
    /// Until when the service asked to pause.
    pub paused_until: Timestamp,
    /// The budget per minute the process learned, if it learned one.
    pub budget: Option<f64>,
}

/// One API's shared state, as read at a given moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedThrottle {
    /// The API's host.
    pub api: String,
    /// Until when every run pauses (possibly past).
    pub paused_until: Timestamp,
    /// The budget per minute, unless none was learned or it lapsed.
    pub budget: Option<f64>,
    /// The last 429 written.
    pub updated_at: Timestamp,
}

const COLUMNS: [&str; 5] = ["principal", "api", "paused_until", "budget", "updated_at"];
const READ: [&str; 4] = ["api", "paused_until", "budget", "updated_at"];

impl Store {
    /// Merges a 429 into its principal's row for the API: the later pause, the smaller live
    /// budget. Returns the row as it now stands (read at `t.at`).
    pub async fn record_throttle(&self, t: &Throttled<'_>) -> Result<SharedThrottle, Error> {
        let d = self.dialect();
        let insert = d.insert(THROTTLE.name, &COLUMNS);
        let merge = merge_throttle(d, t.budget.is_some());
        let select = d.select(
            THROTTLE.name,
            &READ,
            &[Cond::Eq("principal"), Cond::Eq("api")],
            &[],
            false,
        );
        let key = [
            bounded(&THROTTLE, "principal", Some(t.principal)),
            bounded(&THROTTLE, "api", Some(t.api)),
        ];
        let (until, at, budget) = (
            Value::Time(Some(t.paused_until)),
            Value::Time(Some(t.at)),
            t.budget.map(|b| Value::Float(Some(b))),
        );
        let mut row = key.to_vec();
        row.extend([until.clone(), Value::Float(t.budget), at.clone()]);
        let lapsed = Value::Time(Some(lapse_before(t.at)));
        let mut params = vec![until.clone(), until];
        match budget {
            Some(b) => params.extend([b.clone(), lapsed.clone(), b]),
            None => params.push(lapsed),
        }
        params.extend([at.clone(), at]);
        params.extend(key.clone());
        let read_at = t.at;
        let action = format!("share throttling by {} as {}", t.api, t.principal);
        self.call(&action, move |s| {
            let inserted = s.execute(&insert, &row);
            if inserted.is_err() {
                s.execute(&merge, &params)?;
            }
            let rows = s.query(&select, &key, read)?;
            match rows.into_iter().next() {
                Some(row) => Ok(live(row, read_at)),
                None => Err(inserted
                    .err()
                    .unwrap_or_else(|| DbError::data("the row just written is missing"))),
            }
        })
        .await
    }

    /// What the runs acting as `principal` learned, read at `at`: every API still paused or with
    /// a live budget.
    pub async fn throttles(
        &self,
        principal: &str,
        at: Timestamp,
    ) -> Result<Vec<SharedThrottle>, Error> {
        let select =
            self.dialect()
                .select(THROTTLE.name, &READ, &[Cond::Eq("principal")], &[], false);
        let key = [bounded(&THROTTLE, "principal", Some(principal))];
        let rows = self
            .call("read the throttling shared by other runs", move |s| {
                s.query(&select, &key, read)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| live(row, at))
            .filter(|row| row.paused_until > at || row.budget.is_some())
            .collect())
    }
}

/// The merge of a 429 into an existing row. Parameters: the pause's end (twice); with a budget,
/// the budget, the lapse bound and the budget; without, the lapse bound; the write time (twice);
/// the principal and the API. `updated_at` goes last: MariaDB/MySQL assignments see the ones
/// before them, and the budget's lapse is judged on the row's previous write.
pub(crate) fn merge_throttle(d: Dialect, with_budget: bool) -> String {
    let q = |c: &str| d.quote(c);
    let (until, budget, updated) = (q("paused_until"), q("budget"), q("updated_at"));
    let new_budget = if with_budget {
        format!(
            "CASE WHEN {budget} IS NULL OR {budget} > ? OR {updated} < ? THEN ? ELSE {budget} END"
        )
    } else {
        format!("CASE WHEN {updated} < ? THEN NULL ELSE {budget} END")
    };
    format!(
        "UPDATE {} SET {until} = CASE WHEN {until} < ? THEN ? ELSE {until} END, {budget} = {new_budget}, {updated} = CASE WHEN {updated} < ? THEN ? ELSE {updated} END WHERE {} = ? AND {} = ?",
        q(THROTTLE.name),
        q("principal"),
        q("api"),
    )
}

/// Budgets learned before this moment have lapsed at `at`.
fn lapse_before(at: Timestamp) -> Timestamp {
    let ttl = SignedDuration::try_from(BUDGET_TTL).unwrap_or(SignedDuration::from_mins(10));
    at.saturating_sub(ttl).unwrap_or(at)
}

fn read(c: &mut Cols<'_, '_>) -> Result<SharedThrottle, DbError> {
    Ok(SharedThrottle {
        api: c.required_text()?,
        paused_until: c.required_time()?,
        budget: c.float()?,
        updated_at: c.required_time()?,
    })
}

/// The row as it counts at `at`: without its budget once that lapsed.
fn live(mut row: SharedThrottle, at: Timestamp) -> SharedThrottle {
    if row.updated_at < lapse_before(at) {
        row.budget = None;
    }
    row
}
