//! `dataflow.refresh`: a Gen1 (Power BI) or Gen2 (Fabric) dataflow, detected by name, and with
//! `then: downstream` the cascade into every semantic model that reads it.
//!
//! Detection looks at Power BI's dataflows first, then at Fabric's items of type `Dataflow`; a
//! name found in both is ambiguous (exit 4), never guessed. The cascade runs each downstream
//! model with the full `dataset.refresh` behaviour (single flight, wait by id), a bounded number
//! at a time, each recorded as its own operation, and summarises them in one file.

use futures_util::StreamExt;

use super::fleet::{TargetResult, refresh_one};
use super::outputs::{Outputs, Status};
use super::{Context, dataflow_gen1, dataflow_gen2};
use crate::error::{Error, ExitCode};
use crate::fabric::Fabric;
use crate::resolve;
use crate::settings::Profile;
use crate::task::{
    DataflowRefreshTask, DataflowTarget, DatasetTarget, IfRunning, OnTimeout, RefreshBody,
    RefreshTask,
};

enum Found {
    Gen1(crate::powerbi::dataflows::Dataflow),
    Gen2(crate::fabric::jobs::Item),
}

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &DataflowRefreshTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let group = resolve::workspace(&pbi, &task.refresh.target.workspace).await?;
    out.workspace_id = Some(group.id.clone());
    out.workspace_name = Some(group.name.clone());
    let fabric = Fabric::new(ctx.http, ctx.auth, profile, &ctx.settings.endpoints.fabric);
    let found = detect(&pbi, &fabric, &group, &task.refresh.target).await?;
    let code = match &found {
        Found::Gen1(df) => {
            out.item_kind = Some("Dataflow");
            out.generation = Some(1);
            out.dataflow_id = Some(df.object_id.clone());
            out.dataflow_name = Some(df.name.clone());
            dataflow_gen1::run(ctx, &pbi, &group, df, &task.refresh, out).await?
        }
        Found::Gen2(item) => {
            out.item_kind = Some("DataflowGen2");
            out.dataflow_id = Some(item.id.clone());
            out.dataflow_name = Some(item.display_name.clone());
            dataflow_gen2::run(ctx, &fabric, &group.id, item, &task.refresh, out).await?
        }
    };
    let Some(max_parallel) = task.downstream else {
        return Ok(code);
    };
    if out.status != Some(Status::Completed) {
        tracing::warn!("the dataflow did not complete; its downstream models are not refreshed");
        return Ok(code);
    }
    let dataflow_id = out.dataflow_id.clone().unwrap_or_default();
    cascade(ctx, profile, task, &dataflow_id, max_parallel, out).await
}

/// Finds the dataflow: by generation when given, else Power BI first, then Fabric.
async fn detect(
    pbi: &crate::powerbi::PowerBi<'_>,
    fabric: &Fabric<'_>,
    group: &crate::powerbi::wire::Group,
    task: &DataflowTarget,
) -> Result<Found, Error> {
    let scope = Some(format!("workspace {} ({})", group.name, group.id));
    let gen1 = if task.generation != Some(2) {
        pbi.dataflows(&group.id).await?
    } else {
        Vec::new()
    };
    let gen2 = if task.generation != Some(1) {
        fabric.items(&group.id, Some("Dataflow")).await?
    } else {
        Vec::new()
    };
    let hit1 = resolve::pick(
        &gen1,
        &task.dataflow,
        "dataflow",
        scope.clone(),
        |d| &d.object_id,
        |d| &d.name,
    );
    let hit2 = resolve::pick(
        &gen2,
        &task.dataflow,
        "dataflow",
        scope.clone(),
        |i| &i.id,
        |i| &i.display_name,
    );
    match (hit1, hit2) {
        (
            Ok(df),
            Err(Error::NotFound {
                ambiguous: false, ..
            }),
        ) => Ok(Found::Gen1(df)),
        (
            Err(Error::NotFound {
                ambiguous: false, ..
            }),
            Ok(item),
        ) => Ok(Found::Gen2(item)),
        (Ok(df), Ok(item)) => Err(Error::NotFound {
            kind: "dataflow",
            name: task.dataflow.clone(),
            scope,
            candidates: vec![
                format!("{} (Gen1, {})", df.name, df.object_id),
                format!("{} (Gen2, {})", item.display_name, item.id),
            ],
            ambiguous: true,
        }),
        (
            Err(
                e @ Error::NotFound {
                    ambiguous: true, ..
                },
            ),
            _,
        )
        | (
            _,
            Err(
                e @ Error::NotFound {
                    ambiguous: true, ..
                },
            ),
        ) => Err(e),
        (Err(_), Err(_)) => {
            let names = gen1
                .iter()
                .map(|d| d.name.as_str())
                .chain(gen2.iter().map(|i| i.display_name.as_str()));
            Err(Error::NotFound {
                kind: "dataflow",
                name: task.dataflow.clone(),
                scope,
                candidates: resolve::close_matches(&task.dataflow, names),
                ambiguous: false,
            })
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Refreshes every model that reads `dataflow_id`, in the workspaces the profile sees.
async fn cascade(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &DataflowRefreshTask,
    dataflow_id: &str,
    max_parallel: usize,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let mut targets = Vec::new();
    for group in pbi.groups(None).await? {
        for link in pbi.datasets_upstream_dataflows(&group.id).await? {
            if link.dataflow_object_id.eq_ignore_ascii_case(dataflow_id)
                && !targets
                    .iter()
                    .any(|(_, d): &(String, String)| d == &link.dataset_object_id)
            {
                targets.push((group.id.clone(), link.dataset_object_id));
            }
        }
    }
    tracing::info!(
        "{} model(s) read this dataflow; refreshing them, {max_parallel} at a time",
        targets.len()
    );
    let child_ctx = super::Context {
        reporter: ctx.reporter.quiet(),
        ..*ctx
    };
    let results: Vec<TargetResult> = futures_util::stream::iter(targets)
        .map(|(workspace, dataset)| {
            let refresh = RefreshTask {
                target: DatasetTarget {
                    profile: profile.name.clone(),
                    workspace,
                    dataset,
                },
                body: RefreshBody::Standard {
                    notify_option: None,
                },
                if_running: IfRunning::Attach,
                on_timeout: OnTimeout::Leave,
                wait: task.refresh.wait,
            };
            refresh_one(&child_ctx, profile, refresh, None)
        })
        .buffer_unordered(max_parallel)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.exit_code != 0).count();
    let file = task.output_file.clone();
    let written = super::fleet::write_summary(&file, &results);
    tracing::info!(
        "{} downstream model(s) refreshed, {failed} failed; details in {}",
        results.len() - failed,
        file.display()
    );
    out.count = Some(results.len());
    out.failed = Some(failed);
    out.file = written;
    out.targets = Some(results);
    Ok(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Unsuccessful
    })
}
