//! `dataset.refresh`: single flight, trigger, wait by id, truthful outcome.
//!
//! The order matters: resolve names, refuse what the service would refuse, look for a refresh
//! already running (`ifRunning`), trigger, emit the request id at once, then poll that id, never
//! "the latest refresh", since someone else's refresh may start after ours.

use std::cell::RefCell;

use jiff::Timestamp;

use super::outputs::{self, Outputs, Status};
use super::{
    Context, Running, if_running, is_enhanced, recent_refreshes, resolve_target, running_for,
    running_refresh,
};
use crate::error::{Error, ExitCode, ServiceError};
use crate::powerbi::wire::{self, Dataset, Group, Refresh, RefreshDetail};
use crate::powerbi::{PowerBi, Trigger};
use crate::settings::Profile;
use crate::task::{OnTimeout, RefreshBody, RefreshTask};
use crate::wait::Expectation;
use crate::wait::{self, Poll, PollPolicy, Waited};

/// How many times a trigger is attempted when its outcome stays ambiguous.
const TRIGGER_ATTEMPTS: u32 = 3;

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &RefreshTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let (group, dataset) = resolve_target(&pbi, &task.target, out).await?;
    run_resolved(ctx, profile, task, &group, &dataset, out).await
}

/// Refreshes a model already resolved (a fleet resolves all its targets at once).
pub(super) async fn run_resolved(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &RefreshTask,
    group: &Group,
    dataset: &Dataset,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let pbi = ctx.powerbi(profile);
    let (group, dataset) = (group.clone(), dataset.clone());
    out.workspace_id = Some(group.id.clone());
    out.workspace_name = Some(group.name.clone());
    out.item_kind = Some("SemanticModel");
    out.dataset_id = Some(dataset.id.clone());
    out.dataset_name = Some(dataset.name.clone());
    let enhanced = matches!(task.body, RefreshBody::Enhanced(_));
    if enhanced && group.is_on_dedicated_capacity == Some(false) {
        return Err(Error::task(
            "refresh",
            format!(
                "workspace {} is on shared capacity, where the service refuses enhanced refreshes",
                group.name
            ),
            "remove `refresh` for a standard refresh, or move the workspace to a Premium / Fabric capacity",
        ));
    }
    if dataset.is_refreshable == Some(false) {
        tracing::warn!(
            "semantic model {} is marked not refreshable (DirectQuery or live connection, or never refreshed); trying anyway",
            dataset.name
        );
    }
    let super::Recent {
        running,
        expectation,
        known,
    } = recent_refreshes(&pbi, &group, &dataset).await?;
    let target = Target {
        pbi: &pbi,
        group: &group,
        dataset: &dataset,
        expectation,
        known,
    };

    if let Some((id, enhanced)) = reattach(ctx, &target, task, &profile.name).await? {
        out.attached = Some(true);
        let f = Following {
            id: &id,
            enhanced,
            immediate: true,
            started: std::time::Duration::ZERO,
        };
        return follow(ctx, &target, task, f, out).await;
    }
    if let Some(running) = running {
        return on_running(ctx, &target, task, running, out).await;
    }
    match trigger(&target, task).await? {
        Started::Ours(id) => {
            tracing::info!(request_id = %id, "refresh triggered for semantic model {} in workspace {}", dataset.name, group.name);
            out.attached = Some(false);
            let f = Following {
                id: &id,
                enhanced,
                immediate: false,
                started: std::time::Duration::ZERO,
            };
            follow(ctx, &target, task, f, out).await
        }
        Started::Running(running) => on_running(ctx, &target, task, running, out).await,
    }
}

/// Durable reattach: an earlier run of this task (a Kestra retry after its worker died) left
/// a `Running` row with a request id; if that refresh is still known to the service, follow it
/// instead of triggering another. The earlier row is closed as `Abandoned`.
async fn reattach(
    ctx: &Context<'_>,
    t: &Target<'_>,
    task: &RefreshTask,
    profile: &str,
) -> Result<Option<(String, bool)>, Error> {
    let Some(store) = ctx.store else {
        return Ok(None);
    };
    let Some(row) = store
        .running_operation(ctx.recorder.operation(), profile, &t.dataset.id)
        .await?
    else {
        return Ok(None);
    };
    // Only a run that stopped without ending (a dead worker), not one that timed out and said so.
    if row.ended_at.is_some() {
        return Ok(None);
    }
    let Some(request_id) = row.request_id.clone() else {
        return Ok(None);
    };
    let window = jiff::SignedDuration::try_from(task.wait.timeout).unwrap_or_default();
    if Some(row.id) == ctx.recorder.id() || row.started_at < Timestamp::now() - window {
        return Ok(None);
    }
    // Only a retry of the same Kestra task run: another run on the same model (a second flow,
    // a person at a terminal) goes through `ifRunning` like any refresh it did not start.
    let kestra = &ctx.settings.kestra;
    let same_task = kestra.execution_id.is_some()
        && kestra.taskrun_id.is_some()
        && row.kestra_execution_id == kestra.execution_id
        && row.kestra_taskrun_id == kestra.taskrun_id;
    if !same_task {
        return Ok(None);
    }
    // Still running in the service? Enhanced refreshes answer by id even while the history
    // lags; standard ones only in the history.
    let (enhanced, running) = match t
        .pbi
        .refresh_details(&t.group.id, &t.dataset.id, &request_id)
        .await
    {
        Ok(Some(d)) => (
            true,
            outputs::terminal_status(d.status.as_deref(), d.extended_status.as_deref()).is_none(),
        ),
        _ => {
            let history = t
                .pbi
                .refresh_history(&t.group.id, &t.dataset.id, 20)
                .await?;
            let entry = history
                .iter()
                .find(|r| r.request_id.as_deref() == Some(request_id.as_str()));
            (
                false,
                entry.is_some_and(|r| {
                    outputs::terminal_status(r.status.as_deref(), r.extended_status.as_deref())
                        .is_none()
                }),
            )
        }
    };
    store.abandon_operation(row.id, ctx.recorder.id()).await?;
    if !running {
        tracing::info!(request_id = %request_id, "operation {} stopped before its refresh ended, and that refresh has ended since", row.id);
        return Ok(None);
    }
    tracing::info!(request_id = %request_id, "operation {} (started {}) was following this refresh when it stopped; reattaching", row.id, row.started_at);
    Ok(Some((request_id, enhanced)))
}

struct Target<'a> {
    pbi: &'a PowerBi<'a>,
    group: &'a Group,
    dataset: &'a Dataset,
    /// What the model's recent refreshes predict of this one.
    expectation: Option<Expectation>,
    /// Refresh ids in the history before the trigger.
    known: Vec<String>,
}

/// The refresh being followed.
struct Following<'a> {
    id: &'a str,
    enhanced: bool,
    /// Poll at once (it is already known) rather than after the first interval.
    immediate: bool,
    /// How long it has been running.
    started: std::time::Duration,
}

enum Started {
    Ours(String),
    Running(Refresh),
}

/// Posts the refresh. A 5xx or lost response is never retried blindly: the history is checked
/// first, and a refresh that started meanwhile is adopted instead of triggering a second one.
async fn trigger(t: &Target<'_>, task: &RefreshTask) -> Result<Started, Error> {
    let since = Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let mut last = ServiceError::default();
    let mut busy = false;
    for attempt in 1..=TRIGGER_ATTEMPTS {
        match t
            .pbi
            .trigger_refresh(&t.group.id, &t.dataset.id, &task.body)
            .await?
        {
            Trigger::Accepted(id) => return Ok(Started::Ours(id)),
            Trigger::AlreadyRunning(service) => {
                if let Some(running) = running_refresh(t.pbi, t.group, t.dataset).await? {
                    return Ok(Started::Running(running));
                }
                // It ended between the POST and the read: try again.
                last = service;
                busy = true;
            }
            Trigger::Ambiguous(why) => {
                busy = false;
                tracing::warn!(
                    "the refresh request's outcome is unknown ({why}); checking the history before trying again"
                );
                tokio::time::sleep(task.wait.poll_min).await;
                let history = t
                    .pbi
                    .refresh_history(&t.group.id, &t.dataset.id, 10)
                    .await?;
                // Ours only if it was not in the history before the trigger.
                let started = history.into_iter().find(|r| {
                    r.request_id
                        .as_ref()
                        .is_some_and(|id| !t.known.contains(id))
                        && matches!(r.refresh_type.as_deref(), Some("ViaApi" | "ViaEnhancedApi"))
                        && r.start_time
                            .as_deref()
                            .and_then(outputs::parse_time)
                            .is_some_and(|s| s >= since)
                });
                if let Some(id) = started.and_then(|r| r.request_id) {
                    tracing::info!(request_id = %id, "the refresh did start; following it");
                    return Ok(Started::Ours(id));
                }
                last = ServiceError {
                    message: Some(why),
                    ..Default::default()
                };
                if attempt < TRIGGER_ATTEMPTS {
                    tracing::info!(
                        "no refresh started; triggering again (attempt {} of {TRIGGER_ATTEMPTS})",
                        attempt + 1
                    );
                }
            }
        }
    }
    let action = format!(
        "trigger a refresh of semantic model {} ({}) in workspace {} ({})",
        t.dataset.name, t.dataset.id, t.group.name, t.group.id
    );
    if busy {
        // The service kept saying "already executing" while its history showed nothing running.
        return Err(Error::Rejected {
            action,
            service: ServiceError { code: Some("RefreshAlreadyRunning".into()), ..last },
            help: Some("a refresh the history does not show yet is running (the history lags): rerun with ifRunning: attach in a minute".into()),
        });
    }
    Err(Error::Unavailable {
        action,
        attempts: TRIGGER_ATTEMPTS,
        last: last.to_string(),
    })
}

async fn on_running(
    ctx: &Context<'_>,
    t: &Target<'_>,
    task: &RefreshTask,
    running: Refresh,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let id = running.request_id.clone().unwrap_or_default();
    let what = format!("semantic model {} ({})", t.dataset.name, t.dataset.id);
    match if_running(
        task.if_running,
        &what,
        &id,
        running.start_time.as_deref(),
        out,
    )? {
        Running::Skip => Ok(ExitCode::Success),
        Running::Attach => {
            let f = Following {
                id: &id,
                enhanced: is_enhanced(&running),
                immediate: true,
                started: running_for(running.start_time.as_deref()),
            };
            follow(ctx, t, task, f, out).await
        }
    }
}

/// What one poll saw of the refresh.
#[derive(Debug, Default)]
struct Snapshot {
    status: Option<Status>,
    service_status: Option<String>,
    start: Option<String>,
    end: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    objects: Option<Vec<wire::RefreshObjectStatus>>,
}

impl Snapshot {
    fn from_history(r: &Refresh) -> Snapshot {
        let (error_code, error_message) = r
            .service_exception_json
            .as_deref()
            .map(wire::service_exception)
            .unwrap_or_default();
        Snapshot {
            status: outputs::terminal_status(r.status.as_deref(), r.extended_status.as_deref()),
            service_status: r.extended_status.clone().or_else(|| r.status.clone()),
            start: r.start_time.clone(),
            end: r.end_time.clone(),
            error_code,
            error_message,
            objects: None,
        }
    }

    fn from_detail(d: &RefreshDetail) -> Snapshot {
        let attempt_error = d
            .refresh_attempts
            .iter()
            .rev()
            .find_map(|a| a.service_exception_json.as_deref())
            .map(wire::service_exception);
        let message = d
            .messages
            .iter()
            .find(|m| m.kind.as_deref() != Some("Warning"));
        let (code, description) = attempt_error.unwrap_or_default();
        Snapshot {
            status: outputs::terminal_status(d.status.as_deref(), d.extended_status.as_deref()),
            service_status: d.extended_status.clone().or_else(|| d.status.clone()),
            start: d.start_time.clone(),
            end: d.end_time.clone(),
            error_code: code.or_else(|| message.and_then(|m| m.code.clone())),
            error_message: message.and_then(|m| m.message.clone()).or(description),
            objects: (!d.objects.is_empty()).then(|| d.objects.clone()),
        }
    }
}

/// Emits the request id, then waits for the refresh to end (unless `wait` is false).
async fn follow(
    ctx: &Context<'_>,
    t: &Target<'_>,
    task: &RefreshTask,
    f: Following<'_>,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let Following {
        id,
        enhanced,
        immediate,
        started,
    } = f;
    out.request_id = Some(id.to_string());
    out.refresh_type = Some(if enhanced { "Enhanced" } else { "Standard" });
    ctx.announce(out).await;
    if !task.wait.wait {
        out.status = Some(Status::Triggered);
        return Ok(ExitCode::Success);
    }
    let policy = PollPolicy {
        min: task.wait.poll_min,
        max: task.wait.poll_max,
        expectation: t.expectation,
    };
    let last = RefCell::new(None::<Snapshot>);
    let began = tokio::time::Instant::now();
    let waited = wait::until_done(
        policy,
        started,
        task.wait.timeout,
        task.wait.grace,
        immediate,
        || {
            let last = &last;
            async move {
                let snapshot = if enhanced {
                    t.pbi
                        .refresh_details(&t.group.id, &t.dataset.id, id)
                        .await?
                        .as_ref()
                        .map(Snapshot::from_detail)
                } else {
                    let history = t
                        .pbi
                        .refresh_history(&t.group.id, &t.dataset.id, 20)
                        .await?;
                    history
                        .iter()
                        .find(|r| r.request_id.as_deref() == Some(id))
                        .map(Snapshot::from_history)
                };
                Ok(match snapshot {
                    None => Poll::Missing,
                    Some(s) if s.status.is_some() => Poll::Done(s),
                    Some(s) => {
                        *last.borrow_mut() = Some(s);
                        Poll::Running
                    }
                })
            }
        },
    )
    .await?;
    out.wait_seconds = Some(outputs::secs(began.elapsed().as_secs_f64()));
    match waited {
        Waited::Done(s) => Ok(finish(s, out)),
        Waited::Dropped => {
            out.status = Some(Status::Failed);
            out.error_code = Some("RefreshDropped".into());
            out.error_message = Some(format!(
                "refresh {id} never appeared in the service within {}s: the service dropped the request (it does so under load); trigger it again",
                task.wait.grace.as_secs()
            ));
            tracing::error!("{}", out.error_message.as_deref().unwrap_or_default());
            Ok(ExitCode::Unsuccessful)
        }
        Waited::TimedOut => timed_out(t, task, id, enhanced, last.into_inner(), out).await,
    }
}

fn finish(s: Snapshot, out: &mut Outputs) -> ExitCode {
    let status = s.status.unwrap_or(Status::Failed);
    out.status = Some(status);
    out.service_status = s.service_status;
    out.duration_seconds = match (&s.start, &s.end) {
        (Some(a), Some(b)) => outputs::seconds_between(a, b),
        _ => None,
    };
    out.start_time = s.start.as_deref().map(outputs::utc);
    out.end_time = s.end.as_deref().map(outputs::utc);
    out.objects = s.objects;
    if status == Status::Completed {
        tracing::info!(
            "refresh completed in {:.1}s",
            out.duration_seconds.unwrap_or_default()
        );
        return ExitCode::Success;
    }
    out.error_code = s.error_code.or_else(|| Some(format!("Refresh{status:?}")));
    out.error_message = s.error_message;
    tracing::error!(
        "refresh ended {status:?}: {} {}",
        out.error_code.as_deref().unwrap_or_default(),
        out.error_message.as_deref().unwrap_or_default()
    );
    ExitCode::Unsuccessful
}

async fn timed_out(
    t: &Target<'_>,
    task: &RefreshTask,
    id: &str,
    enhanced: bool,
    last: Option<Snapshot>,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    if let Some(s) = last {
        out.service_status = s.service_status;
        out.start_time = s.start.as_deref().map(outputs::utc);
        out.objects = s.objects;
    }
    let cancel = (task.on_timeout == OnTimeout::Cancel && enhanced)
        .then(|| t.pbi.cancel_refresh(&t.group.id, &t.dataset.id, id));
    Ok(super::timed_out("refresh", id, task.wait.timeout, cancel, out).await)
}
