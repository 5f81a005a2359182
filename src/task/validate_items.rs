//! Stage two for dataflows, flow triggers, reports and the inventory.

use std::path::PathBuf;

use super::raw::RawTask;
use super::validate::{
    non_empty, one_of, only, policies, profile_name, refresh_task, wait_options,
};
use super::{
    DataflowOptions, DataflowRefresh, DataflowRefreshTask, DataflowTarget, DatasetTarget,
    FlowTriggerTask, InventoryTask, ReportRefreshTask, Task,
};
use crate::error::Error;

const WAIT_FIELDS: &[&str] = &["wait", "timeout", "ifRunning", "onTimeout", "poll", "grace"];

pub(super) fn validate(operation: &str, raw: RawTask) -> Result<Task, Error> {
    match operation {
        "dataflow.refresh" => dataflow(raw),
        "flow.trigger" => flow(raw),
        "report.refresh" => {
            let mut allowed = vec!["profile", "workspace", "report", "notifyOption", "refresh"];
            allowed.extend(WAIT_FIELDS);
            only(operation, &raw, &allowed)?;
            let report = required("report", raw.report.clone())?;
            let target = DatasetTarget {
                profile: profile_name("profile", raw.profile.as_deref())?,
                workspace: required("workspace", raw.workspace.clone())?,
                // Filled in from the report.
                dataset: String::new(),
            };
            Ok(Task::ReportRefresh(ReportRefreshTask {
                report,
                refresh: refresh_task(raw, target)?,
            }))
        }
        _ => {
            only(operation, &raw, &["profile", "workspace", "outputFile"])?;
            Ok(Task::Inventory(InventoryTask {
                profile: profile_name("profile", raw.profile.as_deref())?,
                workspace: non_empty("workspace", raw.workspace)?,
                output_file: PathBuf::from(
                    raw.output_file.unwrap_or_else(|| "inventory.json".into()),
                ),
            }))
        }
    }
}

fn required(field: &str, value: Option<String>) -> Result<String, Error> {
    non_empty(field, value)?
        .ok_or_else(|| Error::task(field, "missing", format!("give the {field}'s name or id")))
}

fn dataflow(raw: RawTask) -> Result<Task, Error> {
    let mut allowed = vec![
        "profile",
        "workspace",
        "dataflow",
        "generation",
        "notifyOption",
        "processType",
        "executeOption",
        "then",
        "maxParallel",
        "outputFile",
    ];
    allowed.extend(WAIT_FIELDS);
    only("dataflow.refresh", &raw, &allowed)?;
    let (if_running, on_timeout) = policies(&raw)?;
    let generation = match raw.generation {
        None | Some(1) | Some(2) => raw.generation,
        Some(n) => {
            return Err(Error::task(
                "generation",
                format!("`{n}` is not a dataflow generation"),
                "1 (Power BI dataflow) or 2 (Fabric Dataflow Gen2); omit it to detect",
            ));
        }
    };
    if generation == Some(2) && (raw.notify_option.is_some() || raw.process_type.is_some()) {
        let field = if raw.notify_option.is_some() {
            "notifyOption"
        } else {
            "processType"
        };
        return Err(Error::task(
            field,
            "applies to Gen1 dataflows only",
            "remove it, or use executeOption for a Dataflow Gen2",
        ));
    }
    if generation == Some(1) && raw.execute_option.is_some() {
        return Err(Error::task(
            "executeOption",
            "applies to Dataflow Gen2 only",
            "remove it, or use processType for a Gen1 dataflow",
        ));
    }
    let downstream = match raw.then.as_deref() {
        None => {
            if raw.max_parallel.is_some() {
                return Err(Error::task(
                    "maxParallel",
                    "applies with then: downstream only",
                    "add \"then\": \"downstream\", or remove it",
                ));
            }
            None
        }
        Some(t) if t.eq_ignore_ascii_case("downstream") => match raw.max_parallel.unwrap_or(4) {
            0 => return Err(Error::task("maxParallel", "must be at least 1", "e.g. 4")),
            n => Some(n),
        },
        Some(other) => {
            return Err(Error::task(
                "then",
                format!("`{other}` is not a follow-up"),
                "the only one is \"downstream\": refresh the models that read the dataflow",
            ));
        }
    };
    let mut wait = wait_options(&raw)?;
    if downstream.is_some() {
        // The cascade needs the dataflow's outcome.
        wait.wait = true;
    }
    let target = DataflowTarget {
        profile: profile_name("profile", raw.profile.as_deref())?,
        workspace: required("workspace", raw.workspace.clone())?,
        dataflow: required("dataflow", raw.dataflow.clone())?,
        generation,
    };
    let options = DataflowOptions {
        notify_option: raw
            .notify_option
            .as_deref()
            .map(|n| one_of("notifyOption", n, &["NoNotification", "MailOnFailure"]))
            .transpose()?
            .unwrap_or_else(|| "NoNotification".into()),
        process_type: raw
            .process_type
            .as_deref()
            .map(|p| one_of("processType", p, &["default", "processFull"]))
            .transpose()?,
        execute_option: raw
            .execute_option
            .as_deref()
            .map(|e| {
                one_of(
                    "executeOption",
                    e,
                    &["ApplyChangesIfNeeded", "SkipApplyChanges"],
                )
            })
            .transpose()?,
    };
    Ok(Task::DataflowRefresh(DataflowRefreshTask {
        refresh: DataflowRefresh {
            target,
            options,
            wait,
            if_running,
            on_timeout,
        },
        downstream,
        output_file: PathBuf::from(
            raw.output_file
                .clone()
                .unwrap_or_else(|| "cascade.json".into()),
        ),
    }))
}

fn flow(raw: RawTask) -> Result<Task, Error> {
    // No ifRunning: the flow decides what it triggers; pbiops only follows it.
    let allowed = [
        "profile",
        "flow",
        "body",
        "monitor",
        "wait",
        "timeout",
        "onTimeout",
        "poll",
        "grace",
    ];
    only("flow.trigger", &raw, &allowed)?;
    let flow = required("flow", raw.flow.clone())?;
    if !flow.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::task(
            "flow",
            "must be letters, digits and underscores",
            "flow `daily_sales` reads its URL from PBIOPS_FLOW_DAILY_SALES_URL",
        ));
    }
    let (_, on_timeout) = policies(&raw)?;
    if raw.monitor.is_none() {
        if let Some(field) = ["wait", "timeout", "onTimeout", "poll", "grace"]
            .into_iter()
            .find(|f| raw.present_fields().contains(f))
        {
            return Err(Error::task(
                field,
                "applies with `monitor` only",
                "without monitor, the run ends when the flow accepts the call",
            ));
        }
    }
    let body = raw.body.clone().unwrap_or_else(|| serde_json::json!({}));
    Ok(Task::FlowTrigger(FlowTriggerTask {
        profile: profile_name("profile", raw.profile.as_deref())?,
        flow: flow.to_ascii_lowercase(),
        body,
        monitor: raw
            .monitor
            .as_ref()
            .map(|m| (m.workspace.clone(), m.dataflow.clone())),
        wait: wait_options(&raw)?,
        on_timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::{raw, validate};
    use super::*;

    fn task(json: &str) -> Result<Task, Error> {
        validate(raw::parse(json)?)
    }

    #[test]
    fn dataflow_tasks_get_their_defaults_and_rules() {
        let Task::DataflowRefresh(t) = task(r#"{"operation":"dataflow.refresh","workspace":"w","dataflow":"d","then":"downstream"}"#).expect("valid") else {
            panic!("dataflow")
        };
        assert_eq!(
            (
                t.refresh.options.notify_option.as_str(),
                t.downstream,
                t.refresh.target.generation
            ),
            ("NoNotification", Some(4), None)
        );
        for (json, field) in [
            (
                r#"{"operation":"dataflow.refresh","workspace":"w","dataflow":"d","generation":3}"#,
                "generation",
            ),
            (
                r#"{"operation":"dataflow.refresh","workspace":"w","dataflow":"d","generation":2,"processType":"processFull"}"#,
                "processType",
            ),
            (
                r#"{"operation":"dataflow.refresh","workspace":"w","dataflow":"d","then":"upstream"}"#,
                "then",
            ),
            (
                r#"{"operation":"dataflow.refresh","workspace":"w","dataflow":"d","maxParallel":2}"#,
                "maxParallel",
            ),
            (
                r#"{"operation":"dataflow.refresh","workspace":"w"}"#,
                "dataflow",
            ),
            (
                r#"{"operation":"flow.trigger","flow":"daily-sales"}"#,
                "flow",
            ),
            (
                r#"{"operation":"flow.trigger","flow":"daily","timeout":"PT1H"}"#,
                "timeout",
            ),
            (
                r#"{"operation":"report.refresh","workspace":"w"}"#,
                "report",
            ),
        ] {
            let err = task(json).expect_err(json);
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{json}: {err}"
            );
        }
    }
}
