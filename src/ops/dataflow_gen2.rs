//! Dataflow Gen2 refresh through Fabric's Job Scheduler, and the wait on its job instance.
//!
//! A Fabric token, never a Power BI one. The first poll waits at least the 202's `Retry-After`,
//! and every poll honours the `Retry-After` of the job instance read. `Deduped` (the service
//! merged this run into another run of the same job) ends the wait as a failure of its own kind,
//! never as a reason to poll until the timeout.

use std::cell::RefCell;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::outputs::{self, Outputs, Status};
use super::{Context, Running, if_running};
use crate::error::{Error, ExitCode};
use crate::fabric::Fabric;
use crate::fabric::jobs::{Item, JobInstance, Started};
use crate::task::{DataflowRefresh, OnTimeout};
use crate::wait::{self, Poll, PollPolicy, Waited};

fn terminal(status: Option<&str>) -> Option<Status> {
    match status {
        Some("Completed") => Some(Status::Completed),
        Some("Failed" | "Deduped") => Some(Status::Failed),
        Some("Cancelled" | "Canceled") => Some(Status::Cancelled),
        _ => None,
    }
}

fn started_at(j: &JobInstance) -> Option<Timestamp> {
    j.start_time_utc.as_deref().and_then(outputs::parse_time)
}

/// Refreshes the Dataflow Gen2 `item` of workspace `workspace_id`.
pub(super) async fn run(
    ctx: &Context<'_>,
    fabric: &Fabric<'_>,
    workspace_id: &str,
    item: &Item,
    task: &DataflowRefresh,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    out.generation = Some(2);
    let what = format!("dataflow {} ({})", item.display_name, item.id);
    let jobs = fabric.job_instances(workspace_id, &item.id).await?;
    if let Some(running) = jobs
        .iter()
        .find(|j| terminal(j.status.as_deref()).is_none())
    {
        return match if_running(
            task.if_running,
            &what,
            &running.id,
            running.start_time_utc.as_deref(),
            out,
        )? {
            Running::Skip => Ok(ExitCode::Success),
            Running::Attach => {
                follow(
                    ctx,
                    fabric,
                    workspace_id,
                    item,
                    task,
                    &running.id,
                    Duration::ZERO,
                    &jobs,
                    out,
                )
                .await
            }
        };
    }
    let since = Timestamp::now() - SignedDuration::from_secs(60);
    let body = match &task.options.execute_option {
        Some(option) => serde_json::json!({"executionData": {"executeOption": option}}),
        None => serde_json::json!({}),
    };
    let mut last = String::new();
    for attempt in 1..=3u32 {
        match fabric
            .run_job(workspace_id, &item.id, "Refresh", &body)
            .await?
        {
            Started::Job { id, retry_after } => {
                tracing::info!(request_id = %id, "refresh job of {what} started");
                out.attached = Some(false);
                return follow(
                    ctx,
                    fabric,
                    workspace_id,
                    item,
                    task,
                    &id,
                    retry_after.unwrap_or_default(),
                    &jobs,
                    out,
                )
                .await;
            }
            Started::Ambiguous(why) => {
                tracing::warn!(
                    "the refresh job request's outcome is unknown ({why}); checking the job instances before trying again"
                );
                tokio::time::sleep(task.wait.poll_min).await;
                let fresh = fabric.job_instances(workspace_id, &item.id).await?;
                // Ours only if it was not listed before the request.
                if let Some(job) = fresh.iter().find(|j| {
                    !jobs.iter().any(|b| b.id == j.id) && started_at(j).is_some_and(|s| s >= since)
                }) {
                    out.attached = Some(false);
                    return follow(
                        ctx,
                        fabric,
                        workspace_id,
                        item,
                        task,
                        &job.id,
                        Duration::ZERO,
                        &fresh,
                        out,
                    )
                    .await;
                }
                last = why;
                tracing::info!(
                    "no job started; trying again (attempt {} of 3)",
                    attempt + 1
                );
            }
        }
    }
    Err(Error::Unavailable {
        action: format!("start the refresh job of {what}"),
        attempts: 3,
        last,
    })
}

#[allow(clippy::too_many_arguments)]
async fn follow(
    ctx: &Context<'_>,
    fabric: &Fabric<'_>,
    workspace_id: &str,
    item: &Item,
    task: &DataflowRefresh,
    id: &str,
    first_wait: Duration,
    jobs: &[JobInstance],
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let done = jobs
        .iter()
        .filter(|j| j.status.as_deref() == Some("Completed"));
    let expectation =
        super::expectation(done.map(|j| (j.start_time_utc.as_deref(), j.end_time_utc.as_deref())));
    let started = jobs
        .iter()
        .find(|j| j.id == id)
        .map_or(Duration::ZERO, |j| {
            super::running_for(j.start_time_utc.as_deref())
        });
    out.request_id = Some(id.to_string());
    ctx.announce(out).await;
    if !task.wait.wait {
        out.status = Some(Status::Triggered);
        return Ok(ExitCode::Success);
    }
    let began = tokio::time::Instant::now();
    // The service asks for at least `Retry-After` before the first status read.
    tokio::time::sleep(first_wait.min(task.wait.timeout)).await;
    let policy = PollPolicy {
        min: task.wait.poll_min,
        max: task.wait.poll_max,
        expectation,
    };
    let last = RefCell::new(None::<JobInstance>);
    let remaining = task.wait.timeout.saturating_sub(began.elapsed());
    let waited = wait::until_done(
        policy,
        started,
        remaining.max(Duration::from_millis(1)),
        task.wait.grace,
        true,
        || {
            let last = &last;
            async move {
                Ok(
                    match fabric.job_instance(workspace_id, &item.id, id).await? {
                        None => Poll::Missing,
                        Some((job, _)) if terminal(job.status.as_deref()).is_some() => {
                            Poll::Done(job)
                        }
                        Some((job, after)) => {
                            *last.borrow_mut() = Some(job);
                            after.map_or(Poll::Running, Poll::RunningFor)
                        }
                    },
                )
            }
        },
    )
    .await?;
    out.wait_seconds = Some(outputs::secs(began.elapsed().as_secs_f64()));
    match waited {
        Waited::Done(job) => Ok(finish(&job, out)),
        Waited::Dropped => {
            out.status = Some(Status::Failed);
            out.error_code = Some("RefreshDropped".into());
            out.error_message = Some(format!(
                "job instance {id} never appeared within {}s",
                task.wait.grace.as_secs()
            ));
            Ok(ExitCode::Unsuccessful)
        }
        Waited::TimedOut => {
            out.service_status = last.into_inner().and_then(|j| j.status);
            let cancel = (task.on_timeout == OnTimeout::Cancel)
                .then(|| fabric.cancel_job(workspace_id, &item.id, id));
            Ok(super::timed_out("job instance", id, task.wait.timeout, cancel, out).await)
        }
    }
}

fn finish(job: &JobInstance, out: &mut Outputs) -> ExitCode {
    let status = terminal(job.status.as_deref()).unwrap_or(Status::Failed);
    out.status = Some(status);
    out.service_status = job.status.clone();
    out.start_time = job.start_time_utc.as_deref().map(outputs::utc);
    out.end_time = job.end_time_utc.as_deref().map(outputs::utc);
    if let (Some(a), Some(b)) = (&job.start_time_utc, &job.end_time_utc) {
        out.duration_seconds = outputs::seconds_between(a, b);
    }
    if status == Status::Completed {
        tracing::info!(
            "Dataflow Gen2 refresh completed in {:.1}s",
            out.duration_seconds.unwrap_or_default()
        );
        return ExitCode::Success;
    }
    if job.status.as_deref() == Some("Deduped") {
        out.error_code = Some("JobDeduped".into());
        out.error_message = Some("the service merged this run into another run of the same job, so it did not run itself".into());
    } else {
        let reason = job.failure_reason.clone().unwrap_or_default();
        out.error_code = reason
            .error_code
            .or_else(|| Some(format!("DataflowRefresh{status:?}")));
        out.error_message = reason.message;
    }
    tracing::error!(
        "Dataflow Gen2 refresh ended {}: {} {}",
        job.status.as_deref().unwrap_or("?"),
        out.error_code.as_deref().unwrap_or_default(),
        out.error_message.as_deref().unwrap_or_default()
    );
    ExitCode::Unsuccessful
}
