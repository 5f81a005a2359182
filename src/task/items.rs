//! `report.refresh` (a report's semantic model), `flow.trigger` (a Power Automate / Logic Apps
//! HTTP trigger) and `inventory` (what the profile can see, with lineage).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::around::AroundFields;
use super::dataset::{RawRefresh, refresh_task};
use super::fields::{Dur, Multiple, Name, Profile};
use super::json::invalid;
use super::wait::{RawPoll, WaitFields};
use super::words::{AlertFormat, NotifyOption};
use super::{
    DatasetTarget, FlowTriggerTask, IfRunning, InventoryTask, OnTimeout, RefreshTask,
    ReportRefreshTask, Task,
};
use crate::error::Error;

/// `report.refresh`: refresh the semantic model behind a report.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawReportRefresh {
    /// The profile (service principal) to use.
    pub profile: Option<Profile>,
    /// The report's workspace, by name or id.
    pub workspace: Name,
    /// Report name or id.
    pub report: Name,
    /// Standard refresh only: the e-mail the service sends.
    pub notify_option: Option<NotifyOption>,
    /// Enhanced refresh options; any of them makes the refresh enhanced.
    pub refresh: Option<RawRefresh>,
    /// Follow the refresh to its end; false exits 0 once triggered.
    #[schemars(extend("default" = true))]
    pub wait: Option<bool>,
    /// How long to wait, then exit 5.
    #[schemars(extend("default" = "PT5H"))]
    pub timeout: Option<Dur>,
    /// A refresh is already running: attach (wait for it), skip (exit 0) or fail (exit 1).
    pub if_running: Option<IfRunning>,
    /// When waiting times out: leave the refresh running, or cancel it (enhanced only).
    pub on_timeout: Option<OnTimeout>,
    /// Bounds of the polling interval.
    pub poll: Option<RawPoll>,
    /// How long a new refresh may be missing from the service before it counts as dropped (default PT2M).
    pub grace: Option<Dur>,
    /// End the wait early (as at the timeout, with onTimeout) once the refresh has run this many times as long as 9 in 10 of the item's recent successful ones.
    pub max_overrun: Option<Multiple>,
    /// Check, before triggering, that the refresh can run (capacity, data sources, daily budget, …); false skips the checks.
    #[schemars(extend("default" = true))]
    pub preflight: Option<bool>,
    /// When the operation fails, write a ready-to-post alert payload to this file.
    pub alert_file: Option<Name>,
    /// The alert payload's format: teams (an Adaptive Card) or slack (Block Kit); default teams.
    pub alert_format: Option<AlertFormat>,
}

impl RawReportRefresh {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        let report = self.report.0;
        let target = DatasetTarget {
            profile: Profile::name(self.profile),
            workspace: self.workspace.0,
            // Filled in from the report.
            dataset: String::new(),
        };
        let wait = WaitFields {
            wait: self.wait,
            timeout: self.timeout,
            poll: self.poll,
            grace: self.grace,
            max_overrun: self.max_overrun,
        };
        let around = AroundFields {
            preflight: self.preflight,
            alert_file: self.alert_file,
            alert_format: self.alert_format,
            timeline_file: None,
        }
        .validate(false)?;
        Ok(Task::ReportRefresh(ReportRefreshTask {
            report,
            refresh: RefreshTask {
                around,
                ..refresh_task(
                    target,
                    self.notify_option,
                    self.refresh,
                    wait.options()?,
                    self.if_running.unwrap_or(IfRunning::Attach),
                    self.on_timeout.unwrap_or(OnTimeout::Leave),
                )?
            },
        }))
    }
}

/// `flow.trigger`: call a flow's HTTP trigger; its URL is `PBIOPS_FLOW_{NAME}_URL`.
///
/// No `ifRunning`: the flow decides what it triggers; pbiops only follows it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFlowTrigger {
    /// The profile (for monitor).
    pub profile: Option<Profile>,
    /// The flow name; its URL is PBIOPS_FLOW_{NAME}_URL in the environment.
    pub flow: FlowName,
    /// The JSON body to post.
    pub body: Option<serde_json::Value>,
    /// The Gen1 dataflow the flow refreshes, to report its real outcome.
    pub monitor: Option<RawMonitor>,
    /// With monitor: follow the refresh to its end.
    #[schemars(extend("default" = true))]
    pub wait: Option<bool>,
    /// With monitor: how long to wait, then exit 5.
    #[schemars(extend("default" = "PT5H"))]
    pub timeout: Option<Dur>,
    /// With monitor: when waiting times out, leave the refresh running or cancel it.
    pub on_timeout: Option<OnTimeout>,
    /// With monitor: bounds of the polling interval.
    pub poll: Option<RawPoll>,
    /// With monitor: how long the refresh may be missing from the service (default PT2M).
    pub grace: Option<Dur>,
    /// End the wait early (as at the timeout, with onTimeout) once the refresh has run this many times as long as 9 in 10 of the item's recent successful ones.
    pub max_overrun: Option<Multiple>,
}

/// `flow.trigger`'s `monitor`: the Gen1 dataflow the flow refreshes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMonitor {
    /// Workspace name or id.
    pub workspace: Name,
    /// Gen1 dataflow name or id.
    pub dataflow: Name,
}

/// A flow's name: letters, digits and underscores (it names an environment variable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct FlowName(#[schemars(regex(pattern = "^[A-Za-z0-9_]+$"))] pub String);

impl<'de> Deserialize<'de> for FlowName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let ok = !text.is_empty()
            && text.len() <= 128
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(FlowName(text.to_ascii_lowercase()))
        } else {
            Err(invalid(
                "must be letters, digits and underscores",
                "flow `daily_sales` reads its URL from PBIOPS_FLOW_DAILY_SALES_URL",
            ))
        }
    }
}

impl RawFlowTrigger {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        let flow = self.flow;
        let wait = WaitFields {
            wait: self.wait,
            timeout: self.timeout,
            poll: self.poll,
            grace: self.grace,
            max_overrun: self.max_overrun,
        };
        if self.monitor.is_none() {
            let given = wait
                .given()
                .or(self.on_timeout.is_some().then_some("onTimeout"));
            if let Some(field) = given {
                return Err(Error::task(
                    field,
                    "applies with `monitor` only",
                    "without monitor, the run ends when the flow accepts the call",
                ));
            }
        }
        Ok(Task::FlowTrigger(FlowTriggerTask {
            profile: Profile::name(self.profile),
            flow: flow.0,
            body: self.body.unwrap_or_else(|| serde_json::json!({})),
            monitor: self.monitor.map(|m| (m.workspace.0, m.dataflow.0)),
            wait: wait.options()?,
            on_timeout: self.on_timeout.unwrap_or(OnTimeout::Leave),
        }))
    }
}

/// `inventory`: workspaces, models, dataflows, reports and their lineage, into a JSON file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawInventory {
    /// The profile (service principal) to use.
    pub profile: Option<Profile>,
    /// Only this workspace (name or id); every visible one when absent.
    pub workspace: Option<Name>,
    /// Where the JSON file goes (default inventory.json).
    pub output_file: Option<Name>,
}

impl RawInventory {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        Ok(Task::Inventory(InventoryTask {
            profile: Profile::name(self.profile),
            workspace: self.workspace.map(|w| w.0),
            output_file: PathBuf::from(
                self.output_file
                    .map_or_else(|| "inventory.json".into(), |n| n.0),
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_refused, parse_task};
    use super::*;

    #[test]
    fn flows_reports_and_inventories() {
        let Task::FlowTrigger(f) = parse_task(
            r#"{"operation":"flow.trigger","flow":"Daily_Sales","body":{"note":"a\nb"},"monitor":{"workspace":"w","dataflow":"d"},"timeout":"PT1H"}"#,
        )
        .expect("valid") else {
            panic!("flow")
        };
        assert_eq!(f.flow, "daily_sales");
        assert_eq!(f.monitor, Some(("w".into(), "d".into())));
        let Task::Inventory(i) = parse_task(r#"{"operation":"inventory"}"#).expect("valid") else {
            panic!("inventory")
        };
        assert_eq!(i.output_file, PathBuf::from("inventory.json"));
        assert_refused(&[
            (
                r#"{"operation":"flow.trigger","flow":"daily-sales"}"#,
                "flow",
            ),
            (r#"{"operation":"flow.trigger"}"#, "flow"),
            (
                r#"{"operation":"flow.trigger","flow":"daily","timeout":"PT1H"}"#,
                "timeout",
            ),
            (
                r#"{"operation":"flow.trigger","flow":"daily","onTimeout":"cancel"}"#,
                "onTimeout",
            ),
            (
                r#"{"operation":"flow.trigger","flow":"daily","ifRunning":"skip"}"#,
                "ifRunning",
            ),
            (
                r#"{"operation":"flow.trigger","flow":"daily","monitor":{"workspace":"w"}}"#,
                "monitor.dataflow",
            ),
            (
                r#"{"operation":"report.refresh","workspace":"w"}"#,
                "report",
            ),
            (
                r#"{"operation":"report.refresh","report":"r"}"#,
                "workspace",
            ),
            (r#"{"operation":"inventory","dataset":"d"}"#, "dataset"),
        ]);
    }
}
