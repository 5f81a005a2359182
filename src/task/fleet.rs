//! Fleets: `targets` on `dataset.refresh` or `dataflow.refresh` refreshes many items of any kind
//! in one run, in the order their `dependsOn` edges require.
//!
//! Each target names a workspace and exactly one item (`dataset` or `dataflow`) with that kind's
//! own options; `ifRunning`, `onTimeout` and `timeout` may be set per target, and the other wait
//! fields apply to all. The dependency graph is checked here, before anything is sent: every
//! key it names exists, no key is used twice, and there is no cycle.

use std::collections::HashMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::dataflow;
use super::dataset::{RawRefresh, refresh_task};
use super::fields::{Dur, Generation, Name, Parallel, Profile};
use super::json::within;
use super::wait::{self, WaitFields};
use super::words::{ExecuteOption, NotifyOption, ProcessType};
use super::{
    DataflowRefresh, DataflowTarget, DatasetTarget, FleetTarget, FleetTask, IfRunning, ItemRefresh,
    OnTimeout, Task, WaitOptions,
};
use crate::error::Error;

/// Default number of refreshes a fleet runs at once.
pub const DEFAULT_MAX_PARALLEL: usize = 8;

/// One item of a fleet: a semantic model (`dataset`) or a dataflow (`dataflow`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["dataset"]}, {"required": ["dataflow"]}]))]
pub struct RawTarget {
    /// The key other targets' dependsOn names (default: workspace/dataset or workspace/dataflow, as written).
    pub id: Option<Name>,
    /// Workspace name or id.
    pub workspace: Name,
    /// A semantic model, by name or id.
    pub dataset: Option<Name>,
    /// A dataflow (Gen1 or Gen2), by name or id.
    pub dataflow: Option<Name>,
    /// Keys of the targets that must complete before this one starts.
    pub depends_on: Option<Vec<Name>>,
    /// Model: enhanced refresh options.
    pub refresh: Option<RawRefresh>,
    /// Model or Gen1 dataflow: the e-mail the service sends (MailOnCompletion: models only).
    pub notify_option: Option<NotifyOption>,
    /// Dataflow: 1 (Power BI) or 2 (Fabric Dataflow Gen2); detected when absent.
    pub generation: Option<Generation>,
    /// Gen1 dataflow: default or processFull.
    pub process_type: Option<ProcessType>,
    /// Dataflow Gen2: ApplyChangesIfNeeded or SkipApplyChanges.
    pub execute_option: Option<ExecuteOption>,
    /// This target's single-flight policy (default: the task's).
    pub if_running: Option<IfRunning>,
    /// This target's timeout policy (default: the task's).
    pub on_timeout: Option<OnTimeout>,
    /// How long to wait for this target (default: the task's timeout).
    pub timeout: Option<Dur>,
}

/// The task-level fields of a fleet, from `dataset.refresh` or `dataflow.refresh`.
pub(super) struct FleetFields<'a> {
    pub operation: &'static str,
    pub profile: Option<Profile>,
    pub targets: Vec<RawTarget>,
    pub wait: WaitFields,
    pub if_running: Option<IfRunning>,
    pub on_timeout: Option<OnTimeout>,
    pub max_parallel: Option<Parallel>,
    pub max_parallel_per_capacity: Option<Parallel>,
    pub output_file: Option<Name>,
    /// The single-item fields of the operation, which a fleet gives per target instead.
    pub single: &'a [(&'static str, bool)],
    /// Preflight, alert and timeline fields.
    pub around: super::around::AroundFields,
}

/// Validates a fleet: every target, then the dependency graph.
pub(super) fn validate(f: FleetFields) -> Result<Task, Error> {
    if let Some((field, _)) = f.single.iter().find(|(_, given)| *given) {
        return Err(Error::task(
            *field,
            "cannot be combined with `targets`",
            "give it per target, inside `targets`",
        ));
    }
    if f.targets.is_empty() {
        return Err(Error::task(
            "targets",
            "is empty",
            "list at least one {\"workspace\", \"dataset\"} or {\"workspace\", \"dataflow\"}",
        ));
    }
    let profile = Profile::name(f.profile);
    let around = f.around.validate(true)?;
    let wait = f.wait.options()?;
    let inherited = Inherited {
        profile: &profile,
        wait,
        if_running: f.if_running.unwrap_or(IfRunning::Attach),
        on_timeout: f.on_timeout.unwrap_or(OnTimeout::Leave),
    };
    let targets = f
        .targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| target(t, inherited).map_err(|e| within(&format!("targets[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    if !wait.wait && targets.iter().any(|t| !t.depends_on.is_empty()) {
        return Err(Error::task(
            "wait",
            "cannot be false with `dependsOn`: a target starts when those it depends on completed",
            "remove \"wait\": false, or the dependsOn lists",
        ));
    }
    check_graph(&targets)?;
    Ok(Task::Fleet(FleetTask {
        operation: f.operation,
        profile,
        targets,
        max_parallel: f.max_parallel.map_or(DEFAULT_MAX_PARALLEL, |p| p.0),
        max_per_capacity: f.max_parallel_per_capacity.map(|p| p.0),
        output_file: PathBuf::from(f.output_file.map_or_else(|| "targets.json".into(), |n| n.0)),
        around,
    }))
}

/// What a target inherits from the task, and may override (`timeout`, `ifRunning`, `onTimeout`).
#[derive(Clone, Copy)]
struct Inherited<'a> {
    profile: &'a str,
    wait: WaitOptions,
    if_running: IfRunning,
    on_timeout: OnTimeout,
}

fn target(t: RawTarget, task: Inherited) -> Result<FleetTarget, Error> {
    let run = Inherited {
        wait: WaitOptions {
            timeout: wait::timeout("timeout", t.timeout)?.unwrap_or(task.wait.timeout),
            ..task.wait
        },
        if_running: t.if_running.unwrap_or(task.if_running),
        on_timeout: t.on_timeout.unwrap_or(task.on_timeout),
        ..task
    };
    let key = |item: &Name| {
        t.id.clone()
            .map_or_else(|| format!("{}/{}", t.workspace.0, item.0), |id| id.0)
    };
    let (key, refresh) = match (&t.dataset, &t.dataflow) {
        (Some(_), Some(_)) => {
            return Err(Error::task(
                "dataflow",
                "cannot be combined with `dataset`",
                "a target is one item: give `dataset` (a semantic model) or `dataflow`",
            ));
        }
        (None, None) => {
            return Err(Error::task(
                "",
                "names no item",
                "give `dataset` (a semantic model) or `dataflow`",
            ));
        }
        (Some(dataset), None) => (key(dataset), model(&t, dataset, run)?),
        (None, Some(flow)) => (key(flow), dataflow_item(&t, flow, run)?),
    };
    Ok(FleetTarget {
        key,
        refresh,
        depends_on: t
            .depends_on
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.0)
            .collect(),
    })
}

fn model(t: &RawTarget, dataset: &Name, run: Inherited) -> Result<ItemRefresh, Error> {
    for (field, given) in [
        ("generation", t.generation.is_some()),
        ("processType", t.process_type.is_some()),
        ("executeOption", t.execute_option.is_some()),
    ] {
        if given {
            return Err(Error::task(
                field,
                "applies to dataflow targets only",
                "remove it from this semantic model target",
            ));
        }
    }
    let target = DatasetTarget {
        profile: run.profile.to_string(),
        workspace: t.workspace.0.clone(),
        dataset: dataset.0.clone(),
    };
    refresh_task(
        target,
        t.notify_option,
        t.refresh.clone(),
        run.wait,
        run.if_running,
        run.on_timeout,
    )
    .map(ItemRefresh::Model)
}

fn dataflow_item(t: &RawTarget, flow: &Name, run: Inherited) -> Result<ItemRefresh, Error> {
    if t.refresh.is_some() {
        return Err(Error::task(
            "refresh",
            "applies to semantic model targets only",
            "a dataflow takes generation, notifyOption, processType or executeOption",
        ));
    }
    let generation = t.generation.map(|g| g.0);
    Ok(ItemRefresh::Dataflow(DataflowRefresh {
        target: DataflowTarget {
            profile: run.profile.to_string(),
            workspace: t.workspace.0.clone(),
            dataflow: flow.0.clone(),
            generation,
        },
        options: dataflow::options(
            generation,
            t.notify_option,
            t.process_type,
            t.execute_option,
        )?,
        wait: run.wait,
        if_running: run.if_running,
        on_timeout: run.on_timeout,
    }))
}

/// Every key unique, every `dependsOn` naming another target, and no cycle.
fn check_graph(targets: &[FleetTarget]) -> Result<(), Error> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        if let Some(first) = index.insert(&t.key, i) {
            return Err(Error::task(
                format!("targets[{i}]"),
                format!("its key `{}` is already the key of targets[{first}]", t.key),
                "give one of them an `id` (the key dependsOn uses)",
            ));
        }
    }
    let mut edges: Vec<Vec<usize>> = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let mut out = Vec::new();
        for (k, key) in t.depends_on.iter().enumerate() {
            let field = format!("targets[{i}].dependsOn[{k}]");
            let Some(&j) = index.get(key.as_str()) else {
                return Err(Error::task(
                    field,
                    format!("`{key}` names no target"),
                    format!(
                        "a key is a target's `id`, else its `workspace/item` as written: {}",
                        keys(targets)
                    ),
                ));
            };
            if j == i {
                return Err(Error::task(
                    field,
                    "a target cannot depend on itself",
                    "remove it",
                ));
            }
            if out.contains(&j) {
                return Err(Error::task(
                    field,
                    format!("`{key}` is listed twice"),
                    "list each key once",
                ));
            }
            out.push(j);
        }
        edges.push(out);
    }
    match find_cycle(&edges) {
        None => Ok(()),
        Some(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&i| targets[i].key.as_str()).collect();
            Err(Error::task(
                format!("targets[{}].dependsOn", cycle[cycle.len() - 2]),
                format!("forms a cycle: {}", names.join(" → ")),
                "each target in the cycle waits for the next; remove one of these dependsOn entries",
            ))
        }
    }
}

fn keys(targets: &[FleetTarget]) -> String {
    let mut list: Vec<String> = targets
        .iter()
        .take(10)
        .map(|t| format!("`{}`", t.key))
        .collect();
    if targets.len() > 10 {
        list.push("…".into());
    }
    list.join(", ")
}

/// A cycle as a closed walk (`[a, b, c, a]`), found by an iterative depth-first search (a deep
/// chain of targets must not exhaust the stack).
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    for start in 0..edges.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            match edges[node].get(*next).copied() {
                Some(to) => {
                    *next += 1;
                    match mark[to] {
                        Mark::New => {
                            mark[to] = Mark::Open;
                            stack.push((to, 0));
                        }
                        Mark::Open => {
                            let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                            let mut cycle: Vec<usize> =
                                stack[from..].iter().map(|(n, _)| *n).collect();
                            cycle.push(to);
                            return Some(cycle);
                        }
                        Mark::Done => {}
                    }
                }
                None => {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
