//! `preflight` (will these refreshes be allowed to run?) and `timeline` (the picture of a night
//! of operations, from the operation log).

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::admin::RawFilter;
use super::dataflow::options;
use super::dataset::{refresh_task, required};
use super::fields::{Dur, Generation, Name, Profile};
use super::json::within;
use super::wait::WaitFields;
use super::{
    DataflowRefresh, DataflowTarget, DatasetTarget, FleetTarget, IfRunning, ItemRefresh, OnTimeout,
    PreflightTask, Task, TimelineTask,
};
use crate::error::Error;

/// Default window of `timeline`: the last day.
pub const DEFAULT_TIMELINE_SINCE: Duration = Duration::from_secs(24 * 3600);
/// Default row limit of `timeline`.
pub const DEFAULT_TIMELINE_LIMIT: u32 = 2000;

/// `preflight`: check, without triggering anything, whether refreshes of one item (`workspace`
/// with `dataset` or `dataflow`) or many (`targets`) can run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["targets"]}, {"required": ["workspace", "dataset"]}, {"required": ["workspace", "dataflow"]}]))]
pub struct RawPreflight {
    /// The profile (service principal) to use.
    pub profile: Option<Profile>,
    /// Workspace name or id.
    pub workspace: Option<Name>,
    /// A semantic model, by name or id.
    pub dataset: Option<Name>,
    /// A dataflow (Gen1 or Gen2), by name or id.
    pub dataflow: Option<Name>,
    /// Dataflow: 1 or 2; detected when absent.
    pub generation: Option<Generation>,
    /// Many items (instead of workspace with dataset or dataflow).
    pub targets: Option<Vec<RawPreflightTarget>>,
    /// Where the JSON file of the checks goes (default preflight.json).
    pub output_file: Option<Name>,
}

/// One item of a `preflight` with `targets`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["dataset"]}, {"required": ["dataflow"]}]))]
pub struct RawPreflightTarget {
    /// The key the rows name (default: workspace/dataset or workspace/dataflow, as written).
    pub id: Option<Name>,
    /// Workspace name or id.
    pub workspace: Name,
    /// A semantic model, by name or id.
    pub dataset: Option<Name>,
    /// A dataflow, by name or id.
    pub dataflow: Option<Name>,
    /// Dataflow: 1 or 2; detected when absent.
    pub generation: Option<Generation>,
}

impl RawPreflight {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        let profile = Profile::name(self.profile);
        let raw = match self.targets {
            Some(targets) => {
                for (field, given) in [
                    ("workspace", self.workspace.is_some()),
                    ("dataset", self.dataset.is_some()),
                    ("dataflow", self.dataflow.is_some()),
                    ("generation", self.generation.is_some()),
                ] {
                    if given {
                        return Err(Error::task(
                            field,
                            "cannot be combined with `targets`",
                            "give it per target, inside `targets`",
                        ));
                    }
                }
                if targets.is_empty() {
                    return Err(Error::task(
                        "targets",
                        "is empty",
                        "list at least one {\"workspace\", \"dataset\"} or {\"workspace\", \"dataflow\"}",
                    ));
                }
                targets
            }
            None => vec![RawPreflightTarget {
                id: None,
                workspace: Name(required("workspace", self.workspace)?),
                dataset: self.dataset,
                dataflow: self.dataflow,
                generation: self.generation,
            }],
        };
        let single = raw.len() == 1;
        let targets = raw
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                target(t, &profile).map_err(|e| {
                    if single {
                        e
                    } else {
                        within(&format!("targets[{i}]"), e)
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Task::Preflight(PreflightTask {
            profile,
            targets,
            output_file: PathBuf::from(
                self.output_file
                    .map_or_else(|| "preflight.json".into(), |n| n.0),
            ),
        }))
    }
}

fn target(t: RawPreflightTarget, profile: &str) -> Result<FleetTarget, Error> {
    let wait = WaitFields::default().options()?;
    let (refresh, item) = match (t.dataset, t.dataflow) {
        (Some(dataset), None) => {
            if t.generation.is_some() {
                return Err(Error::task(
                    "generation",
                    "applies to a dataflow only",
                    "remove it, or give `dataflow` instead of `dataset`",
                ));
            }
            let target = DatasetTarget {
                profile: profile.to_string(),
                workspace: t.workspace.0.clone(),
                dataset: dataset.0.clone(),
            };
            let task = refresh_task(
                target,
                None,
                None,
                wait,
                IfRunning::Attach,
                OnTimeout::Leave,
            )?;
            (ItemRefresh::Model(task), dataset.0)
        }
        (None, Some(dataflow)) => {
            let generation = t.generation.map(|g| g.0);
            let refresh = DataflowRefresh {
                target: DataflowTarget {
                    profile: profile.to_string(),
                    workspace: t.workspace.0.clone(),
                    dataflow: dataflow.0.clone(),
                    generation,
                },
                options: options(generation, None, None, None)?,
                wait,
                if_running: IfRunning::Attach,
                on_timeout: OnTimeout::Leave,
            };
            (ItemRefresh::Dataflow(refresh), dataflow.0)
        }
        _ => {
            return Err(Error::task(
                "dataset",
                "give exactly one of `dataset` and `dataflow`",
                "e.g. {\"workspace\": \"Sales\", \"dataset\": \"Sales Model\"}",
            ));
        }
    };
    Ok(FleetTarget {
        key: t
            .id
            .map_or_else(|| format!("{}/{item}", t.workspace.0), |k| k.0),
        refresh,
        depends_on: Vec::new(),
    })
}

/// `timeline`: draw the operations of a window of the operation log as one self-contained HTML
/// file (a lane per capacity or workspace, a bar per operation).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTimeline {
    /// Which operations (as `history`); `since` defaults to PT24H.
    pub filter: Option<RawFilter>,
    /// Only operations started at least this long ago (the window's end; default now).
    pub until: Option<Dur>,
    /// At most this many operations, newest first (default 2000).
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    /// The page's title (default "pbiops timeline").
    pub title: Option<Name>,
    /// Group the workspaces' lanes by capacity, reading the workspaces' capacityId as filter.profile (or default).
    pub by_capacity: Option<bool>,
    /// Where the HTML file goes (default timeline.html).
    pub output_file: Option<Name>,
}

impl RawTimeline {
    /// Validates the task.
    pub fn validate(self) -> Result<Task, Error> {
        let f = self.filter.unwrap_or_default();
        let since = f.since.map_or(DEFAULT_TIMELINE_SINCE, |d| d.0);
        let until = self.until.map(|d| d.0);
        if until.is_some_and(|u| u >= since) {
            return Err(Error::task(
                "until",
                "must be shorter than `filter.since` (both count back from now)",
                "e.g. filter.since PT24H with until PT12H draws the day before the last 12 hours",
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_TIMELINE_LIMIT);
        if limit == 0 {
            return Err(Error::task("limit", "must be at least 1", "e.g. 500"));
        }
        Ok(Task::Timeline(TimelineTask {
            operation: f.operation.map(|o| o.as_str().to_string()),
            status: f.status.map(|s| s.as_str().to_string()),
            profile: f.profile.map(|p| p.0),
            target: f.target.filter(|t| !t.trim().is_empty()),
            since,
            until,
            limit,
            title: self.title.map_or_else(|| "pbiops timeline".into(), |t| t.0),
            by_capacity: self.by_capacity.unwrap_or(false),
            output_file: PathBuf::from(
                self.output_file
                    .map_or_else(|| "timeline.html".into(), |n| n.0),
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_refused, parse_task};
    use super::*;

    #[test]
    fn preflight_takes_one_item_or_targets() {
        let Task::Preflight(t) =
            parse_task(r#"{"operation":"preflight","workspace":"Sales","dataset":"Sales Model"}"#)
                .expect("valid")
        else {
            panic!("preflight")
        };
        assert_eq!(t.targets.len(), 1);
        assert_eq!(t.targets[0].key, "Sales/Sales Model");
        let Task::Preflight(t) = parse_task(
            r#"{"operation":"preflight","targets":[{"workspace":"A","dataflow":"F","generation":2},{"id":"m","workspace":"B","dataset":"M"}]}"#,
        )
        .expect("valid") else {
            panic!("preflight")
        };
        assert_eq!(t.targets[1].key, "m");
        assert!(matches!(t.targets[0].refresh, ItemRefresh::Dataflow(_)));
        assert_refused(&[
            (r#"{"operation":"preflight","workspace":"A"}"#, "dataset"),
            (r#"{"operation":"preflight"}"#, "workspace"),
            (r#"{"operation":"preflight","targets":[]}"#, "targets"),
            (
                r#"{"operation":"preflight","workspace":"A","targets":[{"workspace":"A","dataset":"M"}]}"#,
                "workspace",
            ),
        ]);
    }

    #[test]
    fn timeline_defaults_to_the_last_day_and_checks_its_window() {
        let Task::Timeline(t) = parse_task(r#"{"operation":"timeline"}"#).expect("valid") else {
            panic!("timeline")
        };
        assert_eq!(t.since, DEFAULT_TIMELINE_SINCE);
        assert_eq!(t.output_file, PathBuf::from("timeline.html"));
        assert_refused(&[
            (
                r#"{"operation":"timeline","filter":{"since":"PT1H"},"until":"PT2H"}"#,
                "until",
            ),
            (r#"{"operation":"timeline","limit":0}"#, "limit"),
        ]);
    }
}
