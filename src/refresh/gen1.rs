//! Gen1 dataflows over the Power BI REST API: a trigger that answers with no id, runs that are
//! transactions.
//!
//! The run a trigger started is the oldest transaction not listed before it that started since
//! (see the runner). Statuses have no documented enumeration: `Success` and `Completed` succeed;
//! `Failed`, `PartialComplete` and `Cancelled` end it; a running word or none at all (with no end)
//! keeps it going. Microsoft's own sample lists transactions with only an `id`, whose prefix is
//! the start time: that is where the start comes from when `startTime` is absent, and such an
//! entry, which says nothing of its state, is never taken for a running refresh to attach to.
//! On shared capacity a dataflow gets 8 refreshes per 24 hours; a refusal, or a failure the count
//! explains, says when the next one can run.

use jiff::{SignedDuration, Timestamp};

use super::{Fut, ItemInfo, Refreshable, Run, Triggered};
use crate::error::Error;
use crate::ops::outputs::{Status, parse_time};
use crate::powerbi::dataflows::Transaction;
use crate::powerbi::{PowerBi, Trigger};
use crate::task::DataflowOptions;

/// Shared capacity's refresh allowance per dataflow and 24 hours.
const SHARED_DAILY_LIMIT: usize = 8;
const DAILY_LIMIT: &str = "DailyDataflowRefreshLimitExceeded";

/// A resolved Gen1 dataflow and its trigger options.
pub(crate) struct Gen1<'a> {
    pbi: PowerBi<'a>,
    info: ItemInfo,
    options: DataflowOptions,
}

impl<'a> Gen1<'a> {
    /// A Gen1 dataflow to refresh with `options`.
    pub(crate) fn new(pbi: PowerBi<'a>, info: ItemInfo, options: DataflowOptions) -> Gen1<'a> {
        Gen1 { pbi, info, options }
    }

    async fn transactions(&self) -> Result<Vec<Run>, Error> {
        let list = self
            .pbi
            .transactions(&self.info.workspace_id, &self.info.id)
            .await?;
        Ok(list.iter().map(from_transaction).collect())
    }
}

impl Refreshable for Gen1<'_> {
    fn info(&self) -> &ItemInfo {
        &self.info
    }

    fn runs(&self) -> Fut<'_, Vec<Run>> {
        Box::pin(self.transactions())
    }

    fn trigger(&self) -> Fut<'_, Triggered> {
        Box::pin(async move {
            let answer = self
                .pbi
                .trigger_dataflow(
                    &self.info.workspace_id,
                    &self.info.id,
                    &self.options.notify_option,
                    self.options.process_type.as_deref(),
                )
                .await;
            Ok(match answer {
                Ok(Trigger::Accepted(_)) => Triggered::Accepted(None),
                Ok(Trigger::AlreadyRunning(service)) => Triggered::Busy(service),
                Ok(Trigger::Ambiguous(why)) => Triggered::Ambiguous(why),
                Ok(Trigger::CapacityRejected(service)) => Triggered::CapacityRejected(service),
                Err(Error::Rejected {
                    action, service, ..
                }) if service.code.as_deref() == Some(DAILY_LIMIT) => {
                    let history = self.transactions().await.unwrap_or_default();
                    let help = next_allowed(&history).map(|t| format!("shared capacity allows {SHARED_DAILY_LIMIT} refreshes of a dataflow per 24 hours, scheduled ones included; the next can run after {t}; or move the workspace to a Premium / Fabric capacity"));
                    return Err(Error::Rejected {
                        action: format!("trigger a refresh of {}", self.info.describe()),
                        service,
                        help: help.or(Some(action)),
                    });
                }
                Err(e) => return Err(e),
            })
        })
    }

    fn status<'a>(&'a self, run: &'a Run) -> Fut<'a, Option<Run>> {
        Box::pin(async move {
            Ok(self
                .transactions()
                .await?
                .into_iter()
                .find(|t| t.id == run.id))
        })
    }

    fn cancel<'a>(&'a self, run: &'a Run) -> Fut<'a, bool> {
        Box::pin(async move {
            let word = self
                .pbi
                .cancel_transaction(&self.info.workspace_id, &run.id)
                .await?;
            tracing::info!("the service marked transaction {}: {word}", run.id);
            Ok(true)
        })
    }

    fn explain(&self, run: Option<&Run>, history: &[Run]) -> Option<(String, String)> {
        // Transactions carry no error; on shared capacity, a full day's allowance explains a
        // failure (or a refresh that never appeared).
        let failed = run.is_none_or(|r| r.status == Some(Status::Failed));
        if failed && self.info.shared {
            if let Some(next) = next_allowed(history) {
                return Some((
                    DAILY_LIMIT.into(),
                    format!(
                        "the dataflow already had {SHARED_DAILY_LIMIT} refreshes in the last 24 hours, the shared-capacity limit; the next can run after {next}"
                    ),
                ));
            }
        }
        let run = run?;
        Some((
            format!("DataflowRefresh{:?}", run.status.unwrap_or(Status::Failed)),
            format!(
                "transaction {} ended {}; the service gives no reason: see the dataflow's refresh history in the portal",
                run.id,
                run.service_status.as_deref().unwrap_or("?")
            ),
        ))
    }
}

/// A transaction as a run.
fn from_transaction(t: &Transaction) -> Run {
    let status = match t.status.as_deref() {
        Some("Success" | "Completed") => Some(Status::Completed),
        Some("Failed" | "PartialComplete") => Some(Status::Failed),
        Some("Cancelled" | "Canceled") => Some(Status::Cancelled),
        _ => None,
    };
    Run {
        id: t.id.clone(),
        status,
        service_status: t.status.clone(),
        start: t
            .start_time
            .as_deref()
            .and_then(parse_time)
            .or_else(|| start_from_id(&t.id)),
        end: t.end_time.as_deref().and_then(parse_time),
        // An entry that says nothing of its state is not a refresh to attach to.
        silent: t.status.is_none(),
        via_api: true,
        ..Run::default()
    }
}

/// The start time a transaction id begins with (`2026-11-23T16:07:47.2487692Z@<guid>$<n>`).
fn start_from_id(id: &str) -> Option<Timestamp> {
    id.split('@').next().and_then(parse_time)
}

/// When the oldest of the last 8 refreshes turns 24 hours old.
fn next_allowed(history: &[Run]) -> Option<Timestamp> {
    let day_ago = Timestamp::now() - SignedDuration::from_hours(24);
    let mut recent: Vec<Timestamp> = history
        .iter()
        .filter_map(|r| r.start)
        .filter(|s| *s > day_ago)
        .collect();
    recent.sort();
    (recent.len() >= SHARED_DAILY_LIMIT)
        .then(|| recent[recent.len() - SHARED_DAILY_LIMIT] + SignedDuration::from_hours(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_transaction_takes_its_start_from_its_id() {
        let t = Transaction {
            id: "2026-11-23T16:07:47.2487692Z@0b9c5bfd-0000-0000-0000-000000000000$1".into(),
            ..Transaction::default()
        };
        let run = from_transaction(&t);
        assert_eq!(
            run.start.map(|s| s.to_string()).as_deref(),
            Some("2026-11-23T16:07:47.2487692Z")
        );
        assert_eq!(run.status, None);
        assert_eq!(start_from_id("not-a-time@x"), None);
    }
}
