//! One module per operation; each composes the clients and fills the [`Outputs`].
//!
//! An operation returns the exit code of its outcome (a failed refresh is an outcome, exit 1,
//! not an error) or an [`Error`]. Either way the outputs gathered so far are printed, so a flow
//! always learns the ids that were resolved and the request id that was started.

mod after;
mod credentials_check;
mod dataset_cancel;
mod dataset_status;
mod flow_trigger;
mod history;
mod inventory;
pub mod outputs;
mod preflight;
pub mod record;
mod refresh;
mod report_refresh;
mod timeline;
mod tokens;

use crate::auth::Auth;
use crate::error::{Error, ExitCode};
use crate::http::Http;
use crate::kestra::Reporter;
use crate::powerbi::PowerBi;
use crate::powerbi::wire::{Dataset, Group};
pub use crate::refresh::summary::TargetResult;
use crate::resolve;
use crate::settings::{Profile, Settings};
use crate::task::{DatasetTarget, Task};
pub use credentials_check::ProfileCheck;
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

/// Runs `task`, filling `out`; then what its `around` options ask for (timeline, alert).
pub async fn run(ctx: &Context<'_>, task: &Task, out: &mut Outputs) -> Result<ExitCode, Error> {
    let began = jiff::Timestamp::now();
    let result = dispatch(ctx, task, out).await;
    if let Some(around) = task.around() {
        after::run(ctx, task, around, began, &result, out).await;
    }
    result
}

async fn dispatch(ctx: &Context<'_>, task: &Task, out: &mut Outputs) -> Result<ExitCode, Error> {
    let profile = || ctx.settings.profile(task.profile().unwrap_or("default"));
    match task {
        Task::DatasetRefresh(t) => refresh::model(ctx, &profile()?, t, out).await,
        Task::Fleet(t) => refresh::fleet(ctx, &profile()?, t, out).await,
        Task::DatasetCancel(t) => dataset_cancel::run(ctx, &profile()?, t, out).await,
        Task::DatasetStatus(t) => dataset_status::run(ctx, &profile()?, t, out).await,
        Task::TokenGet(t) => tokens::get(ctx, t, out).await,
        Task::TokenRefresh(t) => tokens::refresh(ctx, t, out).await,
        Task::CredentialsCheck(t) => credentials_check::run(ctx, t, out).await,
        Task::History(t) => history::run(ctx, t, out).await,
        Task::DataflowRefresh(t) => refresh::dataflow(ctx, &profile()?, t, out).await,
        Task::FlowTrigger(t) => flow_trigger::run(ctx, &profile()?, t, out).await,
        Task::ReportRefresh(t) => report_refresh::run(ctx, &profile()?, t, out).await,
        Task::Inventory(t) => inventory::run(ctx, &profile()?, t, out).await,
        Task::Preflight(t) => preflight::run(ctx, &profile()?, t, out).await,
        Task::Timeline(t) => timeline::run(ctx, t, out).await,
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
