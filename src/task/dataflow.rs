//! `dataflow.refresh`: one Gen1 or Gen2 dataflow (optionally `then: downstream`, the cascade of
//! what reads it), or a fleet of items with `targets`; and the options a dataflow refresh takes.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::around::AroundFields;
use super::dataset::required;
use super::fields::{Dur, Generation, Multiple, Name, Parallel, Profile};
use super::fleet::{self, FleetFields, RawTarget};
use super::operation::Operation;
use super::wait::{RawPoll, WaitFields};
use super::words::{AlertFormat, ExecuteOption, NotifyOption, ProcessType, Then};
use super::{
    DataflowOptions, DataflowRefresh, DataflowRefreshTask, DataflowTarget, IfRunning, OnTimeout,
    Task,
};
use crate::error::Error;

/// Default number of models a cascade (`then: downstream`) refreshes at once.
pub const DEFAULT_CASCADE_PARALLEL: usize = 4;

/// `dataflow.refresh`: one dataflow (`workspace`, `dataflow`), or many items (`targets`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["targets"]}, {"required": ["workspace", "dataflow"]}]))]
pub struct RawDataflowRefresh {
    /// The profile (service principal) to use; `default` reads PBIOPS_TENANT_ID etc.
    pub profile: Option<Profile>,
    /// Workspace name (exact, case-insensitive) or id.
    pub workspace: Option<Name>,
    /// Dataflow name or id.
    pub dataflow: Option<Name>,
    /// 1 (Power BI dataflow) or 2 (Fabric Dataflow Gen2); detected when absent.
    pub generation: Option<Generation>,
    /// Gen1: the e-mail the service sends (NoNotification or MailOnFailure; default NoNotification).
    pub notify_option: Option<NotifyOption>,
    /// Gen1: default or processFull.
    pub process_type: Option<ProcessType>,
    /// Gen2: ApplyChangesIfNeeded or SkipApplyChanges.
    pub execute_option: Option<ExecuteOption>,
    /// `downstream`: once the dataflow completes, refresh what reads it, in lineage order.
    pub then: Option<Then>,
    /// With then: downstream, at most this many refreshes at once (default 4); with targets, default 8.
    pub max_parallel: Option<Parallel>,
    /// With targets: at most this many refreshes at once on one capacity.
    pub max_parallel_per_capacity: Option<Parallel>,
    /// Where the per-item JSON file goes (default cascade.json, or targets.json with targets).
    pub output_file: Option<Name>,
    /// Many items in one run (instead of workspace and dataflow), each with its own options.
    pub targets: Option<Vec<RawTarget>>,
    /// Follow the refresh to its end; false exits 0 once triggered.
    #[schemars(extend("default" = true))]
    pub wait: Option<bool>,
    /// How long to wait, then exit 5.
    #[schemars(extend("default" = "PT5H"))]
    pub timeout: Option<Dur>,
    /// A refresh is already running: attach (wait for it), skip (exit 0) or fail (exit 1).
    pub if_running: Option<IfRunning>,
    /// When waiting times out: leave the refresh running, or cancel it.
    pub on_timeout: Option<OnTimeout>,
    /// Bounds of the polling interval.
    pub poll: Option<RawPoll>,
    /// How long a new refresh may be missing from the service before it counts as dropped (default PT2M).
    pub grace: Option<Dur>,
    /// End the wait early (as at the timeout, with onTimeout) once the refresh has run this many times as long as 9 in 10 of the item's recent successful ones.
    pub max_overrun: Option<Multiple>,
    /// Check, before triggering, that the refresh can run (capacity, service principal support, …); false skips the checks.
    #[schemars(extend("default" = true))]
    pub preflight: Option<bool>,
    /// When the operation fails, write a ready-to-post alert payload to this file.
    pub alert_file: Option<Name>,
    /// The alert payload's format: teams (an Adaptive Card) or slack (Block Kit); default teams.
    pub alert_format: Option<AlertFormat>,
    /// With targets or then: downstream: write the run's timeline picture (self-contained HTML) to this file.
    pub timeline_file: Option<Name>,
}

impl RawDataflowRefresh {
    fn around(&self) -> AroundFields {
        AroundFields {
            preflight: self.preflight,
            alert_file: self.alert_file.clone(),
            alert_format: self.alert_format,
            timeline_file: self.timeline_file.clone(),
        }
    }

    /// Validates a single dataflow refresh (with its cascade) or a fleet.
    pub fn validate(mut self) -> Result<Task, Error> {
        let wait = WaitFields {
            wait: self.wait,
            timeout: self.timeout,
            poll: self.poll.take(),
            grace: self.grace,
            max_overrun: self.max_overrun,
        };
        match self.targets.take() {
            Some(targets) => self.fleet(targets, wait),
            None => self.single(wait),
        }
    }

    fn fleet(self, targets: Vec<RawTarget>, wait: WaitFields) -> Result<Task, Error> {
        if self.then.is_some() {
            return Err(Error::task(
                "then",
                "cannot be combined with `targets`",
                "a fleet orders its targets with `dependsOn`; then: downstream follows one dataflow's lineage",
            ));
        }
        let single = [
            ("workspace", self.workspace.is_some()),
            ("dataflow", self.dataflow.is_some()),
            ("generation", self.generation.is_some()),
            ("notifyOption", self.notify_option.is_some()),
            ("processType", self.process_type.is_some()),
            ("executeOption", self.execute_option.is_some()),
        ];
        let around = self.around();
        fleet::validate(FleetFields {
            operation: Operation::DataflowRefresh.as_str(),
            profile: self.profile,
            targets,
            wait,
            if_running: self.if_running,
            on_timeout: self.on_timeout,
            max_parallel: self.max_parallel,
            max_parallel_per_capacity: self.max_parallel_per_capacity,
            around,
            output_file: self.output_file,
            single: &single,
        })
    }

    fn single(self, wait: WaitFields) -> Result<Task, Error> {
        if self.max_parallel_per_capacity.is_some() {
            return Err(Error::task(
                "maxParallelPerCapacity",
                "applies with `targets` only",
                "give `targets: [...]` to refresh many items in one run",
            ));
        }
        let around = self.around().validate(self.then.is_some())?;
        let generation = self.generation.map(|g| g.0);
        let options = options(
            generation,
            self.notify_option,
            self.process_type,
            self.execute_option,
        )?;
        let downstream = match (self.then, self.max_parallel) {
            (None, Some(_)) => {
                return Err(Error::task(
                    "maxParallel",
                    "applies with then: downstream (or targets) only",
                    "add \"then\": \"downstream\", or remove it",
                ));
            }
            (None, None) => None,
            (Some(Then::Downstream), n) => Some(n.map_or(DEFAULT_CASCADE_PARALLEL, |n| n.0)),
        };
        let mut wait = wait.options()?;
        if downstream.is_some() {
            // The cascade needs the dataflow's outcome.
            wait.wait = true;
        }
        let target = DataflowTarget {
            profile: Profile::name(self.profile),
            workspace: required("workspace", self.workspace)?,
            dataflow: required("dataflow", self.dataflow)?,
            generation,
        };
        Ok(Task::DataflowRefresh(DataflowRefreshTask {
            refresh: DataflowRefresh {
                target,
                options,
                wait,
                if_running: self.if_running.unwrap_or(IfRunning::Attach),
                on_timeout: self.on_timeout.unwrap_or(OnTimeout::Leave),
            },
            downstream,
            output_file: PathBuf::from(
                self.output_file
                    .map_or_else(|| "cascade.json".into(), |n| n.0),
            ),
            around,
        }))
    }
}

/// A dataflow's trigger options, checked against its generation when it is given.
pub(super) fn options(
    generation: Option<u8>,
    notify_option: Option<NotifyOption>,
    process_type: Option<ProcessType>,
    execute_option: Option<ExecuteOption>,
) -> Result<DataflowOptions, Error> {
    if generation == Some(2) {
        if let Some(field) = [
            ("notifyOption", notify_option.is_some()),
            ("processType", process_type.is_some()),
        ]
        .into_iter()
        .find_map(|(f, given)| given.then_some(f))
        {
            return Err(Error::task(
                field,
                "applies to Gen1 dataflows only",
                "remove it, or use executeOption for a Dataflow Gen2",
            ));
        }
    }
    if generation == Some(1) && execute_option.is_some() {
        return Err(Error::task(
            "executeOption",
            "applies to Dataflow Gen2 only",
            "remove it, or use processType for a Gen1 dataflow",
        ));
    }
    if notify_option == Some(NotifyOption::MailOnCompletion) {
        return Err(Error::task(
            "notifyOption",
            "`MailOnCompletion` is not allowed for a dataflow",
            "one of: NoNotification, MailOnFailure",
        ));
    }
    Ok(DataflowOptions {
        notify_option: notify_option
            .unwrap_or(NotifyOption::NoNotification)
            .as_str()
            .to_string(),
        process_type: process_type.map(|p| p.as_str().to_string()),
        execute_option: execute_option.map(|e| e.as_str().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{assert_refused, parse_task};
    use super::*;

    #[test]
    fn dataflow_tasks_get_their_defaults() {
        let Task::DataflowRefresh(t) = parse_task(
            r#"{"operation":"dataflow.refresh","workspace":"w","dataflow":"d","then":"downstream","wait":false}"#,
        )
        .expect("valid") else {
            panic!("dataflow")
        };
        assert_eq!(
            (
                t.refresh.options.notify_option.as_str(),
                t.downstream,
                t.refresh.target.generation,
                t.refresh.wait.wait
            ),
            ("NoNotification", Some(4), None, true)
        );
        assert_eq!(t.output_file, PathBuf::from("cascade.json"));
    }

    #[test]
    fn dataflow_rules_name_their_field() {
        let d = |rest: &str| {
            format!(r#"{{"operation":"dataflow.refresh","workspace":"w","dataflow":"d",{rest}}}"#)
        };
        let cases = [
            (d(r#""generation":3"#), "generation"),
            (d(r#""generation":"2""#), "generation"),
            (
                d(r#""generation":2,"processType":"processFull""#),
                "processType",
            ),
            (
                d(r#""generation":2,"notifyOption":"MailOnFailure""#),
                "notifyOption",
            ),
            (
                d(r#""generation":1,"executeOption":"SkipApplyChanges""#),
                "executeOption",
            ),
            (d(r#""notifyOption":"MailOnCompletion""#), "notifyOption"),
            (d(r#""processType":"fast""#), "processType"),
            (d(r#""then":"upstream""#), "then"),
            (d(r#""maxParallel":2"#), "maxParallel"),
            (d(r#""then":"downstream","maxParallel":0"#), "maxParallel"),
            (
                d(r#""then":"downstream","maxParallel":1e30"#),
                "maxParallel",
            ),
            (d(r#""maxParallelPerCapacity":2"#), "maxParallelPerCapacity"),
            (d(r#""dataset":"x""#), "dataset"),
            (
                r#"{"operation":"dataflow.refresh","workspace":"w"}"#.to_string(),
                "dataflow",
            ),
        ];
        let cases: Vec<(&str, &str)> = cases.iter().map(|(j, f)| (j.as_str(), *f)).collect();
        assert_refused(&cases);
    }
}
