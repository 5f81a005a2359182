//! `flow.trigger`: call a Power Automate / Logic Apps HTTP trigger; with `monitor`, follow the
//! Gen1 dataflow refresh the flow starts, so the task reports the refresh's real outcome rather
//! than the flow's 202 (which it answers even when the refresh inside fails).

use jiff::{SignedDuration, Timestamp};

use super::Context;
use super::outputs::{Outputs, Status};
use crate::error::{Error, ExitCode};
use crate::flow_trigger::{self, Fired};
use crate::refresh::items::{self, Catalog};
use crate::refresh::runner::{self, Earlier, Options};
use crate::settings::Profile;
use crate::task::{DataflowOptions, DataflowTarget, FlowTriggerTask, IfRunning};

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &FlowTriggerTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let (variable, url) = ctx.settings.flow_url(&task.flow)?;
    out.flow = Some(task.flow.clone());
    let catalog = Catalog::new(ctx, profile);
    // Resolve what to monitor before firing, so a typo stops the run before the flow starts.
    let monitored = match &task.monitor {
        Some((workspace, dataflow)) => {
            let group = catalog.workspace(workspace).await?;
            let target = DataflowTarget {
                profile: profile.name.clone(),
                workspace: group.id.clone(),
                dataflow: dataflow.clone(),
                generation: Some(1),
            };
            let options = DataflowOptions {
                notify_option: "NoNotification".into(),
                process_type: None,
                execute_option: None,
            };
            let item = catalog.dataflow(&group, &target, &options).await?;
            item.info().render(out);
            // The row names the dataflow before the flow is called, so a retry finds it.
            ctx.recorder.progress(out).await;
            // Only a transaction newer than every one that exists now can be the flow's.
            let history = item.runs().await?;
            let newest = history.iter().filter_map(|r| r.start).max();
            let floor = Timestamp::now() - SignedDuration::from_secs(60);
            let since = newest.map_or(floor, |n| floor.max(n + SignedDuration::from_micros(1)));
            Some((item, since, history))
        }
        None => None,
    };
    let opts = Options {
        wait: task.wait,
        if_running: IfRunning::Attach,
        on_timeout: task.on_timeout,
        per_capacity: None,
        aim: crate::wait::Aim::Promptness,
        queue: crate::wait::Queue::NONE,
    };
    // A Kestra retry of a monitored call never calls the flow again: it follows (or reports)
    // the refresh the earlier attempt's call started.
    if let Some((item, _, history)) = &monitored {
        let earlier = items::earlier_attempt(ctx, &profile.name, item.as_ref(), &opts).await?;
        let outcome = match earlier {
            None => None,
            Some(Earlier::Adopt(outcome)) => Some(outcome),
            Some(Earlier::Follow { run, .. }) => {
                Some(runner::follow_earlier(ctx, item.as_ref(), &opts, run, out).await?)
            }
            Some(Earlier::Unnamed { started_at }) => {
                // The earlier attempt stopped before it recorded a refresh: if one started after
                // it began, its call went through; if none did, it stopped before calling.
                let since = started_at - SignedDuration::from_secs(60);
                let started = history.iter().any(|r| r.start.is_some_and(|s| s >= since));
                if started {
                    tracing::info!(
                        "an earlier attempt of this task run called the flow at {started_at}; following the refresh it started instead of calling it again"
                    );
                    let before: Vec<_> = history
                        .iter()
                        .filter(|r| r.start.is_some_and(|s| s < since))
                        .cloned()
                        .collect();
                    Some(runner::follow_new(ctx, item.as_ref(), &opts, before, since, out).await?)
                } else {
                    tracing::info!(
                        "an earlier attempt of this task run stopped before any refresh of the dataflow started; calling the flow"
                    );
                    None
                }
            }
        };
        if let Some(outcome) = outcome {
            outcome.render(out);
            return Ok(outcome.exit);
        }
    }
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
    let Some((item, since, history)) = monitored else {
        out.status = Some(Status::Triggered);
        return Ok(ExitCode::Success);
    };
    let outcome = runner::follow_new(ctx, item.as_ref(), &opts, history, since, out).await?;
    outcome.render(out);
    Ok(outcome.exit)
}
