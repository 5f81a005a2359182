//! Many semantic models in one run (`dataset.refresh` with `targets`), and the per-model runner a
//! cascade shares.
//!
//! All targets are resolved with one workspace list and one model list per workspace. They are
//! started longest-expected first (from each model's recent refreshes), so the night is not
//! ended by a long refresh started last; at most `maxParallel` at once, and at most
//! `maxParallelPerCapacity` on one capacity, so no capacity is overloaded while another idles.
//! One token serves every worker, and one pace: a 429 slows all of them down (see `http`).
//! Each model runs with the full `dataset.refresh` behaviour and is recorded as its own
//! operation; the run's outputs summarise them and a file lists each.

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;

use super::outputs::{Outputs, Status};
use super::{Context, Recorder, dataset_refresh, expectation};
use crate::error::{Error, ExitCode};
use crate::powerbi::wire::{Dataset, Group};
use crate::resolve;
use crate::settings::Profile;
use crate::task::{FleetTask, RefreshTask, Task};

/// One model of a fleet or a cascade, as the outputs and the file report it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    /// The model's workspace, as given or resolved.
    pub workspace_id: String,
    /// Its workspace's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    /// The model, as given or resolved.
    pub dataset_id: String,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// Normalized status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The refresh id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The refresh's duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// The run's exit code for this model.
    pub exit_code: i32,
    /// Error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Its row in the operation log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<i64>,
}

/// A resolved target waiting for a slot.
struct Planned {
    refresh: RefreshTask,
    group: Group,
    dataset: Dataset,
    capacity: String,
    expected: f64,
}

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &FleetTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let began = tokio::time::Instant::now();
    let pbi = ctx.powerbi(profile);
    let groups = pbi.groups(None).await?;
    let mut models: HashMap<String, Vec<Dataset>> = HashMap::new();
    let mut results = Vec::new();
    let mut plan = Vec::new();
    for fleet_target in &task.targets {
        let crate::task::ItemRefresh::Model(refresh) = &fleet_target.refresh else {
            continue;
        };
        let target = &refresh.target;
        let group = match resolve::pick(
            &groups,
            &target.workspace,
            "workspace",
            None,
            |g| &g.id,
            |g| &g.name,
        ) {
            Ok(g) => g,
            Err(e) => {
                results.push(failed(refresh, &e));
                continue;
            }
        };
        if !models.contains_key(&group.id) {
            models.insert(group.id.clone(), pbi.datasets(&group).await?);
        }
        let scope = Some(format!("workspace {} ({})", group.name, group.id));
        let dataset = match resolve::pick(
            &models[&group.id],
            &target.dataset,
            "semantic model",
            scope,
            |d| &d.id,
            |d| &d.name,
        ) {
            Ok(d) => d,
            Err(e) => {
                results.push(failed(refresh, &e));
                continue;
            }
        };
        let history = pbi.refresh_history(&group.id, &dataset.id, 20).await?;
        let done = history
            .iter()
            .filter(|r| r.status.as_deref() == Some("Completed"));
        let expected = expectation(done.map(|r| (r.start_time.as_deref(), r.end_time.as_deref())))
            .map_or(f64::INFINITY, |e| e.median.as_secs_f64());
        let capacity = group
            .capacity_id
            .clone()
            .unwrap_or_else(|| format!("shared:{}", group.id));
        plan.push(Planned {
            refresh: refresh.clone(),
            group,
            dataset,
            capacity,
            expected,
        });
    }
    // Longest expected first; models without history first of all (they may be the longest).
    plan.sort_by(|a, b| b.expected.total_cmp(&a.expected));
    tracing::info!(
        "refreshing {} model(s), {} at a time{}",
        plan.len(),
        task.max_parallel,
        task.max_per_capacity
            .map(|n| format!(", {n} per capacity"))
            .unwrap_or_default()
    );

    let child_ctx = Context {
        reporter: ctx.reporter.quiet(),
        ..*ctx
    };
    let mut busy: HashMap<String, usize> = HashMap::new();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < task.max_parallel {
            let free = |p: &Planned| {
                task.max_per_capacity
                    .is_none_or(|max| busy.get(&p.capacity).copied().unwrap_or(0) < max)
            };
            let Some(next) = plan.iter().position(free) else {
                break;
            };
            let p = plan.remove(next);
            *busy.entry(p.capacity.clone()).or_default() += 1;
            let capacity = p.capacity.clone();
            let child = &child_ctx;
            running.push(async move {
                (
                    capacity,
                    refresh_one(child, profile, p.refresh, Some((p.group, p.dataset))).await,
                )
            });
        }
        let Some((capacity, result)) = running.next().await else {
            break;
        };
        if let Some(n) = busy.get_mut(&capacity) {
            *n -= 1;
        }
        results.push(result);
    }

    let makespan = began.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.exit_code != 0).count();
    let mut by_status = std::collections::BTreeMap::new();
    for r in &results {
        let key = r
            .status
            .map_or_else(|| "Error".to_string(), |s| format!("{s:?}"));
        *by_status.entry(key).or_insert(0) += 1;
    }
    let written = write_summary(&task.output_file, &results);
    tracing::info!(
        "{} model(s) in {makespan:.1}s: {by_status:?}; details in {}",
        results.len(),
        task.output_file.display()
    );
    out.count = Some(results.len());
    out.failed = Some(failed);
    out.by_status = Some(by_status);
    out.makespan_seconds = Some(super::outputs::secs(makespan));
    out.file = written;
    out.targets = Some(results);
    Ok(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Unsuccessful
    })
}

fn failed(refresh: &RefreshTask, e: &Error) -> TargetResult {
    tracing::error!(
        "{}/{}: {e}",
        refresh.target.workspace,
        refresh.target.dataset
    );
    TargetResult {
        workspace_id: refresh.target.workspace.clone(),
        workspace_name: None,
        dataset_id: refresh.target.dataset.clone(),
        dataset_name: None,
        status: None,
        request_id: None,
        duration_seconds: None,
        exit_code: e.exit_code().code(),
        error_code: Some(e.code()),
        error_message: Some(crate::redact::scrub(&e.to_string())),
        operation_id: None,
    }
}

/// One model, as its own recorded `dataset.refresh` (resolved already, or by its target's ids).
pub(super) async fn refresh_one(
    ctx: &Context<'_>,
    profile: &Profile,
    refresh: RefreshTask,
    resolved: Option<(Group, Dataset)>,
) -> TargetResult {
    let as_task = Task::DatasetRefresh(refresh.clone());
    let mut out = Outputs {
        operation: Some("dataset.refresh"),
        profile: Some(profile.name.clone()),
        ..Default::default()
    };
    let (code, error) = match Recorder::start(ctx.store, &as_task, None, ctx.settings).await {
        Err(e) => (e.exit_code(), Some(e)),
        Ok(recorder) => {
            out.operation_id = recorder.id();
            let child = Context {
                recorder: &recorder,
                ..*ctx
            };
            let result = match &resolved {
                Some((group, dataset)) => {
                    dataset_refresh::run_resolved(
                        &child, profile, &refresh, group, dataset, &mut out,
                    )
                    .await
                }
                None => dataset_refresh::run(&child, profile, &refresh, &mut out).await,
            };
            let (code, error) = match result {
                Ok(code) => (code, None),
                Err(e) => {
                    tracing::error!("model {}: {e}", refresh.target.dataset);
                    (e.exit_code(), Some(e))
                }
            };
            if let Err(e) = recorder.finish(&out, code, error.as_ref()).await {
                tracing::error!("model {}: {e}", refresh.target.dataset);
            }
            (code, error)
        }
    };
    TargetResult {
        workspace_id: out
            .workspace_id
            .clone()
            .unwrap_or_else(|| refresh.target.workspace.clone()),
        workspace_name: out.workspace_name.clone(),
        dataset_id: out
            .dataset_id
            .clone()
            .unwrap_or_else(|| refresh.target.dataset.clone()),
        dataset_name: out.dataset_name.clone(),
        status: out.status,
        request_id: out.request_id.clone(),
        duration_seconds: out.duration_seconds,
        exit_code: code.code(),
        error_code: out
            .error_code
            .clone()
            .or_else(|| error.as_ref().map(Error::code)),
        error_message: out
            .error_message
            .clone()
            .or_else(|| error.as_ref().map(|e| crate::redact::scrub(&e.to_string()))),
        operation_id: out.operation_id,
    }
}

/// Writes the per-target file. The refreshes already ran: a file that cannot be written is
/// reported, not allowed to turn their outcome into an error; the outputs carry it all anyway.
pub(super) fn write_summary(path: &std::path::Path, results: &[TargetResult]) -> Option<String> {
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
