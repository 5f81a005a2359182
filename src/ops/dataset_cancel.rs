//! `dataset.cancel`: cancel an enhanced refresh, the given one or the one running now.
//!
//! The service can cancel enhanced refreshes only (`powerbi-api.md` §2.4); a standard or
//! scheduled refresh is refused here with that explanation rather than with a bare 404. What is
//! running, and of which type, is the engine's reading of the model's history.

use super::Context;
use super::outputs::{Outputs, Status};
use crate::error::{Error, ExitCode, ServiceError};
use crate::refresh::Run;
use crate::refresh::items::Catalog;
use crate::settings::Profile;
use crate::task::{CancelTask, RefreshBody};

pub(super) async fn run(
    ctx: &Context<'_>,
    profile: &Profile,
    task: &CancelTask,
    out: &mut Outputs,
) -> Result<ExitCode, Error> {
    let catalog = Catalog::new(ctx, profile);
    let group = catalog.workspace(&task.target.workspace).await?;
    out.workspace_id = Some(group.id.clone());
    out.workspace_name = Some(group.name.clone());
    let body = RefreshBody::Standard {
        notify_option: None,
    };
    let item = catalog.model(&group, &task.target.dataset, body).await?;
    item.info().render(out);
    let run = match &task.request_id {
        // A given id is cancelled as asked: the service says whether it can.
        Some(id) => Run {
            enhanced: Some(true),
            ..Run::seed(id.as_str())
        },
        None => match item.runs().await?.into_iter().find(Run::running) {
            None => {
                tracing::info!(
                    "no refresh of {} is running; nothing to cancel",
                    item.info().describe()
                );
                out.status = Some(Status::Skipped);
                return Ok(ExitCode::Success);
            }
            Some(run) => run,
        },
    };
    out.request_id = Some(run.id.clone());
    out.refresh_type = item.refresh_type(&run);
    if !item.cancel(&run).await? {
        return Err(Error::Rejected {
            action: format!("cancel the running refresh of {}", item.info().describe()),
            service: ServiceError {
                code: Some("NotCancellable".into()),
                message: Some(format!(
                    "refresh {} is a standard refresh; the service cancels enhanced refreshes only",
                    run.id
                )),
                ..Default::default()
            },
            help: Some(
                "trigger refreshes with a `refresh` object (enhanced) to be able to cancel them"
                    .into(),
            ),
        });
    }
    tracing::info!(request_id = %run.id, "refresh cancelled");
    out.status = Some(Status::Cancelled);
    Ok(ExitCode::Success)
}
