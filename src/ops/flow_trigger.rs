//! `flow.trigger`: call a Power Automate / Logic Apps HTTP trigger; with `monitor`, follow the
//! Gen1 dataflow refresh the flow starts, so the task reports the refresh's real outcome rather
//! than the flow's 202 (which it answers even when the refresh inside fails).

use jiff::{SignedDuration, Timestamp};

use super::outputs::{Outputs, Status};
use super::{Context, dataflow_gen1};
use crate::error::{Error, ExitCode};
use crate::flow_trigger::{self, Fired};
use crate::powerbi::dataflows::Dataflow;
use crate::powerbi::wire::Group;
use crate::resolve;
use crate::settings::Profile;
use crate::task::{DataflowOptions, DataflowRefresh, DataflowTarget, FlowTriggerTask, IfRunning};

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &FlowTriggerTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let (variable, url) = ctx.settings.flow_url(&task.flow)?;
    out.flow = Some(task.flow.clone());
    let pbi = ctx.powerbi(profile);
    // Resolve what to monitor before firing, so a typo stops the run before the flow starts.
    let monitored = match &task.monitor {
        Some((workspace, dataflow)) => {
            let group = resolve::workspace(&pbi, workspace).await?;
            let dataflows = pbi.dataflows(&group.id).await?;
            let scope = Some(format!("workspace {} ({})", group.name, group.id));
            let df = resolve::pick(
                &dataflows,
                dataflow,
                "dataflow",
                scope,
                |d| &d.object_id,
                |d| &d.name,
            )?;
            out.workspace_id = Some(group.id.clone());
            out.workspace_name = Some(group.name.clone());
            out.item_kind = Some("Dataflow");
            out.generation = Some(1);
            out.dataflow_id = Some(df.object_id.clone());
            out.dataflow_name = Some(df.name.clone());
            // Only a transaction newer than every one that exists now can be the flow's.
            let history = pbi.transactions(&group.id, &df.object_id).await?;
            let newest = history.iter().filter_map(|t| t.start_time.clone()).max();
            let floor = Timestamp::now() - SignedDuration::from_secs(60);
            let since = newest
                .as_deref()
                .and_then(super::outputs::parse_time)
                .map_or(floor, |n| floor.max(n + SignedDuration::from_micros(1)));
            Some((group, df, since, history))
        }
        None => None,
    };
    match flow_trigger::fire(ctx.http, &task.flow, &url, &variable, &task.body).await? {
        Fired::Accepted { run_id, status } => {
            tracing::info!("flow {} accepted the call (HTTP {status})", task.flow);
            out.run_id = run_id;
        }
        Fired::Ambiguous(why) if monitored.is_some() => {
            tracing::warn!(
                "the flow's answer was lost ({why}); looking for the refresh it would have started"
            );
        }
        Fired::Ambiguous(why) => {
            return Err(Error::Unavailable {
                action: format!("trigger flow `{}` (it may or may not have run)", task.flow),
                attempts: 1,
                last: why,
            });
        }
    }
    let Some((group, df, since, history)) = monitored else {
        out.status = Some(Status::Triggered);
        return Ok(ExitCode::Success);
    };
    follow(
        ctx,
        &pbi,
        &group,
        &df,
        (since, &history),
        task,
        profile,
        out,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn follow(
    ctx: &Context<'_>,
    pbi: &crate::powerbi::PowerBi<'_>,
    group: &Group,
    df: &Dataflow,
    (since, history): (Timestamp, &[crate::powerbi::dataflows::Transaction]),
    task: &FlowTriggerTask,
    profile: &Profile,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let monitor = DataflowRefresh {
        target: DataflowTarget {
            profile: profile.name.clone(),
            workspace: group.id.clone(),
            dataflow: df.object_id.clone(),
            generation: Some(1),
        },
        options: DataflowOptions {
            notify_option: "NoNotification".into(),
            process_type: None,
            execute_option: None,
        },
        wait: task.wait,
        if_running: IfRunning::Attach,
        on_timeout: task.on_timeout,
    };
    out.attached = Some(false);
    dataflow_gen1::follow(
        ctx,
        pbi,
        group,
        df,
        &monitor,
        None,
        Some(since),
        history,
        out,
    )
    .await
}
