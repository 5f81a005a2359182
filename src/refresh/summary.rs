//! What a fleet or a cascade reports: one entry per item, and the summary of them all.

use serde::Serialize;

use super::{ItemInfo, Kind};
use crate::error::ExitCode;
use crate::ops::outputs::{Outputs, Status};

/// One item of a fleet or a cascade, as the outputs and the file report it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    /// The key other targets name in `dependsOn`.
    pub key: String,
    /// `SemanticModel`, `Dataflow` (Gen1) or `DataflowGen2`, once resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_kind: Option<&'static str>,
    /// The item's workspace, as given or resolved.
    pub workspace_id: String,
    /// Its workspace's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    /// The semantic model, as given or resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// The dataflow, as given or resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataflow_id: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataflow_name: Option<String>,
    /// The keys of the items it waited for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Normalized status (`Skipped` when an upstream item did not complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The run's id (refresh, transaction or job instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// True when it followed a refresh it did not trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<bool>,
    /// The refresh's duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// How long its refresh waited in the service's queue before it began, when the service said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_seconds: Option<f64>,
    /// How long it waited for its capacity to accept it (the capacity rejected new refreshes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_wait_seconds: Option<f64>,
    /// The run's exit code for this item.
    pub exit_code: i32,
    /// Error code (`UpstreamNotCompleted` for a skipped item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Its row in the operation log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<i64>,
}

impl TargetResult {
    /// An entry for an item known only as given.
    pub(super) fn given(
        key: &str,
        workspace: &str,
        kind: Option<Kind>,
        name: &str,
    ) -> TargetResult {
        let (dataset, dataflow) = match kind {
            Some(Kind::Model) => (Some(name.to_string()), None),
            _ => (None, Some(name.to_string())),
        };
        TargetResult {
            key: key.to_string(),
            item_kind: None,
            workspace_id: workspace.to_string(),
            workspace_name: None,
            dataset_id: dataset,
            dataset_name: None,
            dataflow_id: dataflow,
            dataflow_name: None,
            depends_on: Vec::new(),
            status: None,
            request_id: None,
            attached: None,
            duration_seconds: None,
            queued_seconds: None,
            capacity_wait_seconds: None,
            exit_code: 0,
            error_code: None,
            error_message: None,
            operation_id: None,
        }
    }

    /// Whether the item completed (what its dependents wait for).
    pub(super) fn completed(&self) -> bool {
        self.status == Some(Status::Completed)
    }
}

/// Marks an entry as skipped because `upstream` ended `ended` (not a failure of its own).
pub(super) fn skip(mut r: TargetResult, upstream: &str, ended: &str) -> TargetResult {
    r.status = Some(Status::Skipped);
    r.error_code = Some("UpstreamNotCompleted".into());
    r.error_message = Some(format!("not refreshed: upstream {upstream} ended {ended}"));
    tracing::warn!(
        "{}: {}",
        r.key,
        r.error_message.as_deref().unwrap_or_default()
    );
    r
}

/// An entry for a resolved item.
pub(super) fn of_item(key: &str, info: &ItemInfo) -> TargetResult {
    let mut r = TargetResult::given(key, &info.workspace_id, Some(info.kind), &info.id);
    r.item_kind = Some(info.kind.as_str());
    r.workspace_name = Some(info.workspace_name.clone());
    match info.kind {
        Kind::Model => r.dataset_name = Some(info.name.clone()),
        Kind::Gen1 | Kind::Gen2 => r.dataflow_name = Some(info.name.clone()),
    }
    r
}

/// What a fleet or a cascade ran: one entry per item, and per capacity that rejected new
/// refreshes, the seconds it was held.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// One entry per item, in the order given.
    pub targets: Vec<TargetResult>,
    /// Capacity id → seconds held.
    pub holds: std::collections::BTreeMap<String, f64>,
}

impl From<Vec<TargetResult>> for Report {
    fn from(targets: Vec<TargetResult>) -> Report {
        Report {
            targets,
            holds: Default::default(),
        }
    }
}

/// The summary every fleet and cascade gives: counts, statuses, the file, the entries, the holds.
pub(crate) fn summarize(report: Report, file: &std::path::Path, out: &mut Outputs) -> ExitCode {
    let Report {
        targets: results,
        holds,
    } = report;
    if !holds.is_empty() {
        out.capacity_hold_seconds = Some(holds);
    }
    let failed = results.iter().filter(|r| r.exit_code != 0).count();
    let mut by_status = std::collections::BTreeMap::new();
    for r in &results {
        let key = r
            .status
            .map_or_else(|| "Error".to_string(), |s| format!("{s:?}"));
        *by_status.entry(key).or_insert(0) += 1;
    }
    out.file = write_summary(file, &results);
    tracing::info!(
        "{} item(s): {by_status:?}; details in {}",
        results.len(),
        file.display()
    );
    out.count = Some(results.len());
    out.failed = Some(failed);
    out.by_status = Some(by_status);
    out.targets = Some(results);
    if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Unsuccessful
    }
}

/// Writes the per-target file. The refreshes already ran: a file that cannot be written is
/// reported, not allowed to turn their outcome into an error; the outputs carry it all anyway.
fn write_summary(path: &std::path::Path, results: &[TargetResult]) -> Option<String> {
    match std::fs::write(
        path,
        serde_json::to_string_pretty(results).unwrap_or_default(),
    ) {
        Ok(()) => Some(path.display().to_string()),
        Err(e) => {
            tracing::error!(
                "cannot write {}: {e}; the outputs hold every target",
                path.display()
            );
            None
        }
    }
}
