//! The picture of a night: operations from the operation log drawn as one self-contained HTML
//! page (inline SVG and CSS, no script, no network fetch).
//!
//! - a lane per workspace, grouped under its capacity when the capacity is known (the store's
//!   rows hold no capacity: it is looked up from the workspaces' `capacityId` when a profile can
//!   read them, else lanes are the workspaces alone);
//! - a bar per operation from its start to its end (to the window's end while running),
//!   coloured by outcome; overlapping operations of one workspace stack in sub-rows;
//! - markers: attached (a ring at the start), skipped (a diamond), interrupted and later
//!   reattached (a double bar at the end), cancelled (a cross at the end);
//! - the item's expected duration (the `expectedSeconds` output) as a ghost bar behind the bar;
//! - the error on hover (an SVG `<title>`) and in a table below, and the totals: count by
//!   status, makespan, longest, overruns.

mod html;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use crate::store::OperationRow;

pub(crate) use html::render;

/// One operation as drawn.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// Its row id.
    pub id: i64,
    /// The lane's group (capacity), when known.
    pub capacity: Option<String>,
    /// The lane (workspace name, else id).
    pub lane: String,
    /// The item's name (else the operation).
    pub label: String,
    /// The operation.
    pub operation: String,
    /// The normalized status (or `Interrupted`, `Abandoned`).
    pub status: String,
    /// Start.
    pub start: Timestamp,
    /// End, when it ended.
    pub end: Option<Timestamp>,
    /// The item's expected duration, in seconds.
    pub expected: Option<f64>,
    /// Ran past nine in ten of the item's recent runs.
    pub overran: bool,
    /// Followed a refresh it did not trigger.
    pub attached: bool,
    /// pbiops asked the service to cancel it.
    pub cancel_requested: bool,
    /// The error, when it failed.
    pub error_code: Option<String>,
    /// The error's message.
    pub error_message: Option<String>,
    /// The service's request id.
    pub request_id: Option<String>,
    /// Kestra's execution id.
    pub execution: Option<String>,
}

impl Bar {
    /// A bar for a store row, or `None` for an operation on no item (token, history, a fleet's
    /// own row: its targets are drawn instead).
    pub(crate) fn from_row(row: &OperationRow) -> Option<Bar> {
        row.workspace_id.as_ref()?;
        row.item_id.as_ref().or(row.item_name.as_ref())?;
        let outputs: Value = row
            .outputs
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        let flag = |key: &str| outputs[key].as_bool().unwrap_or(false);
        Some(Bar {
            id: row.id,
            capacity: None,
            lane: row
                .workspace_name
                .clone()
                .or_else(|| row.workspace_id.clone())
                .unwrap_or_default(),
            label: row
                .item_name
                .clone()
                .or_else(|| row.item_id.clone())
                .unwrap_or_else(|| row.operation.clone()),
            operation: row.operation.clone(),
            status: row.status.clone(),
            start: row.started_at,
            end: row.ended_at,
            expected: outputs["expectedSeconds"].as_f64(),
            overran: flag("overran"),
            attached: row.attached || flag("attached"),
            cancel_requested: flag("cancelRequested"),
            error_code: row.error_code.clone(),
            error_message: row.error_message.clone(),
            request_id: row.request_id.clone(),
            execution: row.kestra_execution_id.clone(),
        })
    }

    /// Its end as drawn: the end, else (still running) the window's end.
    pub(crate) fn drawn_end(&self, window_end: Timestamp) -> Timestamp {
        self.end.unwrap_or(window_end).max(self.start)
    }

    /// Its duration in seconds, when it ended.
    pub(crate) fn seconds(&self) -> Option<f64> {
        self.end
            .map(|e| (e.as_millisecond() - self.start.as_millisecond()) as f64 / 1000.0)
    }
}

/// What the page says about the night as a whole.
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    /// Operations drawn.
    pub count: usize,
    /// How many of each status.
    pub by_status: BTreeMap<String, usize>,
    /// From the first start to the last end, in seconds.
    pub makespan: f64,
    /// The longest operation: (label, seconds).
    pub longest: Option<(String, f64)>,
    /// Operations that overran.
    pub overruns: usize,
}

impl Totals {
    /// The totals of `bars`, drawn up to `window_end`.
    pub(crate) fn of(bars: &[Bar], window_end: Timestamp) -> Totals {
        let mut t = Totals {
            count: bars.len(),
            ..Totals::default()
        };
        for bar in bars {
            *t.by_status.entry(bar.status.clone()).or_insert(0) += 1;
            if bar.overran {
                t.overruns += 1;
            }
            if let Some(s) = bar.seconds() {
                if t.longest.as_ref().is_none_or(|(_, l)| s > *l) {
                    t.longest = Some((bar.label.clone(), s));
                }
            }
        }
        let first = bars.iter().map(|b| b.start).min();
        let last = bars.iter().map(|b| b.drawn_end(window_end)).max();
        if let (Some(a), Some(b)) = (first, last) {
            t.makespan = (b.as_millisecond() - a.as_millisecond()) as f64 / 1000.0;
        }
        t
    }
}

#[cfg(test)]
mod tests;
