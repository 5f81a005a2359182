//! Workspace content beyond semantic models: Gen1 dataflows (with their transactions and
//! lineage), reports, Fabric items (Dataflow Gen2 and its jobs) and Power Automate flows.
//!
//! Like the rest of the scenario, unknown fields are errors and every error names its field.

use super::{DurationSpec, Scenario, check_duration, check_spec, resolve_time};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A reference to a dataflow in a workspace (lineage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataflowRef {
    /// The dataflow's id.
    pub dataflow_id: String,
    /// Its workspace.
    pub workspace_id: String,
}

/// A Power BI (Gen1) dataflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dataflow {
    /// Its id (`objectId` on the wire), unique across the scenario.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// `configuredBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_by: Option<String>,
    /// How refreshes (transactions) started from now on progress.
    #[serde(default)]
    pub refresh: DataflowBehaviour,
    /// Transactions that exist when the emulator starts.
    #[serde(default)]
    pub transactions: Vec<SeededTransaction>,
    /// Dataflows this one reads (`…/dataflows/{id}/upstreamDataflows`).
    #[serde(default)]
    pub upstream_dataflows: Vec<DataflowRef>,
    /// Successful daily transactions to generate before the emulator starts, their durations
    /// drawn from `refresh.durationSeconds` (which it then requires).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub history_count: u32,
}

/// How a dataflow transaction progresses and ends (counted like model refreshes).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataflowBehaviour {
    /// Observations that show it running before the one that shows its end.
    #[serde(default)]
    pub polls: Option<u32>,
    /// Seconds (emulator clock) after its start that it ends: a number or a distribution.
    #[serde(default)]
    pub duration_seconds: Option<DurationSpec>,
    /// Its end status.
    #[serde(default)]
    pub outcome: TransactionOutcome,
    /// Why it failed (kept by the emulator; the transactions API has no error field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The end status of a dataflow transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TransactionOutcome {
    /// `Success`.
    #[default]
    Success,
    /// `Failed`.
    Failed,
    /// `Cancelled`.
    Cancelled,
}

/// The status of a seeded transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeededStatus {
    /// Still running when the emulator starts.
    InProgress,
    /// `Success`.
    Success,
    /// `Failed`.
    Failed,
    /// `Cancelled`.
    Cancelled,
}

/// A transaction that exists when the emulator starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeededTransaction {
    /// Its id; generated (`<start>@<guid>$<n>`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `refreshType`.
    #[serde(default = "default_transaction_type")]
    pub refresh_type: String,
    /// `InProgress` means running.
    pub status: SeededStatus,
    /// Start (absolute or relative time).
    pub start_time: String,
    /// End; required unless running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Running entry: observations before it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u32>,
    /// Running entry: how it ends.
    #[serde(default)]
    pub outcome: TransactionOutcome,
}

fn default_transaction_type() -> String {
    "Scheduled".to_owned()
}

/// `reportType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReportType {
    /// A Power BI report bound to a semantic model.
    #[default]
    PowerBIReport,
    /// A paginated (RDL) report: no `datasetId`.
    PaginatedReport,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Report {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `reportType`.
    #[serde(default)]
    pub report_type: ReportType,
    /// The model it reads (absent for paginated reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<String>,
    /// The model's workspace; defaults to the report's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_workspace_id: Option<String>,
}

/// A Fabric item of a workspace (e.g. a Dataflow Gen2, type `Dataflow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FabricItem {
    /// Its id, unique across the scenario.
    pub id: String,
    /// `displayName`.
    pub display_name: String,
    /// `type`, e.g. `Dataflow`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// How its on-demand jobs progress.
    #[serde(default)]
    pub refresh: JobBehaviour,
}

/// How a Fabric job instance progresses and ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobBehaviour {
    /// Observations that show it not finished before the one that shows its end.
    #[serde(default)]
    pub polls: Option<u32>,
    /// Seconds (emulator clock) after its start that it ends.
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// Its end status.
    #[serde(default)]
    pub outcome: JobOutcome,
    /// `failureReason` of a failed job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    /// The `Retry-After` seconds of the job's 202 and status answers (a real trigger says 60).
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
    /// Status reads carry a `Retry-After` counting down to the job's end (recorded: 59, 57, 45,
    /// 3, 2, 0) and none once it reads as ended, instead of a constant `retryAfterSeconds`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub countdown_retry_after: bool,
    /// Emulator seconds the job still reads `InProgress` (its `endTimeUtc` already set) after it
    /// ended (recorded: ~110 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_lag_seconds: Option<f64>,
    /// The status word the ended job shows instead of its outcome's, e.g. a status outside the
    /// documented `Completed`/`Failed`/`Cancelled`/`Deduped` ("Additional statuses may be added
    /// over time"; Fabric's workload SDK lists `NotFound`, `Duplicate`, `OwnerUserMissing`,
    /// `DeadLettered`, `Unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_status: Option<String>,
}

impl Default for JobBehaviour {
    fn default() -> JobBehaviour {
        JobBehaviour {
            polls: None,
            duration_seconds: None,
            outcome: JobOutcome::Completed,
            failure_reason: None,
            retry_after_seconds: default_retry_after(),
            countdown_retry_after: false,
            status_lag_seconds: None,
            end_status: None,
        }
    }
}

fn default_retry_after() -> u64 {
    1
}

/// The end status of a job instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JobOutcome {
    /// `Completed`.
    #[default]
    Completed,
    /// `Failed`, with `failureReason`.
    Failed,
    /// `Cancelled`.
    Cancelled,
    /// `Deduped`.
    Deduped,
}

/// A Fabric `ErrorResponse` used as `failureReason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailureReason {
    /// `errorCode`.
    pub error_code: String,
    /// `message`.
    pub message: String,
}

/// A Power Automate flow with a "When an HTTP request is received" trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flow {
    /// The workflow id of the trigger URL.
    pub workflow_id: String,
    /// The URL's `sig` (a secret).
    pub sig: String,
    /// A flow that is off answers 404 `WorkflowNotFound`.
    #[serde(default = "super::default_true")]
    pub enabled: bool,
    /// What a run does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<FlowAction>,
}

/// What a flow run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowAction {
    /// Refresh this Gen1 dataflow (a new transaction, as a REST refresh would).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataflow: Option<DataflowRef>,
    /// Record a transaction of this dataflow that fails with `DailyDataflowRefreshLimitExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_with_daily_limit: Option<DataflowRef>,
}

impl DataflowBehaviour {
    /// Checks the values serde cannot; the error starts with the field name.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_spec(self.duration_seconds.as_ref())
    }
}

impl JobBehaviour {
    /// Checks the values serde cannot; the error starts with the field name.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_duration(self.duration_seconds).map_err(|e| format!("durationSeconds: {e}"))?;
        check_duration(self.status_lag_seconds).map_err(|e| format!("statusLagSeconds: {e}"))?;
        match self.end_status.as_deref() {
            Some(word) if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Err(format!("endStatus: '{word}' is not a status word"))
            }
            _ => Ok(()),
        }
    }
}

/// Checks dataflows, reports, items and flows: unique ids, valid times, references that resolve.
pub(super) fn validate(scenario: &Scenario, now: Timestamp) -> Result<(), String> {
    let dataflow_at = |r: &DataflowRef| {
        scenario
            .workspaces
            .iter()
            .find(|w| w.id.eq_ignore_ascii_case(&r.workspace_id))
            .is_some_and(|w| {
                w.dataflows
                    .iter()
                    .any(|d| d.id.eq_ignore_ascii_case(&r.dataflow_id))
            })
    };
    let check_ref = |at: &str, r: &DataflowRef| {
        if dataflow_at(r) {
            Ok(())
        } else {
            Err(format!(
                "{at}: no dataflow '{}' in workspace '{}'",
                r.dataflow_id, r.workspace_id
            ))
        }
    };
    let mut ids = HashSet::new();
    for (w, ws) in scenario.workspaces.iter().enumerate() {
        for (d, ds) in ws.datasets.iter().enumerate() {
            for (u, up) in ds.upstream_dataflows.iter().enumerate() {
                check_ref(
                    &format!("workspaces[{w}].datasets[{d}].upstreamDataflows[{u}]"),
                    up,
                )?;
            }
        }
        for (d, df) in ws.dataflows.iter().enumerate() {
            let at = format!("workspaces[{w}].dataflows[{d}]");
            if !ids.insert(df.id.to_ascii_lowercase()) {
                return Err(format!("{at}.id: duplicate '{}'", df.id));
            }
            df.refresh
                .check()
                .map_err(|e| format!("{at}.refresh.{e}"))?;
            if df.history_count > 0 && df.refresh.duration_seconds.is_none() {
                return Err(format!(
                    "{at}.historyCount: needs refresh.durationSeconds to draw durations from"
                ));
            }
            for (u, up) in df.upstream_dataflows.iter().enumerate() {
                check_ref(&format!("{at}.upstreamDataflows[{u}]"), up)?;
            }
            let mut running = 0;
            for (t, tx) in df.transactions.iter().enumerate() {
                let at = format!("{at}.transactions[{t}]");
                resolve_time(&tx.start_time, now).map_err(|e| format!("{at}.startTime: {e}"))?;
                match (&tx.end_time, tx.status) {
                    (Some(_), SeededStatus::InProgress) => {
                        return Err(format!("{at}.endTime: a running transaction has no end"));
                    }
                    (None, SeededStatus::InProgress) => running += 1,
                    (None, _) => {
                        return Err(format!("{at}.endTime: required unless InProgress"));
                    }
                    (Some(end), _) => {
                        resolve_time(end, now).map_err(|e| format!("{at}.endTime: {e}"))?;
                    }
                }
            }
            if running > 1 {
                return Err(format!("{at}.transactions: at most one may be InProgress"));
            }
        }
        for (r, report) in ws.reports.iter().enumerate() {
            let at = format!("workspaces[{w}].reports[{r}]");
            if !ids.insert(report.id.to_ascii_lowercase()) {
                return Err(format!("{at}.id: duplicate '{}'", report.id));
            }
            match (report.report_type, &report.dataset_id) {
                (ReportType::PaginatedReport, Some(_)) => {
                    return Err(format!("{at}.datasetId: a paginated report has no model"));
                }
                (ReportType::PowerBIReport, None) => {
                    return Err(format!("{at}.datasetId: required for a PowerBIReport"));
                }
                _ => {}
            }
        }
        for (i, item) in ws.items.iter().enumerate() {
            let at = format!("workspaces[{w}].items[{i}]");
            if !ids.insert(item.id.to_ascii_lowercase()) {
                return Err(format!("{at}.id: duplicate '{}'", item.id));
            }
            item.refresh
                .check()
                .map_err(|e| format!("{at}.refresh.{e}"))?;
        }
    }
    let mut workflows = HashSet::new();
    for (f, flow) in scenario.flows.iter().enumerate() {
        let at = format!("flows[{f}]");
        if !workflows.insert(flow.workflow_id.to_ascii_lowercase()) {
            return Err(format!("{at}.workflowId: duplicate '{}'", flow.workflow_id));
        }
        if let Some(action) = &flow.action {
            match (&action.dataflow, &action.fail_with_daily_limit) {
                (Some(r), None) => check_ref(&format!("{at}.action.dataflow"), r)?,
                (None, Some(r)) => check_ref(&format!("{at}.action.failWithDailyLimit"), r)?,
                _ => {
                    return Err(format!(
                        "{at}.action: exactly one of dataflow, failWithDailyLimit"
                    ));
                }
            }
        }
    }
    if scenario.fabric_page_size == 0 {
        return Err("fabricPageSize: must be at least 1".to_owned());
    }
    Ok(())
}
