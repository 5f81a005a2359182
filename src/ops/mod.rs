//! One module per operation; each composes the clients and fills the [`Outputs`].
//!
//! An operation returns the exit code of its outcome (a failed refresh is an outcome, exit 1,
//! not an error) or an [`Error`]. Either way the outputs gathered so far are printed, so a flow
//! always learns the ids that were resolved and the request id that was started.

mod credentials_check;
mod dataflow_gen1;
mod dataflow_gen2;
mod dataflow_refresh;
mod dataset_cancel;
mod dataset_refresh;
mod dataset_status;
mod fleet;
mod flow_trigger;
mod history;
mod inventory;
pub mod outputs;
pub mod record;
mod report_refresh;
mod tokens;

use crate::auth::Auth;
use crate::error::{Error, ExitCode};
use crate::http::Http;
use crate::kestra::Reporter;
use crate::powerbi::PowerBi;
use crate::powerbi::wire::{Dataset, Group, Refresh};
use crate::resolve;
use crate::settings::{Profile, Settings};
use crate::task::{DatasetTarget, IfRunning, Task};
use crate::wait::Expectation;
pub use credentials_check::ProfileCheck;
pub use fleet::TargetResult;
pub use outputs::{Outputs, Status};
pub use record::Recorder;
pub use tokens::TokenResult;

/// What every operation works with.
pub struct Context<'a> {
    /// Settings from the environment.
    pub settings: &'a Settings,
    /// The HTTP client.
    pub http: &'a Http,
    /// Token cache.
    pub auth: &'a Auth<'a>,
    /// Where outputs go (for the early `requestId`).
    pub reporter: Reporter,
    /// The store, when there is one.
    pub store: Option<&'a crate::store::Store>,
    /// This operation's row.
    pub recorder: &'a Recorder<'a>,
}

impl Context<'_> {
    /// Prints the outputs known so far (the request id above all: a run killed later still
    /// leaves it behind) and records them in the operation's row.
    pub async fn announce(&self, out: &Outputs) {
        self.reporter.outputs(&out.to_map());
        self.recorder.progress(out).await;
    }

    /// A Power BI client acting as `profile`.
    pub fn powerbi<'b>(&'b self, profile: &'b Profile) -> PowerBi<'b> {
        PowerBi::new(
            self.http,
            self.auth,
            profile,
            &self.settings.endpoints.powerbi,
        )
    }
}

/// Runs `task`, filling `out`.
pub async fn run(ctx: &Context<'_>, task: &Task, out: &mut Outputs) -> Result<ExitCode, Error> {
    let profile = || ctx.settings.profile(task.profile().unwrap_or("default"));
    match task {
        Task::DatasetRefresh(t) => dataset_refresh::run(ctx, &profile()?, t, out).await,
        Task::Fleet(t) => fleet::run(ctx, &profile()?, t, out).await,
        Task::DatasetCancel(t) => dataset_cancel::run(ctx, &profile()?, t, out).await,
        Task::DatasetStatus(t) => dataset_status::run(ctx, &profile()?, t, out).await,
        Task::TokenGet(t) => tokens::get(ctx, t, out).await,
        Task::TokenRefresh(t) => tokens::refresh(ctx, t, out).await,
        Task::CredentialsCheck(t) => credentials_check::run(ctx, t, out).await,
        Task::History(t) => history::run(ctx, t, out).await,
        Task::DataflowRefresh(t) => dataflow_refresh::run(ctx, &profile()?, t, out).await,
        Task::FlowTrigger(t) => flow_trigger::run(ctx, &profile()?, t, out).await,
        Task::ReportRefresh(t) => report_refresh::run(ctx, &profile()?, t, out).await,
        Task::Inventory(t) => inventory::run(ctx, &profile()?, t, out).await,
    }
}

/// Resolves the workspace and the model, recording both in the outputs.
async fn resolve_target(
    pbi: &PowerBi<'_>,
    target: &DatasetTarget,
    out: &mut Outputs,
) -> Result<(Group, Dataset), Error> {
    let group = resolve::workspace(pbi, &target.workspace).await?;
    out.workspace_id = Some(group.id.clone());
    out.workspace_name = Some(group.name.clone());
    out.item_kind = Some("SemanticModel");
    let dataset = resolve::dataset(pbi, &group, &target.dataset).await?;
    out.dataset_id = Some(dataset.id.clone());
    out.dataset_name = Some(dataset.name.clone());
    Ok((group, dataset))
}

/// The refresh of the model that is running now, if any (newest first in the history).
async fn running_refresh(
    pbi: &PowerBi<'_>,
    group: &Group,
    dataset: &Dataset,
) -> Result<Option<Refresh>, Error> {
    Ok(recent_refreshes(pbi, group, dataset).await?.running)
}

/// What the recent history says before a trigger.
pub(crate) struct Recent {
    /// The refresh running now, if any.
    pub running: Option<Refresh>,
    /// What the recent successful refreshes predict of the next one.
    pub expectation: Option<Expectation>,
    /// Every refresh id already in the history: none of them can be the one about to start.
    pub known: Vec<String>,
}

/// The running refresh, if any, what the recent successful ones predict, and the known ids.
async fn recent_refreshes(
    pbi: &PowerBi<'_>,
    group: &Group,
    dataset: &Dataset,
) -> Result<Recent, Error> {
    let history = pbi.refresh_history(&group.id, &dataset.id, 20).await?;
    let expectation = expectation(
        history
            .iter()
            .filter(|r| {
                outputs::terminal_status(r.status.as_deref(), r.extended_status.as_deref())
                    == Some(Status::Completed)
            })
            .map(|r| (r.start_time.as_deref(), r.end_time.as_deref())),
    );
    let known = history
        .iter()
        .filter_map(|r| r.request_id.clone())
        .collect();
    let running = history.into_iter().find(|r| {
        r.end_time.is_none()
            && outputs::terminal_status(r.status.as_deref(), r.extended_status.as_deref()).is_none()
            && r.request_id.is_some()
    });
    Ok(Recent {
        running,
        expectation,
        known,
    })
}

/// What the durations of past successful runs (start, end) predict of the next one.
pub(crate) fn expectation<'s>(
    runs: impl Iterator<Item = (Option<&'s str>, Option<&'s str>)>,
) -> Option<Expectation> {
    let durations: Vec<std::time::Duration> = runs
        .filter_map(|(start, end)| outputs::seconds_between(start?, end?))
        .filter(|s| *s > 0.0)
        .take(10)
        .map(std::time::Duration::from_secs_f64)
        .collect();
    Expectation::from_durations(&durations)
}

/// How long ago `start` (a service timestamp) was; zero when unknown.
pub(crate) fn running_for(start: Option<&str>) -> std::time::Duration {
    start
        .and_then(outputs::parse_time)
        .and_then(|t| std::time::Duration::try_from(jiff::Timestamp::now().duration_since(t)).ok())
        .unwrap_or_default()
}

/// What to do about a refresh that is already running, once `ifRunning` has been applied.
pub(crate) enum Running {
    /// Wait for it.
    Attach,
    /// Leave it; the outputs say `Skipped`.
    Skip,
}

/// Applies `ifRunning` to the running refresh `id` of `what` (e.g. `semantic model Sales`).
pub(crate) fn if_running(
    policy: IfRunning,
    what: &str,
    id: &str,
    started: Option<&str>,
    out: &mut Outputs,
) -> Result<Running, Error> {
    out.request_id = Some(id.to_string());
    let started = started
        .map(outputs::utc)
        .unwrap_or_else(|| "an unknown time".into());
    match policy {
        IfRunning::Skip => {
            tracing::info!(request_id = %id, "a refresh of {what} started at {started} is already running; skipping (ifRunning: skip)");
            out.status = Some(Status::Skipped);
            out.attached = Some(false);
            Ok(Running::Skip)
        }
        IfRunning::Fail => Err(Error::Rejected {
            action: format!("trigger a refresh of {what}"),
            service: crate::error::ServiceError {
                code: Some("RefreshAlreadyRunning".into()),
                message: Some(format!(
                    "refresh {id}, started at {started}, is still running"
                )),
                ..Default::default()
            },
            help: Some("use ifRunning: attach to wait for it, or skip to leave it alone".into()),
        }),
        IfRunning::Attach => {
            tracing::info!(request_id = %id, "a refresh of {what} started at {started} is already running; attaching to it");
            out.attached = Some(true);
            Ok(Running::Attach)
        }
    }
}

/// Our wait timed out (exit 5): the outputs say so, and `cancel` — given when `onTimeout: cancel`
/// applies — cancels the refresh, which the outputs then report as `Cancelled`.
pub(crate) async fn timed_out<F>(
    what: &str,
    id: &str,
    timeout: std::time::Duration,
    cancel: Option<F>,
    out: &mut Outputs,
) -> ExitCode
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    let waited = timeout.as_secs_f64();
    out.status = Some(Status::Running);
    out.error_code = Some("WaitTimedOut".into());
    out.error_message = Some(format!("{what} {id} was still running after {waited:.0}s"));
    match cancel {
        Some(cancel) => match cancel.await {
            Ok(()) => {
                tracing::warn!(request_id = %id, "wait timed out after {waited:.0}s; {what} cancelled (onTimeout: cancel)");
                out.status = Some(Status::Cancelled);
                out.cancel_requested = Some(true);
            }
            Err(e) => {
                tracing::error!(request_id = %id, "wait timed out, and cancelling {what} failed: {e}")
            }
        },
        None => {
            tracing::warn!(request_id = %id, "wait timed out after {waited:.0}s; {what} is left running (ifRunning: attach follows it)")
        }
    }
    ExitCode::Timeout
}

/// Whether a history entry is an enhanced refresh (execution details and cancel work only then).
fn is_enhanced(refresh: &Refresh) -> bool {
    matches!(
        refresh.refresh_type.as_deref(),
        Some("ViaEnhancedApi" | "ReliableProcessing")
    )
}
