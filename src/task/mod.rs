//! The task contract: where the one task of a run comes from, and its validated form.
//!
//! Two stages, as the README's task contract describes: a task (from the CLI, a file, stdin or
//! `PBIOPS_TASK`) is read strictly into its operation's raw type ([`RawTask`], one per
//! [`Operation`], unknown fields refused), then each raw type's `validate` turns it into a
//! [`Task`] with every default resolved and every rule checked, so that no request is ever sent
//! for a bad task. `pbiops schema` is generated from the raw types.
//!
//! - [`json`]: text → JSON, strictly (size, duplicate keys, control characters, secrets);
//! - [`operation`]: the operations and their raw types, and the schema;
//! - [`fields`] and [`words`]: names, durations, counts and the closed lists of words, checked as
//!   they are read;
//! - [`wait`], [`dataset`], [`dataflow`], [`fleet`], [`items`], [`admin`]: each operation's fields
//!   and rules;
//! - [`cli`] and [`source`]: the command line and the task's sources.

pub mod admin;
pub mod around;
pub mod cli;
pub mod dataflow;
pub mod dataset;
pub mod duration;
pub mod fields;
pub mod fleet;
pub mod items;
pub mod json;
pub mod night;
pub mod operation;
pub mod source;
pub mod wait;
pub mod words;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::wait::Ceiling;

pub use around::Around;
pub use operation::{Operation, RawTask};
pub use source::{check_output_file, load_with_json};

/// One validated task.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Trigger a semantic model refresh and (by default) wait for it.
    DatasetRefresh(RefreshTask),
    /// Refresh many items in one run, in dependency order (`targets`).
    Fleet(FleetTask),
    /// Cancel a running enhanced refresh.
    DatasetCancel(CancelTask),
    /// Report the latest refresh, optionally as a freshness gate.
    DatasetStatus(StatusTask),
    /// Get a token (from the store while it stays valid), output its expiry.
    TokenGet(TokenGetTask),
    /// Renew every stored or configured token expiring soon.
    TokenRefresh(TokenRefreshTask),
    /// Check every profile end to end.
    CredentialsCheck(CredentialsCheckTask),
    /// Query the operation log.
    History(HistoryTask),
    /// Refresh a Gen1 or Gen2 dataflow (and, optionally, the models that read it).
    DataflowRefresh(DataflowRefreshTask),
    /// Call a Power Automate / Logic Apps HTTP trigger (and optionally follow its dataflow).
    FlowTrigger(FlowTriggerTask),
    /// Refresh the semantic model behind a report.
    ReportRefresh(ReportRefreshTask),
    /// List workspaces, models, dataflows, reports and their lineage.
    Inventory(InventoryTask),
    /// Check, without triggering, whether refreshes can run.
    Preflight(PreflightTask),
    /// Draw a window of the operation log as one HTML file.
    Timeline(TimelineTask),
}

impl Task {
    /// Where the operation writes its JSON file, when it writes one.
    pub fn output_file(&self) -> Option<&Path> {
        match self {
            Task::Fleet(t) => Some(&t.output_file),
            Task::DataflowRefresh(t) => t.downstream.map(|_| t.output_file.as_path()),
            Task::History(t) => Some(&t.output_file),
            Task::Inventory(t) => Some(&t.output_file),
            Task::Preflight(t) => Some(&t.output_file),
            Task::Timeline(t) => Some(&t.output_file),
            _ => None,
        }
    }

    /// The operation's name as written in tasks and outputs.
    pub fn operation(&self) -> &'static str {
        let operation = match self {
            Task::DatasetRefresh(_) => Operation::DatasetRefresh,
            Task::Fleet(t) => return t.operation,
            Task::DatasetCancel(_) => Operation::DatasetCancel,
            Task::DatasetStatus(_) => Operation::DatasetStatus,
            Task::TokenGet(_) => Operation::TokenGet,
            Task::TokenRefresh(_) => Operation::TokenRefresh,
            Task::CredentialsCheck(_) => Operation::CredentialsCheck,
            Task::History(_) => Operation::History,
            Task::DataflowRefresh(_) => Operation::DataflowRefresh,
            Task::FlowTrigger(_) => Operation::FlowTrigger,
            Task::ReportRefresh(_) => Operation::ReportRefresh,
            Task::Inventory(_) => Operation::Inventory,
            Task::Preflight(_) => Operation::Preflight,
            Task::Timeline(_) => Operation::Timeline,
        };
        operation.as_str()
    }

    /// The preflight, alert and timeline options of a refresh operation.
    pub fn around(&self) -> Option<&Around> {
        match self {
            Task::DatasetRefresh(t) => Some(&t.around),
            Task::Fleet(t) => Some(&t.around),
            Task::DataflowRefresh(t) => Some(&t.around),
            Task::ReportRefresh(t) => Some(&t.refresh.around),
            _ => None,
        }
    }

    /// The one profile whose credentials the task uses; `None` for tasks over many profiles.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Task::DatasetRefresh(t) => Some(&t.target.profile),
            Task::Fleet(t) => Some(&t.profile),
            Task::DatasetCancel(t) => Some(&t.target.profile),
            Task::DatasetStatus(t) => Some(&t.target.profile),
            Task::TokenGet(t) => Some(&t.profile),
            Task::DataflowRefresh(t) => Some(&t.refresh.target.profile),
            Task::FlowTrigger(t) => Some(&t.profile),
            Task::ReportRefresh(t) => Some(&t.refresh.target.profile),
            Task::Inventory(t) => Some(&t.profile),
            Task::Preflight(t) => Some(&t.profile),
            Task::TokenRefresh(_)
            | Task::CredentialsCheck(_)
            | Task::History(_)
            | Task::Timeline(_) => None,
        }
    }
}

/// A semantic model, by name or id, and the profile to reach it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetTarget {
    /// Profile name (`default` unless given).
    pub profile: String,
    /// Workspace name or id.
    pub workspace: String,
    /// Semantic model name or id.
    pub dataset: String,
}

/// What to do when a refresh of the model is already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfRunning {
    /// Wait for the running refresh and report it (`attached: true`).
    Attach,
    /// Exit 0 with status `Skipped` and the running refresh's id.
    Skip,
    /// Exit 1.
    Fail,
}

/// What to do when our wait times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// Leave the refresh running (exit 5).
    Leave,
    /// Cancel it when it is an enhanced refresh, then exit 5.
    Cancel,
}

/// Bounds and deadlines of a wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitOptions {
    /// Whether to wait at all.
    pub wait: bool,
    /// Overall time to wait for the refresh to end.
    pub timeout: Duration,
    /// Shortest interval between two status polls.
    pub poll_min: Duration,
    /// Longest interval between two status polls.
    pub poll_max: Duration,
    /// Whether the task gave `poll.max` (a bound for every wait) or left the default (which an
    /// economical wait with a history may pass: [`Ceiling::Default`]).
    pub poll_ceiling: Ceiling,
    /// How long a new refresh id may be missing from the service before it counts as dropped.
    pub grace: Duration,
    /// End the wait once the refresh has run this many times its item's p90 duration.
    pub max_overrun: Option<f64>,
}

/// A `dataset.refresh` task.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshTask {
    /// The model.
    pub target: DatasetTarget,
    /// Standard or enhanced, with its body.
    pub body: RefreshBody,
    /// Single-flight policy.
    pub if_running: IfRunning,
    /// Timeout policy.
    pub on_timeout: OnTimeout,
    /// Wait bounds.
    pub wait: WaitOptions,
    /// Preflight, alert and timeline options.
    pub around: Around,
}

/// The refresh request body.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshBody {
    /// A standard refresh: no body, or `notifyOption` only.
    Standard {
        /// `NoNotification`, `MailOnFailure` or `MailOnCompletion`, when given.
        notify_option: Option<String>,
    },
    /// An enhanced refresh.
    Enhanced(EnhancedRefresh),
}

/// The enhanced refresh body, serialized with the service's field names (`powerbi-api.md` §2.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnhancedRefresh {
    /// `Full`, `ClearValues`, `Calculate`, `DataOnly`, `Automatic` or `Defragment`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `Transactional` or `PartialBatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_mode: Option<String>,
    /// Maximum parallel processing threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<u32>,
    /// Retries inside the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// Tables and partitions; empty means the whole model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<RefreshObject>,
    /// Whether to apply the incremental refresh policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_refresh_policy: Option<bool>,
    /// The date the incremental policy is evaluated at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    /// The service's per-attempt timeout, `hh:mm:ss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// One table, or one partition of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshObject {
    /// Table name.
    pub table: String,
    /// Partition name, when only one partition is refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// A `dataset.cancel` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTask {
    /// The model.
    pub target: DatasetTarget,
    /// The refresh to cancel; the running one when absent.
    pub request_id: Option<String>,
}

/// A `dataset.status` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTask {
    /// The model.
    pub target: DatasetTarget,
    /// When set, the run is a freshness gate: older data, or a failed latest refresh, exits 1.
    pub max_age: Option<Duration>,
}

/// A `token.get` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGetTask {
    /// Profile name.
    pub profile: String,
    /// The API the token is for.
    pub resource: crate::auth::Resource,
}

/// A `token.refresh` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefreshTask {
    /// Renew tokens expiring within this.
    pub within: Duration,
    /// Which resources (default Power BI and Fabric).
    pub resources: Vec<crate::auth::Resource>,
    /// Which profiles (default: every configured one).
    pub profiles: Option<Vec<String>>,
}

/// A `credentials.check` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsCheckTask {
    /// Which profiles (default: every configured one).
    pub profiles: Option<Vec<String>>,
}

/// A `history` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTask {
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this normalized status.
    pub status: Option<String>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only rows whose workspace or item id or name matches (case-insensitive).
    pub target: Option<String>,
    /// Only operations started within this long ago.
    pub since: Option<Duration>,
    /// At most this many rows, newest first.
    pub limit: u32,
    /// Where the JSON file goes (for Kestra's `outputFiles`).
    pub output_file: std::path::PathBuf,
}

/// A dataflow, by name or id, and the profile to reach it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataflowTarget {
    /// Profile name (`default` unless given).
    pub profile: String,
    /// Workspace name or id.
    pub workspace: String,
    /// Dataflow name or id.
    pub dataflow: String,
    /// 1 (Power BI) or 2 (Fabric); detected by name when absent.
    pub generation: Option<u8>,
}

/// The options a dataflow refresh is triggered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataflowOptions {
    /// Gen1: `NoNotification` (default) or `MailOnFailure`.
    pub notify_option: String,
    /// Gen1: `default` or `processFull`.
    pub process_type: Option<String>,
    /// Gen2: `ApplyChangesIfNeeded` or `SkipApplyChanges`.
    pub execute_option: Option<String>,
}

/// One dataflow refresh: the dataflow, its trigger options and how to follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataflowRefresh {
    /// The dataflow.
    pub target: DataflowTarget,
    /// Trigger options.
    pub options: DataflowOptions,
    /// Wait bounds.
    pub wait: WaitOptions,
    /// Single-flight policy.
    pub if_running: IfRunning,
    /// Timeout policy.
    pub on_timeout: OnTimeout,
}

/// A `dataflow.refresh` task.
#[derive(Debug, Clone, PartialEq)]
pub struct DataflowRefreshTask {
    /// The dataflow refresh.
    pub refresh: DataflowRefresh,
    /// `then: downstream`: refresh, in lineage order, every dataflow and semantic model that
    /// reads the dataflow (transitively), this many at a time.
    pub downstream: Option<usize>,
    /// Where the cascade's per-target file goes.
    pub output_file: std::path::PathBuf,
    /// Preflight, alert and timeline options.
    pub around: Around,
}

/// A `flow.trigger` task.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowTriggerTask {
    /// Profile (for `monitor`).
    pub profile: String,
    /// The flow's name: its URL is `PBIOPS_FLOW_<NAME>_URL`.
    pub flow: String,
    /// The JSON body to post.
    pub body: serde_json::Value,
    /// The Gen1 dataflow the flow refreshes, to report the refresh's real outcome.
    pub monitor: Option<(String, String)>,
    /// Wait bounds (with `monitor`).
    pub wait: WaitOptions,
    /// Timeout policy (with `monitor`).
    pub on_timeout: OnTimeout,
}

/// A `report.refresh` task: the report, then a `dataset.refresh` of its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRefreshTask {
    /// Report name or id (in `refresh.target.workspace`).
    pub report: String,
    /// The refresh; its target's `dataset` is filled in once the report is resolved.
    pub refresh: RefreshTask,
}

/// An `inventory` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryTask {
    /// Profile name.
    pub profile: String,
    /// Only these workspaces (names or ids); all visible ones when absent.
    pub workspace: Option<String>,
    /// Where `inventory.json` goes.
    pub output_file: std::path::PathBuf,
}

/// A `preflight` task.
#[derive(Debug, Clone, PartialEq)]
pub struct PreflightTask {
    /// Profile name.
    pub profile: String,
    /// The items to check (their refresh options are the defaults).
    pub targets: Vec<FleetTarget>,
    /// Where the JSON file of the checks goes.
    pub output_file: std::path::PathBuf,
}

/// A `timeline` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineTask {
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this normalized status.
    pub status: Option<String>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only rows whose workspace or item id or name matches (case-insensitive).
    pub target: Option<String>,
    /// The window's start, back from now.
    pub since: Duration,
    /// The window's end, back from now (now when absent).
    pub until: Option<Duration>,
    /// At most this many operations.
    pub limit: u32,
    /// The page's title.
    pub title: String,
    /// Group the lanes by capacity (reads the workspaces as `profile`, or `default`).
    pub by_capacity: bool,
    /// Where the HTML file goes.
    pub output_file: std::path::PathBuf,
}

/// A refresh of many items in one run (`targets`), in dependency order.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetTask {
    /// The operation as written (`dataset.refresh` or `dataflow.refresh` with `targets`).
    pub operation: &'static str,
    /// Profile name.
    pub profile: String,
    /// One refresh per item, in the order given.
    pub targets: Vec<FleetTarget>,
    /// At most this many refreshes at once.
    pub max_parallel: usize,
    /// At most this many at once on one capacity.
    pub max_per_capacity: Option<usize>,
    /// Where the per-target JSON file goes.
    pub output_file: std::path::PathBuf,
    /// Preflight, alert and timeline options.
    pub around: Around,
}

/// One item of a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetTarget {
    /// The name `dependsOn` refers to: the target's `id`, else its item as given.
    pub key: String,
    /// What to refresh.
    pub refresh: ItemRefresh,
    /// Keys of the targets that must complete before this one starts.
    pub depends_on: Vec<String>,
}

/// A refresh of any refreshable kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemRefresh {
    /// A semantic model.
    Model(RefreshTask),
    /// A Gen1 or Gen2 dataflow.
    Dataflow(DataflowRefresh),
}

/// Reads and validates task JSON text, for unit tests.
#[cfg(test)]
pub(crate) fn parse_task(text: &str) -> Result<Task, crate::error::Error> {
    RawTask::parse(text)?.validate()
}

/// Asserts that each task is refused with exit 2, naming its field, with a hint.
#[cfg(test)]
pub(crate) fn assert_refused(cases: &[(&str, &str)]) {
    for (json, field) in cases {
        let err = parse_task(json).expect_err(json);
        assert!(
            err.to_string().contains(&format!("`{field}`")),
            "{json}: {err}"
        );
        assert_eq!(err.exit_code().code(), 2, "{json}");
        assert!(err.hint().is_some(), "{json}: {err}");
    }
}
