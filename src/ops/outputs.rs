//! The outputs contract: the keys a Kestra flow reads as `outputs.<task>.vars.<key>`.
//!
//! Keys are camelCase and only present when known. `status` is normalized across every kind of
//! item; the service's own word is kept in `serviceStatus`. Changing this struct changes a
//! public contract: the README's "Outputs" table and the strict decoding in the tests follow it.

use serde::Serialize;

use crate::powerbi::wire::RefreshObjectStatus;

/// The normalized status of an operation's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Status {
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled (by a person, or by us on timeout).
    Cancelled,
    /// The service's own timeout ended it.
    TimedOut,
    /// Triggered without waiting (`wait: false`).
    Triggered,
    /// Not triggered, by policy (`ifRunning: skip`, or nothing to cancel), or never accepted
    /// (no capacity slot came free, the capacity kept rejecting it).
    Skipped,
    /// Still running when our wait timed out.
    Running,
    /// Disabled by a selective refresh.
    Disabled,
}

/// Every output key. See the README's "Outputs" table.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// The operation, e.g. `dataset.refresh` (absent when the task itself was invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    /// Normalized status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The service's own status word (`extendedStatus` when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_status: Option<String>,
    /// The profile used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Workspace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// Workspace name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    /// `SemanticModel`, `Dataflow` (Gen1) or `DataflowGen2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_kind: Option<&'static str>,
    /// Semantic model id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<String>,
    /// Semantic model name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// The refresh id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `Standard` or `Enhanced`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_type: Option<&'static str>,
    /// True when the run followed a refresh it did not trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<bool>,
    /// The refresh's start, as the service reports it (UTC, RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// The refresh's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// End minus start, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// How long this run waited, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<f64>,
    /// How long the refresh waited in the service's queue before it began (its first attempt's
    /// start minus the request's start), in seconds: a capacity busy with other refreshes shows
    /// here. Absent when the service did not say (a running refresh, a kind without attempts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_seconds: Option<f64>,
    /// How long the item waited for its capacity to accept the refresh, in seconds (its
    /// capacity rejected new refreshes: surge protection, overload); absent when it did not wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_wait_seconds: Option<f64>,
    /// The service's error code, or pbiops's own (e.g. `RefreshDropped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Per-table / partition status of an enhanced refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<RefreshObjectStatus>>,
    /// True when pbiops cancelled the refresh after its wait timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    /// The median duration of the item's recent successful refreshes, in seconds (when it has
    /// any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_seconds: Option<f64>,
    /// Whether the refresh took (or, still running, has taken) longer than nine in ten of those.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overran: Option<bool>,
    /// `dataset.status`: end of the latest successful refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<String>,
    /// `dataset.status`: seconds since the latest successful refresh ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    /// `dataset.status` with `maxAge`: whether the data is fresh enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh: Option<bool>,
    /// `token.get`: the resource (`powerbi`, `fabric`, `flow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'static str>,
    /// `token.get`: when the token expires (UTC). Never the token itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    /// `token.get`: `store` (a stored token still valid) or `acquired` (a new one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_source: Option<&'static str>,
    /// `token.refresh`: one entry per (profile, resource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<crate::ops::TokenResult>>,
    /// `credentials.check`: one entry per profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<crate::ops::ProfileCheck>>,
    /// `token.refresh`: tokens renewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed: Option<usize>,
    /// `credentials.check`: profiles checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<usize>,
    /// `token.refresh`, `credentials.check`, `dataset.refresh` with `targets`, `dataflow.refresh`
    /// (cascade): how many failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<usize>,
    /// `history`: rows found; `dataset.refresh` with `targets`, `dataflow.refresh` (cascade):
    /// models refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// `history`, `dataset.refresh` with `targets`: how many of each status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_status: Option<std::collections::BTreeMap<String, usize>>,
    /// `history`, `inventory`, `dataset.refresh` with `targets`, `dataflow.refresh` (cascade): the
    /// JSON file written (for Kestra's `outputFiles`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Dataflows: 1 (Power BI) or 2 (Fabric Dataflow Gen2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u8>,
    /// Dataflow id (Gen1 `objectId`, or the Fabric item id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataflow_id: Option<String>,
    /// Dataflow name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataflow_name: Option<String>,
    /// `report.refresh`: the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_id: Option<String>,
    /// `report.refresh`: the report's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_name: Option<String>,
    /// `flow.trigger`: the flow's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// `flow.trigger`: `x-ms-workflow-run-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `dataset.refresh` with `targets`, `dataflow.refresh` with `then: downstream`: one entry
    /// per model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<crate::ops::TargetResult>>,
    /// `inventory`: how many of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<std::collections::BTreeMap<String, usize>>,
    /// `dataset.refresh` with `targets`: seconds from the start of the run to the end of the last
    /// refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub makespan_seconds: Option<f64>,
    /// `dataset.refresh` with `targets`, `dataflow.refresh` (cascade): per capacity that rejected
    /// new refreshes, how long it was held (no item of it started), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_hold_seconds: Option<std::collections::BTreeMap<String, f64>>,
    /// Refresh operations and `preflight`: one row per check (capacity, data source, …) with its
    /// verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Vec<crate::preflight::Row>>,
    /// `preflight`: whether every item may be refreshed (no check failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The alert payload written on a failure (`alertFile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_file: Option<String>,
    /// The timeline picture written (`timeline`, or `timelineFile` on a fleet or cascade).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_file: Option<String>,
    /// `timeline`: the longest operation drawn, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_seconds: Option<f64>,
    /// `timeline`: how many operations ran past nine in ten of their item's recent runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overruns: Option<usize>,
    /// The operation's row in the store (`pbiops_operations.id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<i64>,
}

impl Outputs {
    /// The outputs as a JSON object, for the reporter.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }
}

/// Maps the service's `status` / `extendedStatus` to a terminal [`Status`]; `None` while running.
///
/// `extendedStatus` wins when present: it is the only place the service says `TimedOut`.
/// Unknown words count as running, so a new status keeps the wait going until the timeout
/// rather than ending it with a guess.
pub fn terminal_status(status: Option<&str>, extended: Option<&str>) -> Option<Status> {
    let word = |w: &str| match w {
        "Completed" => Some(Status::Completed),
        "Failed" => Some(Status::Failed),
        "Cancelled" | "Canceled" => Some(Status::Cancelled),
        "TimedOut" => Some(Status::TimedOut),
        "Disabled" => Some(Status::Disabled),
        _ => None,
    };
    match extended {
        Some(e) if !e.is_empty() => word(e),
        _ => status.and_then(word),
    }
}

/// Parses a service timestamp, with or without `Z` (no offset means UTC).
pub fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().ok().or_else(|| {
        let civil: jiff::civil::DateTime = text.parse().ok()?;
        jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
    })
}

/// Normalizes a service timestamp to RFC 3339 UTC (`…Z`), keeping unparseable text as-is.
pub fn utc(text: &str) -> String {
    parse_time(text).map_or_else(|| text.to_string(), |t| t.to_string())
}

/// Seconds as outputs show them: a float, to the millisecond.
pub fn secs(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Seconds from `start` to `end`.
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let (s, e) = (parse_time(start)?, parse_time(end)?);
    Some(e.duration_since(s).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_status_wins_and_running_words_are_not_terminal() {
        assert_eq!(
            terminal_status(Some("Failed"), Some("TimedOut")),
            Some(Status::TimedOut)
        );
        assert_eq!(terminal_status(Some("Unknown"), Some("InProgress")), None);
        assert_eq!(terminal_status(Some("Unknown"), None), None);
        assert_eq!(
            terminal_status(Some("Completed"), None),
            Some(Status::Completed)
        );
        assert_eq!(
            terminal_status(Some("Cancelled"), Some("Cancelled")),
            Some(Status::Cancelled)
        );
        assert_eq!(terminal_status(Some("SomethingNew"), None), None);
    }

    #[test]
    fn timestamps_without_zone_are_utc() {
        assert_eq!(utc("2021-12-10T08:39:28.517"), "2021-12-10T08:39:28.517Z");
        assert_eq!(utc("2024-11-19T08:38:51.96Z"), "2024-11-19T08:38:51.96Z");
        assert_eq!(
            seconds_between("2021-12-10T08:39:28.5", "2021-12-10T08:39:30Z"),
            Some(1.5)
        );
    }

    #[test]
    fn absent_outputs_are_not_serialized() {
        let o = Outputs {
            operation: Some("dataset.status"),
            fresh: Some(true),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&o).expect("json"),
            serde_json::json!({"operation":"dataset.status","fresh":true})
        );
    }
}
