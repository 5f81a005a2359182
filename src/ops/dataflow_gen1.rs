//! Gen1 dataflow refresh over the Power BI REST API, and the wait on its transaction.
//!
//! The trigger returns no id, so the refresh is the newest transaction that started at or after
//! the trigger (less a minute of clock skew); until it appears, it is "missing" for the grace
//! period, as a model refresh's id is. Statuses have no documented enumeration: `Success` and
//! `Completed` succeed; `Failed`, `PartialComplete` and `Cancelled` end it; anything else is
//! polled until the timeout. On shared capacity a dataflow gets 8 refreshes per 24 hours; a
//! refusal (or a failure that the count explains) says when the next one can run.

use std::cell::RefCell;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::outputs::{self, Outputs, Status};
use super::{Context, Running, if_running};
use crate::error::{Error, ExitCode, ServiceError};
use crate::powerbi::dataflows::{Dataflow, Transaction};
use crate::powerbi::wire::Group;
use crate::powerbi::{PowerBi, Trigger};
use crate::task::{DataflowRefresh, OnTimeout};
use crate::wait::{self, Poll, PollPolicy, Waited};

/// Shared capacity's refresh allowance per dataflow and 24 hours.
const SHARED_DAILY_LIMIT: usize = 8;
const DAILY_LIMIT: &str = "DailyDataflowRefreshLimitExceeded";

/// A transaction's terminal status, or `None` while it runs (or says something unknown).
pub(super) fn terminal(t: &Transaction) -> Option<Status> {
    match t.status.as_deref() {
        Some("Success" | "Completed") => Some(Status::Completed),
        Some("Failed" | "PartialComplete") => Some(Status::Failed),
        Some("Cancelled" | "Canceled") => Some(Status::Cancelled),
        _ => None,
    }
}

fn ongoing(t: &Transaction) -> bool {
    matches!(
        t.status.as_deref(),
        Some("InProgress" | "Queued" | "NotStarted" | "Unknown")
    ) || (t.status.is_none() && t.end_time.is_none())
}

fn started_at(t: &Transaction) -> Option<Timestamp> {
    t.start_time.as_deref().and_then(outputs::parse_time)
}

/// Refreshes `dataflow` and (by default) waits for its transaction.
pub(super) async fn run(
    ctx: &Context<'_>,
    pbi: &PowerBi<'_>,
    group: &Group,
    dataflow: &Dataflow,
    task: &DataflowRefresh,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let history = pbi.transactions(&group.id, &dataflow.object_id).await?;
    if let Some(running) = history.iter().find(|t| ongoing(t)) {
        return on_running(ctx, pbi, group, dataflow, task, running, &history, out).await;
    }
    let since = Timestamp::now() - SignedDuration::from_secs(60);
    for attempt in 1..=3u32 {
        match pbi
            .trigger_dataflow(
                &group.id,
                &dataflow.object_id,
                &task.options.notify_option,
                task.options.process_type.as_deref(),
            )
            .await
        {
            Ok(Trigger::Accepted(_)) => {
                tracing::info!(
                    "refresh of dataflow {} triggered; looking for its transaction",
                    dataflow.name
                );
                out.attached = Some(false);
                return follow(
                    ctx,
                    pbi,
                    group,
                    dataflow,
                    task,
                    None,
                    Some(since),
                    &history,
                    out,
                )
                .await;
            }
            Ok(Trigger::AlreadyRunning(_)) => {
                let fresh = pbi.transactions(&group.id, &dataflow.object_id).await?;
                if let Some(running) = fresh.iter().find(|t| ongoing(t)) {
                    return on_running(ctx, pbi, group, dataflow, task, running, &fresh, out).await;
                }
            }
            Ok(Trigger::Ambiguous(why)) => {
                tracing::warn!(
                    "the dataflow refresh request's outcome is unknown ({why}); checking its transactions before trying again"
                );
                tokio::time::sleep(task.wait.poll_min).await;
                let fresh = pbi.transactions(&group.id, &dataflow.object_id).await?;
                // Ours only if it was not there before the trigger.
                let new = |t: &Transaction| {
                    !history.iter().any(|h| h.id == t.id)
                        && started_at(t).is_some_and(|s| s >= since)
                };
                if fresh.iter().any(new) {
                    out.attached = Some(false);
                    return follow(
                        ctx,
                        pbi,
                        group,
                        dataflow,
                        task,
                        None,
                        Some(since),
                        &history,
                        out,
                    )
                    .await;
                }
                if attempt == 3 {
                    return Err(Error::Unavailable {
                        action: format!(
                            "trigger a refresh of dataflow {} ({}) in workspace {} ({})",
                            dataflow.name, dataflow.object_id, group.name, group.id
                        ),
                        attempts: attempt,
                        last: why,
                    });
                }
            }
            Err(Error::Rejected {
                action, service, ..
            }) if service.code.as_deref() == Some(DAILY_LIMIT) => {
                let help = next_allowed(&history).map(|t| format!("shared capacity allows {SHARED_DAILY_LIMIT} refreshes of a dataflow per 24 hours, scheduled ones included; the next can run after {t}; or move the workspace to a Premium / Fabric capacity"));
                return Err(Error::Rejected {
                    action,
                    service,
                    help,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Rejected {
        action: format!("trigger a refresh of dataflow {} ({}) in workspace {} ({})", dataflow.name, dataflow.object_id, group.name, group.id),
        service: ServiceError {
            code: Some("RefreshAlreadyRunning".into()),
            message: Some(
                "the service kept answering that a refresh is in progress, yet none is listed"
                    .into(),
            ),
            ..Default::default()
        },
        help: Some("a refresh the transactions do not list yet is running (the list lags): rerun with ifRunning: attach in a minute".into()),
    })
}

#[allow(clippy::too_many_arguments)]
async fn on_running(
    ctx: &Context<'_>,
    pbi: &PowerBi<'_>,
    group: &Group,
    dataflow: &Dataflow,
    task: &DataflowRefresh,
    running: &Transaction,
    history: &[Transaction],
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    match if_running(
        task.if_running,
        &format!("dataflow {}", dataflow.name),
        &running.id,
        running.start_time.as_deref(),
        out,
    )? {
        Running::Skip => Ok(ExitCode::Success),
        Running::Attach => {
            follow(
                ctx,
                pbi,
                group,
                dataflow,
                task,
                Some(running.id.clone()),
                None,
                history,
                out,
            )
            .await
        }
    }
}

/// When the oldest of the last 8 refreshes turns 24 hours old.
fn next_allowed(history: &[Transaction]) -> Option<Timestamp> {
    let day_ago = Timestamp::now() - SignedDuration::from_hours(24);
    let mut recent: Vec<Timestamp> = history
        .iter()
        .filter_map(started_at)
        .filter(|s| *s > day_ago)
        .collect();
    recent.sort();
    (recent.len() >= SHARED_DAILY_LIMIT)
        .then(|| recent[recent.len() - SHARED_DAILY_LIMIT] + SignedDuration::from_hours(24))
}

/// Waits for the transaction `id`, or (when `since` is given) for the first one that started
/// since then. Public to the flow trigger, which monitors a dataflow its flow refreshes.
#[allow(clippy::too_many_arguments)]
pub(super) async fn follow(
    ctx: &Context<'_>,
    pbi: &PowerBi<'_>,
    group: &Group,
    dataflow: &Dataflow,
    task: &DataflowRefresh,
    id: Option<String>,
    since: Option<Timestamp>,
    history: &[Transaction],
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let expectation = super::expectation(
        history
            .iter()
            .filter(|t| terminal(t) == Some(Status::Completed))
            .map(|t| (t.start_time.as_deref(), t.end_time.as_deref())),
    );
    let started = id
        .as_ref()
        .and_then(|id| history.iter().find(|t| &t.id == id))
        .map_or(Duration::ZERO, |t| {
            super::running_for(t.start_time.as_deref())
        });
    out.generation = Some(1);
    if let Some(id) = &id {
        out.request_id = Some(id.clone());
        ctx.announce(out).await;
    }
    if !task.wait.wait && id.is_some() {
        out.status = Some(Status::Triggered);
        return Ok(ExitCode::Success);
    }
    let known = RefCell::new(id);
    let announced = known.borrow().is_some();
    let began = tokio::time::Instant::now();
    let policy = PollPolicy {
        min: task.wait.poll_min,
        max: task.wait.poll_max,
        expectation,
    };
    let before: Vec<String> = history.iter().map(|t| t.id.clone()).collect();
    let history = RefCell::new(Vec::new());
    let immediate = known.borrow().is_some();
    let waited = wait::until_done(
        policy,
        started,
        task.wait.timeout,
        task.wait.grace,
        immediate,
        || {
            let (known, history, before) = (&known, &history, &before);
            async move {
                let list = pbi.transactions(&group.id, &dataflow.object_id).await?;
                let current = match known.borrow().clone() {
                    Some(id) => list.iter().find(|t| t.id == id).cloned(),
                    // The oldest transaction that started since the trigger and was not listed
                    // before it (a refresh that ended just before is not ours).
                    None => list
                        .iter()
                        .filter(|t| !before.contains(&t.id))
                        .filter(|t| since.is_some_and(|s| started_at(t).is_some_and(|st| st >= s)))
                        .min_by_key(|t| started_at(t))
                        .cloned(),
                };
                *history.borrow_mut() = list;
                Ok(match current {
                    None => Poll::Missing,
                    Some(t) => {
                        *known.borrow_mut() = Some(t.id.clone());
                        // Without `wait`, finding the transaction is the end of the run.
                        if !task.wait.wait || terminal(&t).is_some() {
                            Poll::Done(t)
                        } else {
                            Poll::Running
                        }
                    }
                })
            }
        },
    )
    .await?;
    let found = known.borrow().clone();
    if let (Some(id), false) = (found, announced) {
        out.request_id = Some(id);
        ctx.announce(out).await;
    }
    out.wait_seconds = Some(outputs::secs(began.elapsed().as_secs_f64()));
    match waited {
        Waited::Done(_) if !task.wait.wait => {
            out.status = Some(Status::Triggered);
            Ok(ExitCode::Success)
        }
        Waited::Done(t) => Ok(finish(&t, &history.into_inner(), group, out)),
        Waited::Dropped => {
            out.status = Some(Status::Failed);
            let history = history.into_inner();
            if group.is_on_dedicated_capacity == Some(false) && next_allowed(&history).is_some() {
                return Ok(daily_limit(&history, out));
            }
            out.error_code = Some("RefreshDropped".into());
            out.error_message = Some(format!(
                "no transaction of dataflow {} appeared within {}s of the trigger",
                dataflow.name,
                task.wait.grace.as_secs()
            ));
            tracing::error!("{}", out.error_message.as_deref().unwrap_or_default());
            Ok(ExitCode::Unsuccessful)
        }
        Waited::TimedOut => {
            let id = known.into_inner().unwrap_or_default();
            let cancel =
                (task.on_timeout == OnTimeout::Cancel && !id.is_empty()).then_some(async {
                    let word = pbi.cancel_transaction(&group.id, &id).await?;
                    tracing::info!("the service marked transaction {id}: {word}");
                    Ok(())
                });
            Ok(super::timed_out("dataflow transaction", &id, task.wait.timeout, cancel, out).await)
        }
    }
}

fn finish(t: &Transaction, history: &[Transaction], group: &Group, out: &mut Outputs) -> ExitCode {
    let status = terminal(t).unwrap_or(Status::Failed);
    out.status = Some(status);
    out.service_status = t.status.clone();
    out.start_time = t.start_time.as_deref().map(outputs::utc);
    out.end_time = t.end_time.as_deref().map(outputs::utc);
    if let (Some(a), Some(b)) = (&t.start_time, &t.end_time) {
        out.duration_seconds = outputs::seconds_between(a, b);
    }
    if status == Status::Completed {
        tracing::info!(
            "dataflow refresh completed in {:.1}s",
            out.duration_seconds.unwrap_or_default()
        );
        return ExitCode::Success;
    }
    // Transactions carry no error; on shared capacity, a full day's allowance explains a failure.
    let earlier: Vec<Transaction> = history.iter().filter(|h| h.id != t.id).cloned().collect();
    if status == Status::Failed
        && group.is_on_dedicated_capacity == Some(false)
        && next_allowed(&earlier).is_some()
    {
        return daily_limit(&earlier, out);
    }
    out.error_code = Some(format!("DataflowRefresh{status:?}"));
    out.error_message = Some(format!(
        "transaction {} ended {}; the service gives no reason: see the dataflow's refresh history in the portal",
        t.id,
        t.status.as_deref().unwrap_or("?")
    ));
    tracing::error!("{}", out.error_message.as_deref().unwrap_or_default());
    ExitCode::Unsuccessful
}

fn daily_limit(history: &[Transaction], out: &mut Outputs) -> ExitCode {
    let next = next_allowed(history)
        .map(|t| t.to_string())
        .unwrap_or_default();
    out.error_code = Some(DAILY_LIMIT.into());
    out.error_message = Some(format!(
        "the dataflow already had {SHARED_DAILY_LIMIT} refreshes in the last 24 hours, the shared-capacity limit; the next can run after {next}"
    ));
    tracing::error!("{}", out.error_message.as_deref().unwrap_or_default());
    ExitCode::Unsuccessful
}
