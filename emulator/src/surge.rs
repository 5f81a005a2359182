//! Capacity rejection: a capacity that, for a period on the emulator's clock, rejects every new
//! refresh (Fabric surge protection, or a capacity overloaded past its limits).
//!
//! Microsoft Learn ("Surge protection") says an active surge protection makes the capacity
//! reject new background operations, refreshes included, until its 24-hour background
//! percentage falls below the recovery threshold; "Troubleshooting guide: Diagnose and resolve
//! 'Capacity limit exceeded' errors" gives the status code `CapacityLimitExceeded` and the
//! message [`MESSAGE`]. Reads (lists, history, job status) keep working: only triggers are
//! rejected, and what already runs goes on.
//!
//! UNVERIFIED (no recording of a rejected refresh trigger exists): the HTTP status (429, as
//! third-party Fabric clients report for `CapacityLimitExceeded`, told apart from API throttling's
//! `RequestBlocked` only by the body), the absence of `Retry-After`, and that the Power BI routes
//! use their own error envelope with the same code. The emulator answers 429, no `Retry-After`,
//! each API's envelope.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::scenario::{self, Scenario};
use crate::wire::{self, history_time};

/// The error code of a rejected trigger.
pub(crate) const CODE: &str = "CapacityLimitExceeded";
/// Its message, as Microsoft Learn quotes it.
pub(crate) const MESSAGE: &str =
    "Your organization's Fabric compute capacity has exceeded its limits. Try again later.";

/// Which capacities reject, when, and how many triggers each rejected.
#[derive(Debug, Default)]
pub(crate) struct Surge {
    /// Capacity id (lower case) → `[from, until)` on the emulator's clock.
    windows: HashMap<String, (Timestamp, Timestamp)>,
    /// Capacity id (lower case) → triggers rejected so far.
    rejected: HashMap<String, u64>,
}

impl Surge {
    /// The scenario's rejecting periods, placed on a clock that started at `start`.
    pub(crate) fn seed(scenario: &Scenario, start: Timestamp) -> Surge {
        let windows = scenario
            .capacities
            .iter()
            .filter_map(|c| {
                let r = c.rejecting?;
                let from = start.saturating_add(scenario::seconds(r.from)).ok()?;
                let until = from.saturating_add(scenario::seconds(r.seconds)).ok()?;
                Some((c.id.to_ascii_lowercase(), (from, until)))
            })
            .collect();
        Surge {
            windows,
            rejected: HashMap::new(),
        }
    }

    /// Makes `capacity` reject from `now` for `seconds` (0 ends a period now).
    pub(crate) fn start(&mut self, capacity: &str, now: Timestamp, seconds: f64) {
        let until = now
            .saturating_add(scenario::seconds(seconds))
            .unwrap_or(now);
        self.windows
            .insert(capacity.to_ascii_lowercase(), (now, until));
    }

    /// Whether `capacity` rejects a trigger at `now`; counts it if so.
    pub(crate) fn rejects(&mut self, capacity: Option<&str>, now: Timestamp) -> bool {
        let Some(key) = capacity.map(str::to_ascii_lowercase) else {
            return false;
        };
        if self.until(&key, now).is_none() {
            return false;
        }
        *self.rejected.entry(key).or_default() += 1;
        true
    }

    /// When `capacity`'s current rejecting period ends, if one is going at `now`.
    fn until(&self, capacity: &str, now: Timestamp) -> Option<Timestamp> {
        let (from, until) = self.windows.get(capacity)?;
        (*from <= now && now < *until).then_some(*until)
    }

    /// `rejecting`, `rejectingUntil` and `rejected` of `capacity` for the control API.
    pub(crate) fn view(&self, capacity: &str, now: Timestamp) -> Value {
        let key = capacity.to_ascii_lowercase();
        let until = self.until(&key, now);
        json!({
            "rejecting": until.is_some(),
            "rejectingUntil": until.map(history_time),
            "rejected": self.rejected.get(&key).copied().unwrap_or(0),
        })
    }
}

/// The Power BI answer to a trigger on a rejecting capacity (models and Gen1 dataflows).
pub(crate) fn pbi_rejection() -> Response {
    wire::pbi_error(StatusCode::TOO_MANY_REQUESTS, CODE, MESSAGE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn a_period_rejects_from_its_start_until_its_end_and_counts_what_it_rejected() {
        let scenario = Scenario::from_json(
            r#"{"capacities":[{"id":"Cap-A","concurrency":1,"rejecting":{"from":10,"seconds":5}}]}"#,
        )
        .unwrap();
        let mut surge = Surge::seed(&scenario, at(1000));
        assert!(!surge.rejects(Some("cap-a"), at(1009)));
        assert!(surge.rejects(Some("CAP-A"), at(1010)));
        assert!(surge.rejects(Some("cap-a"), at(1014)));
        assert!(!surge.rejects(Some("cap-a"), at(1015)));
        assert!(!surge.rejects(None, at(1012)));
        assert!(!surge.rejects(Some("cap-b"), at(1012)));
        assert_eq!(surge.view("Cap-A", at(1020))["rejected"], 2);
        surge.start("cap-b", at(1020), 3.0);
        assert_eq!(surge.view("cap-b", at(1021))["rejecting"], true);
        surge.start("cap-b", at(1021), 0.0);
        assert_eq!(surge.view("cap-b", at(1021))["rejecting"], false);
    }
}
