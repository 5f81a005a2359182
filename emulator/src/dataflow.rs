//! Gen1 dataflow transactions: their ids (`<start>@<guid>$<n>`), statuses (`InProgress`, then
//! `Success`, `Failed` or `Cancelled`) and how they end, kept apart from HTTP like `refresh.rs`.

use crate::progress::Timing;
use crate::random::Purpose;
use crate::scenario::{self, DataflowBehaviour, Scenario, SeededStatus, TransactionOutcome};
use jiff::{SignedDuration, Timestamp};

/// The first `$<n>` suffix of a generated transaction id.
const FIRST_TRANSACTION_NUMBER: u64 = 1_374_282;

/// The error a shared-capacity dataflow gets on its ninth refresh in 24 hours.
pub(crate) const DAILY_LIMIT_CODE: &str = "DailyDataflowRefreshLimitExceeded";
/// Its message, as observed.
pub(crate) const DAILY_LIMIT_MESSAGE: &str = "Skipping dataflow refresh as number of auto refreshes in last 24 hours (8) exceeded allowed limit 8";

/// A dataflow transaction (one refresh).
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub id: String,
    pub group_id: String,
    pub dataflow_id: String,
    pub refresh_type: String,
    /// Who started it: `seed`, `api` or `flow`.
    pub source: &'static str,
    /// When it was accepted: the `startTime` it shows.
    pub start: Timestamp,
    /// When it got a capacity slot; `None` while queued.
    pub began: Option<Timestamp>,
    /// Its workspace's capacity id (lower case), if any.
    pub capacity: Option<String>,
    pub end: Option<Timestamp>,
    pub ended: Option<TransactionOutcome>,
    pub error: Option<String>,
    pub observed: u32,
    /// `observed` when it began: only later observations count towards `polls`.
    pub observed_at_begin: u32,
    pub timing: Timing,
    pub outcome: TransactionOutcome,
    pub planned_error: Option<String>,
    /// List reads (or emulator time) it is still hidden from.
    pub hidden: crate::lag::Hidden,
}

/// `2026-11-24T03:21:25.1234567Z@<guid>$<n>`.
pub(crate) fn transaction_id(start: Timestamp, number: u64) -> String {
    format!(
        "{}.{:07}Z@{}${number}",
        start.strftime("%Y-%m-%dT%H:%M:%S"),
        start.subsec_nanosecond().max(0) / 100,
        crate::wire::new_guid()
    )
}

impl Transaction {
    /// A transaction starting now under `behaviour`, running `duration` (drawn by the caller
    /// from the behaviour's `durationSeconds`).
    pub fn start(
        id: String,
        (group_id, dataflow_id): (&str, &str),
        source: &'static str,
        now: Timestamp,
        behaviour: &DataflowBehaviour,
        duration: Option<f64>,
    ) -> Transaction {
        Transaction {
            id,
            group_id: group_id.to_owned(),
            dataflow_id: dataflow_id.to_owned(),
            refresh_type: "OnDemand".to_owned(),
            source,
            start: now,
            began: Some(now),
            capacity: None,
            end: None,
            ended: None,
            error: None,
            observed: 0,
            observed_at_begin: 0,
            timing: Timing::new(behaviour.polls, duration),
            outcome: behaviour.outcome,
            planned_error: behaviour.error.clone(),
            hidden: Default::default(),
        }
    }

    /// Whether it is still running.
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }

    /// When it ends, if that is by `now` (counted from when it began; never while queued).
    pub fn due(&self, now: Timestamp) -> Option<Timestamp> {
        let began = self.began.filter(|_| self.running())?;
        let observed = self.observed - self.observed_at_begin;
        self.timing.due(began, observed, now)
    }

    /// Ends it as planned if it is due (the world settles through `capacity::settle`).
    #[cfg(test)]
    pub fn settle(&mut self, now: Timestamp) {
        if let Some(at) = self.due(now) {
            self.finish(self.outcome, at, None);
        }
    }

    /// It gets a capacity slot at `at`.
    pub fn begin(&mut self, at: Timestamp) {
        self.began = Some(at.max(self.start));
        self.observed_at_begin = self.observed;
    }

    /// Ends it with `outcome` at `at`; `error` overrides the planned error of a failure.
    pub fn finish(&mut self, outcome: TransactionOutcome, at: Timestamp, error: Option<String>) {
        self.ended = Some(outcome);
        self.end = Some(at.max(self.start));
        self.error = match outcome {
            TransactionOutcome::Failed => error.or_else(|| self.planned_error.clone()),
            _ => None,
        };
    }

    /// The wire `status`.
    pub fn status(&self) -> &'static str {
        match self.ended {
            None => "InProgress",
            Some(TransactionOutcome::Success) => "Success",
            Some(TransactionOutcome::Failed) => "Failed",
            Some(TransactionOutcome::Cancelled) => "Cancelled",
        }
    }
}

/// The transactions a scenario starts with (oldest first) and the next `$<n>`.
pub(crate) fn seed(scenario: &Scenario, start: Timestamp) -> (Vec<Transaction>, u64) {
    let mut out = Vec::new();
    let mut number = FIRST_TRANSACTION_NUMBER;
    let at = |text: &str| scenario::resolve_time(text, start).unwrap_or(start);
    for ws in &scenario.workspaces {
        for df in &ws.dataflows {
            for seeded in &df.transactions {
                let begun = at(&seeded.start_time);
                let id = seeded.id.clone().unwrap_or_else(|| {
                    number += 1;
                    transaction_id(begun, number)
                });
                let behaviour = DataflowBehaviour {
                    polls: seeded.polls,
                    duration_seconds: None,
                    outcome: seeded.outcome,
                    error: None,
                };
                let ids = (ws.id.as_str(), df.id.as_str());
                let mut tx = Transaction::start(id, ids, "seed", begun, &behaviour, None);
                tx.refresh_type = seeded.refresh_type.clone();
                let ended = match seeded.status {
                    SeededStatus::InProgress => None,
                    SeededStatus::Success => Some(TransactionOutcome::Success),
                    SeededStatus::Failed => Some(TransactionOutcome::Failed),
                    SeededStatus::Cancelled => Some(TransactionOutcome::Cancelled),
                };
                if let (Some(ended), Some(end)) = (ended, &seeded.end_time) {
                    tx.finish(ended, at(end), None);
                }
                tx.capacity = ws.capacity_id.as_deref().map(str::to_ascii_lowercase);
                out.push(tx);
            }
            let Some(spec) = df.refresh.duration_seconds.as_ref() else {
                continue;
            };
            // `historyCount`: one successful scheduled transaction a day before the start.
            for k in 1..=df.history_count {
                let begun = start
                    .saturating_sub(SignedDuration::from_hours(24 * i64::from(k)))
                    .unwrap_or(start);
                let seconds = spec.draw(scenario.seed, &df.id, Purpose::History, u64::from(k));
                number += 1;
                let id = transaction_id(begun, number);
                let ids = (ws.id.as_str(), df.id.as_str());
                let mut tx = Transaction::start(id, ids, "seed", begun, &df.refresh, None);
                tx.refresh_type = "Scheduled".to_owned();
                let end = begun
                    .saturating_add(scenario::seconds(seconds))
                    .unwrap_or(begun);
                tx.finish(TransactionOutcome::Success, end, None);
                out.push(tx);
            }
        }
    }
    out.sort_by_key(|t| t.start);
    (out, number + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_seven_fraction_digits_a_guid_and_a_number() {
        let at: Timestamp = "2026-11-24T03:21:25.1234567Z".parse().unwrap();
        let id = transaction_id(at, 42);
        assert!(id.starts_with("2026-11-24T03:21:25.1234567Z@"), "{id}");
        assert!(id.ends_with("$42"), "{id}");
        assert_eq!(id.len(), "2026-11-24T03:21:25.1234567Z@".len() + 36 + 3);
    }

    #[test]
    fn a_transaction_runs_for_its_polls() {
        let behaviour = DataflowBehaviour {
            polls: Some(1),
            outcome: TransactionOutcome::Failed,
            error: Some("boom".into()),
            ..DataflowBehaviour::default()
        };
        let now: Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
        let mut tx = Transaction::start("t".into(), ("g", "d"), "api", now, &behaviour, None);
        tx.settle(now);
        assert_eq!(tx.status(), "InProgress");
        tx.observed += 1;
        tx.settle(now);
        assert_eq!((tx.status(), tx.error.as_deref()), ("Failed", Some("boom")));
    }
}
