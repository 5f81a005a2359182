//! Semantic models: `dataset.refresh` (one model, or a fleet with `targets`), `dataset.cancel`,
//! `dataset.status`, and the refresh body every model refresh shares (standard or enhanced).
//!
//! Rules come from the service's documentation (`powerbi-api.md` §2.1), so that a refresh the
//! service would refuse, or would accept and then fail, is refused here with a hint instead.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

use super::around::AroundFields;
use super::fields::{Dur, Multiple, Name, Parallel, Profile};
use super::fleet::{self, FleetFields, RawTarget};
use super::json::invalid;
use super::operation::Operation;
use super::wait::{RawPoll, WaitFields};
use super::words::{AlertFormat, CommitMode, NotifyOption, RefreshType};
use super::{
    CancelTask, DatasetTarget, EnhancedRefresh, IfRunning, OnTimeout, RefreshBody, RefreshObject,
    RefreshTask, StatusTask, Task, WaitOptions, duration,
};
use crate::error::Error;

/// `dataset.refresh`: one semantic model (`workspace`, `dataset`), or many (`targets`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["targets"]}, {"required": ["workspace", "dataset"]}]))]
pub struct RawDatasetRefresh {
    /// The profile (service principal) to use; `default` reads PBIOPS_TENANT_ID etc.
    pub profile: Option<Profile>,
    /// Workspace name (exact, case-insensitive) or id.
    pub workspace: Option<Name>,
    /// Semantic model name or id.
    pub dataset: Option<Name>,
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
    /// Standard refresh only: the e-mail the service sends.
    pub notify_option: Option<NotifyOption>,
    /// Enhanced refresh options; any of them makes the refresh enhanced.
    pub refresh: Option<RawRefresh>,
    /// Many items in one run (instead of workspace and dataset), each with its own options.
    pub targets: Option<Vec<RawTarget>>,
    /// With targets: at most this many refreshes at once (default 8).
    pub max_parallel: Option<Parallel>,
    /// With targets: at most this many refreshes at once on one capacity.
    pub max_parallel_per_capacity: Option<Parallel>,
    /// With targets: where the per-target JSON file goes (default targets.json).
    pub output_file: Option<Name>,
    /// Check, before triggering, that the refresh can run (capacity, data sources, daily budget, …); false skips the checks.
    #[schemars(extend("default" = true))]
    pub preflight: Option<bool>,
    /// When the operation fails, write a ready-to-post alert payload to this file.
    pub alert_file: Option<Name>,
    /// The alert payload's format: teams (an Adaptive Card) or slack (Block Kit); default teams.
    pub alert_format: Option<AlertFormat>,
    /// With targets: write the run's timeline picture (self-contained HTML) to this file.
    pub timeline_file: Option<Name>,
}

/// The enhanced refresh body as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRefresh {
    /// What to refresh.
    #[serde(rename = "type")]
    pub kind: Option<RefreshType>,
    /// All or nothing, or in batches.
    pub commit_mode: Option<CommitMode>,
    /// Maximum parallel processing threads (the service's default is 10).
    #[schemars(range(min = 1))]
    pub max_parallelism: Option<u32>,
    /// Retries inside the service.
    pub retry_count: Option<u32>,
    /// Tables (or a table's partition) to refresh; the whole model when absent.
    pub objects: Option<Vec<RawObject>>,
    /// Apply the incremental refresh policy.
    pub apply_refresh_policy: Option<bool>,
    /// The date the incremental policy is evaluated at (e.g. 2026-11-24).
    pub effective_date: Option<String>,
    /// The service's per-attempt timeout: hh:mm:ss or ISO-8601, under 24 hours.
    pub timeout: Option<ServiceTimeout>,
}

/// One table or partition of an enhanced refresh.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawObject {
    /// Table name.
    pub table: Name,
    /// Partition name.
    pub partition: Option<String>,
}

/// `dataset.cancel`: cancel an enhanced refresh of a model.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDatasetCancel {
    /// The profile (service principal) to use.
    pub profile: Option<Profile>,
    /// Workspace name or id.
    pub workspace: Name,
    /// Semantic model name or id.
    pub dataset: Name,
    /// The refresh to cancel (default: the running one).
    pub request_id: Option<Name>,
}

/// `dataset.status`: the latest refresh, optionally as a freshness gate.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDatasetStatus {
    /// The profile (service principal) to use.
    pub profile: Option<Profile>,
    /// Workspace name or id.
    pub workspace: Name,
    /// Semantic model name or id.
    pub dataset: Name,
    /// Fail (exit 1) when the last successful refresh is older than this.
    pub max_age: Option<Dur>,
}

impl RawDatasetRefresh {
    /// Validates a single refresh or a fleet.
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
        let single = [
            ("workspace", self.workspace.is_some()),
            ("dataset", self.dataset.is_some()),
            ("refresh", self.refresh.is_some()),
            ("notifyOption", self.notify_option.is_some()),
        ];
        fleet::validate(FleetFields {
            operation: Operation::DatasetRefresh.as_str(),
            profile: self.profile,
            targets,
            wait,
            if_running: self.if_running,
            on_timeout: self.on_timeout,
            max_parallel: self.max_parallel,
            max_parallel_per_capacity: self.max_parallel_per_capacity,
            output_file: self.output_file,
            single: &single,
            around: AroundFields {
                preflight: self.preflight,
                alert_file: self.alert_file,
                alert_format: self.alert_format,
                timeline_file: self.timeline_file,
            },
        })
    }

    fn single(self, wait: WaitFields) -> Result<Task, Error> {
        for (field, given) in [
            ("maxParallel", self.max_parallel.is_some()),
            (
                "maxParallelPerCapacity",
                self.max_parallel_per_capacity.is_some(),
            ),
            ("outputFile", self.output_file.is_some()),
        ] {
            if given {
                return Err(Error::task(
                    field,
                    "applies with `targets` only",
                    "give `targets: [...]` to refresh many items in one run",
                ));
            }
        }
        let target = DatasetTarget {
            profile: Profile::name(self.profile),
            workspace: required("workspace", self.workspace)?,
            dataset: required("dataset", self.dataset)?,
        };
        let around = AroundFields {
            preflight: self.preflight,
            alert_file: self.alert_file,
            alert_format: self.alert_format,
            timeline_file: self.timeline_file,
        }
        .validate(false)?;
        Ok(Task::DatasetRefresh(RefreshTask {
            around,
            ..refresh_task(
                target,
                self.notify_option,
                self.refresh,
                wait.options()?,
                self.if_running.unwrap_or(IfRunning::Attach),
                self.on_timeout.unwrap_or(OnTimeout::Leave),
            )?
        }))
    }
}

impl RawDatasetCancel {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        Ok(Task::DatasetCancel(CancelTask {
            target: DatasetTarget {
                profile: Profile::name(self.profile),
                workspace: self.workspace.0,
                dataset: self.dataset.0,
            },
            request_id: self.request_id.map(|r| r.0),
        }))
    }
}

impl RawDatasetStatus {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        Ok(Task::DatasetStatus(StatusTask {
            target: DatasetTarget {
                profile: Profile::name(self.profile),
                workspace: self.workspace.0,
                dataset: self.dataset.0,
            },
            max_age: self.max_age.map(|d| d.0),
        }))
    }
}

/// A required name, with the message the task contract has always given.
pub(super) fn required(field: &str, value: Option<Name>) -> Result<String, Error> {
    value
        .map(|n| n.0)
        .ok_or_else(|| Error::task(field, "missing", format!("give the {field}'s name or id")))
}

/// One model refresh: the body (standard with `notifyOption`, or enhanced) and its policies.
pub(super) fn refresh_task(
    target: DatasetTarget,
    notify_option: Option<NotifyOption>,
    refresh: Option<RawRefresh>,
    wait: WaitOptions,
    if_running: IfRunning,
    on_timeout: OnTimeout,
) -> Result<RefreshTask, Error> {
    let body = match (refresh, notify_option) {
        (Some(_), Some(_)) => {
            return Err(Error::task(
                "notifyOption",
                "cannot be combined with `refresh`",
                "an enhanced refresh (`refresh`) sends no notification; drop notifyOption",
            ));
        }
        (Some(r), None) => RefreshBody::Enhanced(enhanced(r)?),
        (None, notify) => RefreshBody::Standard {
            notify_option: notify.map(|n| n.as_str().to_string()),
        },
    };
    if matches!(body, RefreshBody::Standard { .. }) && on_timeout == OnTimeout::Cancel {
        return Err(Error::task(
            "onTimeout",
            "`cancel` needs an enhanced refresh; the service cannot cancel a standard one",
            "add a `refresh` object (e.g. {\"type\": \"Full\"}) or use onTimeout: leave",
        ));
    }
    Ok(RefreshTask {
        target,
        body,
        if_running,
        on_timeout,
        wait,
        around: super::Around::default(),
    })
}

fn enhanced(r: RawRefresh) -> Result<EnhancedRefresh, Error> {
    let body = EnhancedRefresh {
        kind: r.kind.map(|k| k.as_str().to_string()),
        commit_mode: r.commit_mode.map(|c| c.as_str().to_string()),
        max_parallelism: r.max_parallelism,
        retry_count: r.retry_count,
        objects: r
            .objects
            .unwrap_or_default()
            .into_iter()
            .map(|o| RefreshObject {
                table: o.table.0,
                partition: o.partition.filter(|p| !p.trim().is_empty()),
            })
            .collect(),
        apply_refresh_policy: r.apply_refresh_policy,
        effective_date: r.effective_date.map(|d| effective_date(&d)).transpose()?,
        timeout: r.timeout.map(|t| t.0),
    };
    if body == EnhancedRefresh::default() {
        return Err(Error::task(
            "refresh",
            "is empty",
            "give at least one field (e.g. {\"type\": \"Full\"}), or omit `refresh` for a standard refresh",
        ));
    }
    if body.max_parallelism == Some(0) {
        return Err(Error::task(
            "refresh.maxParallelism",
            "must be at least 1",
            "the service's default is 10",
        ));
    }
    let partial = r.commit_mode == Some(CommitMode::PartialBatch);
    if partial && body.apply_refresh_policy == Some(true) {
        return Err(Error::task(
            "refresh.applyRefreshPolicy",
            "cannot be true with commitMode PartialBatch (the service fails such a refresh)",
            "set applyRefreshPolicy to false, or use commitMode Transactional",
        ));
    }
    // The service defaults applyRefreshPolicy to true, which it then refuses with PartialBatch.
    let apply_refresh_policy = if partial {
        Some(false)
    } else {
        body.apply_refresh_policy
    };
    Ok(EnhancedRefresh {
        apply_refresh_policy,
        ..body
    })
}

fn effective_date(text: &str) -> Result<String, Error> {
    let ok = text.parse::<jiff::civil::Date>().is_ok()
        || text.parse::<jiff::civil::DateTime>().is_ok()
        || text.parse::<jiff::Timestamp>().is_ok();
    if ok {
        Ok(text.to_string())
    } else {
        Err(Error::task(
            "refresh.effectiveDate",
            format!("`{text}` is not a date"),
            "e.g. \"2026-11-24\"",
        ))
    }
}

/// The service's per-attempt timeout, canonicalised to `hh:mm:ss` (up to 23:59:59).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ServiceTimeout(pub String);

const SERVICE_TIMEOUT_HELP: &str = "\"hh:mm:ss\" (e.g. \"02:00:00\") or an ISO-8601 duration under 24 hours; it applies to each attempt";

impl ServiceTimeout {
    /// Accepts `hh:mm:ss` or any duration from one second to 23:59:59.
    pub fn parse(value: &serde_json::Value) -> Result<ServiceTimeout, (String, &'static str)> {
        if let Some(text) = value.as_str() {
            let parts: Vec<&str> = text.split(':').collect();
            if parts.len() == 3 {
                let nums: Vec<Option<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
                return match nums.as_slice() {
                    [Some(h), Some(m), Some(s)]
                        if *h < 24
                            && *m < 60
                            && *s < 60
                            && parts[1].len() == 2
                            && parts[2].len() == 2 =>
                    {
                        Ok(ServiceTimeout(duration::to_hms(Duration::from_secs(
                            h * 3600 + m * 60 + s,
                        ))))
                    }
                    _ => Err((
                        format!("`{text}` is not a valid hh:mm:ss"),
                        SERVICE_TIMEOUT_HELP,
                    )),
                };
            }
        }
        let d = duration::parse("refresh.timeout", value)
            .map_err(|_| ("is not a duration".to_string(), SERVICE_TIMEOUT_HELP))?;
        if d >= Duration::from_secs(24 * 3600) || d < Duration::from_secs(1) {
            return Err((
                "must be between one second and 23:59:59".into(),
                SERVICE_TIMEOUT_HELP,
            ));
        }
        Ok(ServiceTimeout(duration::to_hms(d)))
    }
}

impl<'de> Deserialize<'de> for ServiceTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        ServiceTimeout::parse(&value).map_err(|(message, help)| invalid(message, help))
    }
}

impl JsonSchema for ServiceTimeout {
    fn schema_name() -> Cow<'static, str> {
        "ServiceTimeout".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "hh:mm:ss (e.g. 02:00:00) or an ISO-8601 duration or seconds, under 24 hours",
            "anyOf": [
                {"type": "number", "minimum": 1, "exclusiveMaximum": 86400},
                {"type": "string", "pattern": "^\\s*(([01][0-9]|2[0-3]|[0-9]):[0-5][0-9]:[0-5][0-9]|[Pp][0-9A-Za-z.,]*|[0-9]+(\\.[0-9]+)?)\\s*$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests;
