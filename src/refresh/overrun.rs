//! Expected end and overrun: what the item's recent successful runs say of this one's duration.

use std::time::Duration;

use jiff::Timestamp;

use super::Outcome;
use crate::ops::outputs::secs;
use crate::wait::Expectation;

/// What the item's history says of this run's duration: the expected end, logged once; a
/// warning, once, when the run passes what nine in ten recent runs took.
pub(super) struct Overrun {
    expectation: Option<Expectation>,
    /// `maxOverrun`: the multiple of the p90 at which the wait gives up.
    limit: Option<f64>,
    what: String,
    /// When the run started, on the wait's clock.
    start: tokio::time::Instant,
    warned: std::cell::Cell<bool>,
}

impl Overrun {
    pub(super) fn new(
        expectation: Option<Expectation>,
        limit: Option<f64>,
        what: &str,
        running_for: Duration,
    ) -> Overrun {
        let now = tokio::time::Instant::now();
        let start = now.checked_sub(running_for).unwrap_or(now);
        if let Some(e) = expectation {
            let end = Timestamp::now()
                + jiff::SignedDuration::try_from(e.median.saturating_sub(running_for))
                    .unwrap_or_default();
            tracing::info!(
                "the refresh of {what} usually takes {:.0}s (9 in 10 within {:.0}s): expected to end around {}",
                e.median.as_secs_f64(),
                e.p90.as_secs_f64(),
                end.round(jiff::Unit::Second).unwrap_or(end)
            );
        }
        Overrun {
            expectation,
            limit,
            what: what.to_string(),
            start,
            warned: std::cell::Cell::new(false),
        }
    }

    /// Warns once when the run has been going longer than its p90; true once it has gone on
    /// for `maxOverrun` times that.
    pub(super) fn check(&self) -> bool {
        let Some(e) = self.expectation else {
            return false;
        };
        let running = self.start.elapsed();
        if running > e.p90 && !self.warned.replace(true) {
            tracing::warn!(
                "the refresh of {} has been running {:.0}s, {:.1}× its median of {:.0}s and past the {:.0}s within which 9 in 10 recent runs ended",
                self.what,
                running.as_secs_f64(),
                running.as_secs_f64() / e.median.as_secs_f64().max(0.001),
                e.median.as_secs_f64(),
                e.p90.as_secs_f64()
            );
        }
        self.limit
            .is_some_and(|limit| running > e.overrun_at(limit))
    }

    /// The outcome of a wait ended by `maxOverrun`.
    pub(super) fn explain(&self, outcome: &mut Outcome) {
        let (Some(e), Some(limit)) = (self.expectation, self.limit) else {
            return;
        };
        outcome.error_code = Some("OverrunLimit".into());
        outcome.error_message = Some(format!(
            "the refresh of {} ran past {limit}× the {:.0}s within which 9 in 10 recent runs ended (maxOverrun); the wait ended early",
            self.what,
            e.p90.as_secs_f64()
        ));
    }

    /// `expectedSeconds` and `overran` on the outcome.
    pub(super) fn judge(&self, outcome: &mut Outcome) {
        let Some(e) = self.expectation else {
            return;
        };
        let took = outcome
            .duration_seconds()
            .unwrap_or_else(|| self.start.elapsed().as_secs_f64());
        outcome.expected_seconds = Some(secs(e.median.as_secs_f64()));
        outcome.overran = Some(took > e.p90.as_secs_f64());
    }
}
