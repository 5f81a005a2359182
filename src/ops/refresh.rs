//! `dataset.refresh`, `dataflow.refresh` (and its cascade) and fleets (`targets`): names are
//! resolved here, everything else is the refresh engine's (`crate::refresh`).

use super::Context;
use super::outputs::{Outputs, Status};
use crate::error::{Error, ExitCode};
use crate::refresh::fleet::{self, Limits, Node};
use crate::refresh::items::Catalog;
use crate::refresh::runner::{self, Options};
use crate::refresh::summary;
use crate::refresh::{Kind, Outcome, Refreshable, lineage};
use crate::settings::Profile;
use crate::task::{
    DataflowOptions, DataflowRefreshTask, DataflowTarget, FleetTask, IfRunning, ItemRefresh,
    OnTimeout, RefreshBody, RefreshTask,
};
use crate::wait::Aim;

/// `dataset.refresh` (and `report.refresh` once its model is known).
pub(super) async fn model(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &RefreshTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let catalog = Catalog::new(ctx, profile);
    let group = catalog.workspace(&task.target.workspace).await?;
    out.workspace_id = Some(group.id.clone());
    out.workspace_name = Some(group.name.clone());
    out.item_kind = Some(Kind::Model.as_str());
    let item = catalog
        .model(&group, &task.target.dataset, task.body.clone())
        .await?;
    crate::preflight::before(ctx, profile, item.as_ref(), task.around.preflight, out).await?;
    single(
        ctx,
        profile,
        item.as_ref(),
        &options(&ItemRefresh::Model(task.clone())),
        out,
    )
    .await
}

/// `dataflow.refresh`: one dataflow of either generation, and with `then: downstream` every
/// dataflow and model downstream of it, in lineage order.
pub(super) async fn dataflow(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &DataflowRefreshTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let refresh = &task.refresh;
    let catalog = Catalog::new(ctx, profile);
    let group = catalog.workspace(&refresh.target.workspace).await?;
    out.workspace_id = Some(group.id.clone());
    out.workspace_name = Some(group.name.clone());
    let item = catalog
        .dataflow(&group, &refresh.target, &refresh.options)
        .await?;
    let opts = options(&ItemRefresh::Dataflow(refresh.clone()));
    crate::preflight::before(ctx, profile, item.as_ref(), task.around.preflight, out).await?;
    let Some(max_parallel) = task.downstream else {
        return single(ctx, profile, item.as_ref(), &opts, out).await;
    };
    // The lineage first: a cycle is refused before anything is triggered.
    let root = item.info().clone();
    let steps = lineage::downstream(&catalog, &root.id).await?;
    let code = single(ctx, profile, item.as_ref(), &opts, out).await?;
    let root_key = format!("{}/{}", root.workspace_name, root.name);
    let mut nodes = Vec::new();
    for step in &steps {
        let item = match step.kind {
            Kind::Model => {
                let body = RefreshBody::Standard {
                    notify_option: None,
                };
                catalog.model(&step.group, &step.id, body).await
            }
            Kind::Gen1 | Kind::Gen2 => {
                let target = DataflowTarget {
                    profile: profile.name.clone(),
                    workspace: step.group.id.clone(),
                    dataflow: step.id.clone(),
                    generation: Some(1),
                };
                let options = DataflowOptions {
                    notify_option: "NoNotification".into(),
                    process_type: None,
                    execute_option: None,
                };
                catalog.dataflow(&step.group, &target, &options).await
            }
        };
        let key = match &item {
            Ok(i) => format!("{}/{}", i.info().workspace_name, i.info().name),
            Err(_) => format!("{}/{}", step.group.name, step.id),
        };
        let depends_on = step
            .upstream
            .iter()
            .filter_map(|u| steps.iter().position(|s| s.id.eq_ignore_ascii_case(u)))
            .collect();
        nodes.push(Node {
            key,
            workspace: step.group.id.clone(),
            given: (Some(step.kind), step.id.clone()),
            item,
            opts: Options {
                wait: refresh.wait,
                if_running: IfRunning::Attach,
                on_timeout: OnTimeout::Leave,
                per_capacity: None,
                aim: Aim::Promptness,
                queue: crate::wait::Queue::NONE,
            },
            depends_on,
        });
    }
    tracing::info!(
        "{} item(s) downstream of dataflow {}",
        nodes.len(),
        root.name
    );
    let results = if out.status == Some(Status::Completed) {
        fleet::run(
            ctx,
            &profile.name,
            nodes,
            Limits {
                max_parallel,
                max_per_capacity: None,
            },
        )
        .await
    } else {
        let ended = out
            .status
            .map_or_else(|| "with an error".into(), |s| format!("{s:?}"));
        tracing::warn!("the dataflow ended {ended}; nothing downstream of it is refreshed");
        nodes
            .iter()
            .map(|n| fleet::skipped(n, &root_key, &ended))
            .collect::<Vec<_>>()
            .into()
    };
    let cascade = summary::summarize(results, &task.output_file, out);
    Ok(if code == ExitCode::Success {
        cascade
    } else {
        code
    })
}

/// `targets`: any mix of models and dataflows, in dependency order.
pub(super) async fn fleet(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &FleetTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let began = tokio::time::Instant::now();
    let catalog = Catalog::new(ctx, profile);
    // One workspace list for every target.
    catalog.groups().await?;
    let keys: Vec<&str> = task.targets.iter().map(|t| t.key.as_str()).collect();
    let mut nodes = Vec::new();
    for target in &task.targets {
        let (workspace, given) = match &target.refresh {
            ItemRefresh::Model(r) => (
                &r.target.workspace,
                (Some(Kind::Model), r.target.dataset.clone()),
            ),
            ItemRefresh::Dataflow(r) => (&r.target.workspace, (None, r.target.dataflow.clone())),
        };
        nodes.push(Node {
            key: target.key.clone(),
            workspace: workspace.clone(),
            given,
            item: catalog.item(&target.refresh).await,
            opts: Options {
                per_capacity: task.max_per_capacity,
                aim: Aim::Promptness,
                ..options(&target.refresh)
            },
            depends_on: target
                .depends_on
                .iter()
                .filter_map(|d| keys.iter().position(|k| k == d))
                .collect(),
        });
    }
    crate::preflight::fleet(ctx, profile, &mut nodes, task.around.preflight, out).await;
    let limits = Limits {
        max_parallel: task.max_parallel,
        max_per_capacity: task.max_per_capacity,
    };
    let results = fleet::run(ctx, &profile.name, nodes, limits).await;
    out.makespan_seconds = Some(super::outputs::secs(began.elapsed().as_secs_f64()));
    Ok(summary::summarize(results, &task.output_file, out))
}

/// One item through the engine, its outcome rendered into the outputs.
async fn single(
    ctx: &Context<'_>,
    profile: &Profile,
    item: &dyn Refreshable,
    opts: &Options,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let bound = opts.wait.timeout + BACKSTOP;
    let outcome = match tokio::time::timeout(
        bound,
        runner::refresh(ctx, &profile.name, item, opts, out),
    )
    .await
    {
        Ok(outcome) => outcome?,
        Err(_) => {
            tracing::error!(
                "the service did not answer by the deadline ({}s); the refresh of {} may still be running and is left alone",
                bound.as_secs(),
                item.info().describe()
            );
            Outcome {
                error_code: Some("WaitTimedOut".into()),
                error_message: Some(format!(
                    "a call to the service was still unanswered {}s after the run began",
                    bound.as_secs()
                )),
                ..Outcome::new(Status::Running, ExitCode::Timeout)
            }
        }
    };
    outcome.render(out);
    Ok(outcome.exit)
}

/// How far past `timeout` a call hung in the network may carry a run before it is cut short
/// (the waits themselves end at the deadline; this bounds what they cannot interrupt, and leaves
/// room for `onTimeout: cancel` and a last look).
const BACKSTOP: std::time::Duration = std::time::Duration::from_secs(10);

/// How a refresh is run, from its task.
pub(super) fn options(refresh: &ItemRefresh) -> Options {
    match refresh {
        ItemRefresh::Model(r) => Options {
            wait: r.wait,
            if_running: r.if_running,
            on_timeout: r.on_timeout,
            per_capacity: None,
            aim: Aim::Promptness,
            queue: crate::wait::Queue::NONE,
        },
        ItemRefresh::Dataflow(r) => Options {
            wait: r.wait,
            if_running: r.if_running,
            on_timeout: r.on_timeout,
            per_capacity: None,
            aim: Aim::Promptness,
            queue: crate::wait::Queue::NONE,
        },
    }
}
